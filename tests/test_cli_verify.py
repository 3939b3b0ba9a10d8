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


# -- an exported file ----------------------------------------------------------------------------

def fake_time_interleaved(factor_of_predicted):
    """backends.time_interleaved's stand-in: the file runs once; its ratio is what `factor_of_predicted` says."""
    def interleave(item, reference, **options):
        item.call(0)
        ratio = factor_of_predicted()
        return {"ratio": {"median_ms": ratio, "ci_rel": 0.01, "runs": 10}, "reference": {"median_ms": 1.0},
                "item": {"median_ms": ratio}, "converged": True}
    return interleave


def test_a_file_with_no_bundle_of_its_runtime_is_measured_with_no_prediction(onnx_export, tmp_path, capsys,
                                                                              monkeypatch):
    from pynas.profiling import backends

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no `pynas device init` defaults here
    monkeypatch.setattr(backends, "time_interleaved", fake_time_interleaved(lambda: 0.25))
    path, arch = onnx_export
    code, out, err = run(capsys, path, "--passes", 2, "--json", tmp_path / "v.json")
    assert code == 0, err
    [record] = json.loads((tmp_path / "v.json").read_text())
    assert record["file"] == str(path) and record["arch"] == arch and record["predicted_ms"] is None
    assert record["verdict"] == measure.NO_PREDICTION and record["backend"] == "onnxruntime"
    row = out.splitlines()[2].split()
    assert row[1] == "-" and row[4] == "-" and " ".join(row[5:]) == "no prediction"
    assert "timed in onnxruntime on this machine" in out
    assert "no prediction to compare: this machine has no onnxruntime bundle at 1 thread(s)" in out


@pytest.mark.parametrize("factor, code", [(1.0, 0), (1.5, 1)])
def test_a_file_against_a_bundle_of_its_runtime(onnx_export, onnx_bundle, capsys, monkeypatch, factor, code):
    from pynas.predictor import bundle
    from pynas.profiling import backends

    path, arch = onnx_export
    predicted = float(bundle.load(onnx_bundle).predict(arch))
    monkeypatch.setattr(backends, "time_interleaved", fake_time_interleaved(lambda: factor * predicted))
    got, out, err = run(capsys, path, "--predictor", onnx_bundle, "--passes", 3)
    assert got == code, err
    assert f"{predicted:.3f}" in out.splitlines()[2] and f"{factor:.3f}" in out.splitlines()[2]
    assert "bundle tiny-onnx" in out


@pytest.mark.parametrize("args, message", [
    (["ONNX", ARCH], "ARCH: expected an exported file alone (it is timed in its own runtime), got 2 arguments"),
    (["ONNX", "--adb", "R5CT"], "--adb: expected with an architecture only"),
    (["ONNX", "--backend", "native"], "--backend: expected the file's runtime (onnxruntime: .onnx files run there), "
                                      "got native"),
    (["ONNX", "--predictor", "TINY"], "--predictor: expected a bundle of onnxruntime (FILE ONNX runs there), got "
                                      "bundle tiny of native"),
    (["NOTES"], "FILE NOTES: expected a file of `pynas export` (.pt, .onnx, .tflite), got the extension '.txt'"),
    (["MISSING"], "FILE MISSING: expected a file, got nothing"),
])
def test_bad_file_input_is_one_line_exit_2_before_timing(onnx_export, tiny_bundle, tmp_path, capsys, monkeypatch,
                                                          args, message):
    monkeypatch.setattr(measure, "interleaved_passes", lambda *a, **k: pytest.fail("timed"))
    (tmp_path / "notes.txt").write_text("hello")
    swap = {"ONNX": str(onnx_export[0]), "TINY": str(tiny_bundle), "NOTES": str(tmp_path / "notes.txt"),
            "MISSING": str(tmp_path / "gone.tflite")}
    code, out, err = run(capsys, *[swap.get(a, a) for a in args])
    for key, value in swap.items():
        message = message.replace(key, value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
