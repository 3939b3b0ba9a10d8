"""`pynas verify` (pynas/cli/verify.py): the table and exit statuses (0 ok, 1 over, 3 too unsteady),
a search run folder as ARCH, and bad input as one line, exit 2, before anything is timed."""
import json

import pytest

from pynas.cli import flags, verify as verify_cli
from pynas.space import get_space
from pynas.verify import measure

ARCH = str(get_space("mnasnet", resolution=32).sample(1, seed=3)[0])


def run(capsys, *argv):
    """The command through a local parser, as pynas.cli.main runs it: (exit status, stdout, stderr)."""
    parser = flags.Parser(prog="pynas")
    commands = parser.add_subparsers(dest="command", required=True)
    verify_cli.add_parsers(commands)
    try:
        args = parser.parse_args(["verify", *map(str, argv)])
        args.run(args)
        code = 0
    except SystemExit as done:
        code = done.code
    except (ValueError, FileNotFoundError, IsADirectoryError) as error:
        print(f"pynas verify: error: {error}", file=__import__("sys").stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_a_real_verification_prints_the_table_and_writes_json(tiny_bundle, tmp_path, capsys):
    code, out, err = run(capsys, ARCH, "--predictor", tiny_bundle, "--passes", 2, "--tolerance", 900,
                         "--json", tmp_path / "v.json")
    # 900%: ok, unless a pass ran in an extreme state (then 3: too unsteady, said in the table)
    [record] = json.loads((tmp_path / "v.json").read_text())
    assert (code, record["verdict"]) in ((0, "ok"), (3, "too unsteady")), err
    assert "predicted ms" in out and "measured/predicted" in out and f" {record['verdict']}" in out
    assert "tiny on this machine" in out and "cpu time, 2 passes" in out
    assert record["arch"] == ARCH and len(record["passes"]) == 2


def fake_verify(verdicts, seen):
    def fake(archs, bundle, **options):
        seen.append((archs, bundle.manifest.name, options))
        return [measure.Verification(
            arch=a, bundle=bundle.manifest.name, predicted_ms=1.0, measured_ms=1.0 + i, p10_ms=0.9, p90_ms=1.1,
            ratio=1.0 + i, verdict=v, steady=v != measure.UNSTEADY, reason="synthetic", tolerance=0.1, uncertainty=0.01,
            backend="native", threads=1, clock="cpu", device="this machine", reference="network:x",
            reference_source="test", scale="profiled", reference_fast_ms=1.0, reference_bundle_fast_ms=1.0,
            raw_ms=1.0, now_ms=1.0, clean_passes=5) for i, (a, v) in enumerate(zip(archs, verdicts))]
    return fake


@pytest.mark.parametrize("verdicts, code", [
    ([measure.OK, measure.OK], 0), ([measure.OK, measure.OVER], 1), ([measure.UNSTEADY, measure.OK], 3),
    ([measure.UNSTEADY, measure.OVER], 1)])
def test_exit_status_follows_the_verdicts(tiny_bundle, capsys, monkeypatch, verdicts, code):
    monkeypatch.setattr(measure, "verify", fake_verify(verdicts, []))
    got, out, err = run(capsys, "mnasnet-a1", ARCH, "--predictor", tiny_bundle)
    assert got == code, err
    assert all(v in out for v in verdicts)


def test_a_search_run_folder_verifies_its_best_with_its_bundle(tiny_bundle, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "best.txt").write_text(f"{ARCH}\naccuracy 70\n")
    (folder / "summary.json").write_text(json.dumps({
        "predictor": str(tiny_bundle), "best": {"arch": ARCH, "accuracy": 70.0}, "verified_pick": None,
        "evaluator": "zero-cost:params", "space": {"name": "mnasnet", "options": {"resolution": 32}}}))
    seen = []
    monkeypatch.setattr(measure, "verify", fake_verify([measure.OK], seen))
    code, out, err = run(capsys, folder, "--passes", 3, "--tolerance", 5)
    assert code == 0, err
    assert seen[0][0] == [ARCH] and seen[0][1] == "tiny" and seen[0][2]["passes"] == 3
    assert seen[0][2]["tolerance"] == pytest.approx(0.05)


@pytest.mark.parametrize("args, message", [
    ([ARCH, "--passes", 1], "argument --passes: expected an integer 2..1000, got '1'"),
    ([ARCH, "--tolerance", 0], "argument --tolerance: expected a finite number in (0, 900], got '0'"),
    (["net_res32_cls1000:nope", "--predictor", "TINY"], "net_res32_cls1000:nope"),
    ([ARCH, "--predictor", "x86-avx512-native"], "--predictor: bundle x86-avx512-native was made on"),
    ([ARCH, "--predictor", "nb201-pixel3"], "--predictor: bundle nb201-pixel3 names its device"),
    ([ARCH, "--predictor", "TINY", "--adb", "R5CT"], "--profiler: expected the pynas-profile binary"),
    ([ARCH, "--predictor", "TINY", "--profiler", "x"], "--profiler: expected with --adb only"),
    ([ARCH, "--predictor", "TINY", "--threads", 2], "--threads: expected the bundle's thread count (1"),
    ([ARCH, "--predictor", "TINY", "--backend", "onnxruntime"], "--backend: expected the bundle's backend (native"),
    ([ARCH, "--backend", "bogus"], "argument --backend: invalid choice: 'bogus'"),
    ([ARCH, "--predictor", "TINY", "--adb", "R5CT", "--profiler", "PROFILER", "--adb-command", "/nonexistent/adb"],
     "--adb: adb: cannot run '/nonexistent/adb'"),
    (["EMPTYDIR"], "ARCH EMPTYDIR: expected a finished search folder with best.txt and summary.json"),
])
def test_bad_input_is_one_line_exit_2_before_timing(tiny_bundle, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(measure, "_local_passes", lambda *a, **k: pytest.fail("timed"))
    profiler = tmp_path / "pynas-profile"
    profiler.write_text("")
    (tmp_path / "empty").mkdir()
    swap = {"TINY": str(tiny_bundle), "PROFILER": str(profiler), "EMPTYDIR": str(tmp_path / "empty")}
    args = [swap.get(str(a), a) for a in args]
    message = message.replace("EMPTYDIR", str(tmp_path / "empty"))
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
