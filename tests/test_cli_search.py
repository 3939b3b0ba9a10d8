"""`pynas search` (pynas/cli/search.py): end to end on NAS-Bench-201 and on MnasNet with a user's
function; bad input is one line, exit 2, before anything is written."""
import json
import sqlite3
import textwrap

import pytest

from pynas.cli import main
from pynas.search import refine, verification

NB201 = ["--space", "nb201", "--predictor", "nb201-pixel3", "--evaluator", "nb201:imagenet16"]


def search(capsys, *args):
    code = main(["search", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_search_on_nb201_prints_the_target_the_front_and_the_ground_truth(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = search(capsys, *NB201, "--target-quantile", 0.25, "--budget", 60, "--seed", 1,
                            "--strategy", "evolution", "--out", tmp_path / "run")
    assert code == 0, err
    assert "25.0% of the space under it" in out and "all 15,625 architectures" in out
    assert "stopped: budget; 60 evaluated" in out and "Pareto front" in out
    assert "NAS-Bench-201 ground truth (imagenet16, 200 epochs)" in out
    best = (tmp_path / "run" / "best.txt").read_text().splitlines()[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert best == summary["best"]["arch"] and best.startswith("|") and summary["best"]["latency_over_target"] <= 1
    # HW-NAS-Bench's Pixel 3 numbers: a phone's, with no fingerprint of a machine pynas runs on
    assert summary["verification"]["skipped"] == verification.NO_FINGERPRINT and summary["verification"]["arch"] == best
    code, again, err = search(capsys, "--report", tmp_path / "run")
    assert code == 0 and best in again


def test_a_search_on_mnasnet_with_a_shipped_bundle_and_a_python_evaluator(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_eval.py").write_text(textwrap.dedent('''
        import zlib
        def accuracy(archs):
            return [60 + (zlib.crc32(a.encode()) % 2000) / 100 for a in archs]
    '''))
    monkeypatch.chdir(tmp_path)  # python:MODULE:FUNCTION imports from the current directory
    code, out, err = search(capsys, "--space", "mnasnet", "--predictor", "x86-avx512-native", "--target-ms", 3,
                            "--evaluator", "python:my_eval:accuracy", "--budget", 20, "--strategy", "evolution",
                            "--out", "run")
    assert code == 0, err
    assert "stopped: budget; 20 evaluated" in out
    assert (tmp_path / "run" / "best.txt").read_text().startswith("net_res224_cls1000:")
    verification = json.loads((tmp_path / "run" / "summary.json").read_text())["verification"]
    assert verification["skipped"] == "bundle made on another machine"
    assert "x86-avx512-native was made on" in verification["detail"]
    assert "verification: skipped (bundle made on another machine)" in out


def test_a_search_with_a_bundle_of_this_machine_verifies_its_pick(tiny_bundle, tmp_path, capsys, monkeypatch):
    """The best under T measured at the end (tests/conftest.py's tiny bundle: MnasNet at 32x32, made
    here); --report keeps the record, --no-verify on --resume records the skip."""
    (tmp_path / "my_eval.py").write_text("def accuracy(archs):\n    return [len(a) % 97 for a in archs]\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = search(capsys, "--space", "mnasnet", "--resolution", 32, "--predictor", tiny_bundle,
                            "--target-quantile", 0.5, "--evaluator", "python:my_eval:accuracy", "--budget", 8,
                            "--strategy", "random", "--verify-top", 3, "--out", "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    v = summary["verification"]
    searched = [c for c in v["candidates"] if c["round"] == 0]  # then refinement rounds may measure more
    assert 1 <= len(searched) <= 3 and v["candidates"][0]["arch"] == v["arch"]
    # at most refine.DEFAULT_ROUNDS rounds, each measuring at most --verify-top new candidates
    assert len(v["refinements"]) <= refine.DEFAULT_ROUNDS and len(v["candidates"]) <= 3 * (1 + len(v["refinements"]))
    pick = summary["verified_pick"]
    if pick is None:
        assert v["pick"] is None and v["no_pick"].startswith("none of the ")
        assert all(not c["fits"] for c in v["candidates"])
    else:
        assert pick == v["pick"] and pick["measured_ms"] <= summary["target_ms"]
        assert (tmp_path / "run" / "best.txt").read_text().splitlines()[0] == pick["arch"]
    assert v["arch"] == summary["best"]["arch"] and v["predicted_ms"] == summary["best"]["latency_ms"]
    assert v["measured_ms"] > 0 and len(v["passes"]) == 5 and v["verdict"] in ("ok", "over tolerance", "too unsteady")
    assert v["measured_over_target"] == pytest.approx(v["measured_ms"] / summary["target_ms"])
    assert "verified on this machine" in out and "measured/predicted" in out
    code, again, err = search(capsys, "--report", "run")
    assert code == 0 and json.loads((tmp_path / "run" / "summary.json").read_text())["verification"] == v
    code, out, err = search(capsys, "--report", "run", "--no-verify")
    assert code == 2 and "--report: expected alone" in err and "--no-verify" in err
    code, out, err = search(capsys, "--resume", "run", "--no-verify")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["verification"] == {"skipped": "--no-verify"}


def test_a_search_on_nb201_with_a_bundle_of_this_machine_measures_its_pick_here(tmp_path, capsys):
    """An nb201 bundle made here (`pynas calibrate --space nb201`, pynas.predictor.cellnet; made-up
    latencies on this machine's fingerprint): the search's pick is measured as its network here."""
    import numpy as np

    from pynas.predictor import cellnet
    from pynas.profiling.backends import backend_version
    from pynas.space import get_space
    from pynas.store import Context, OpKey, Stats, Store

    space = get_space("nb201")
    tokens = np.unique(space.sample_tokens(70, seed=2), axis=0)[:60]
    with Store(tmp_path / "m.sqlite") as store:
        context = Context.here("native", backend_version("native"), 1, session="test")
        for t in tokens:
            ms = 1.0 + 0.3 * float((t == 3).sum())
            store.record(context, OpKey(str(space.network(t)), "network", {}), Stats(ms, 0.01, ms, ms, 20))
        data = cellnet.load_cells(store, space)
    folder = cellnet.save_cells(tmp_path / "here", cellnet.train_cells(data, space, params={"rounds": 50}), data, space)
    code, out, err = search(capsys, "--space", "nb201", "--predictor", folder, "--evaluator", "nb201:cifar10",
                            "--target-quantile", 0.5, "--budget", 6, "--strategy", "random", "--verify-top", 1,
                            "--refine-rounds", 0, "--out", tmp_path / "run")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    v = summary["verification"]
    assert "skipped" not in v and v["arch"] == summary["best"]["arch"] and v["arch"].startswith("|")
    assert v["measured_ms"] > 0 and len(v["passes"]) == 5 and v["reference"] == f"network:{space.reference_network()}"
    assert "verified on this machine" in out


def _search_over_tiny(capsys, tiny_bundle, tmp_path, monkeypatch, *extra):
    (tmp_path / "my_eval.py").write_text("def accuracy(archs):\n    return [len(a) % 97 for a in archs]\n")
    monkeypatch.chdir(tmp_path)
    return search(capsys, "--space", "mnasnet", "--resolution", 32, "--predictor", tiny_bundle,
                  "--target-quantile", 0.7, "--evaluator", "python:my_eval:accuracy", "--budget", 12,
                  "--strategy", "random", "--seed", 1, "--out", "run", *extra)


def _fake_measure(monkeypatch, measured_over_target):
    """`verify` as the search's verification calls it, faked: the n-th architecture asked measures
    measured_over_target(n) x T (n from 1); returns the architectures asked, in order."""
    from pynas.search import verification
    from pynas.verify import measure

    asked = []

    def fake(archs, predictor, *, predicted_ms, **options):
        out = []
        for arch, predicted in zip(archs, predicted_ms):
            asked.append(arch)
            measured = measured_over_target(len(asked)) * fake.target
            out.append(measure.Verification(
                arch=arch, bundle="tiny", predicted_ms=predicted, measured_ms=measured, p10_ms=0.98 * measured,
                p90_ms=1.02 * measured, ratio=measured / predicted, verdict=measure.OK, steady=True, reason="fake",
                tolerance=0.1, uncertainty=0.02, backend="native", threads=1, clock="cpu", device="this machine",
                reference="network:fake", reference_source="fake", scale="profiled", reference_fast_ms=1.0,
                reference_bundle_fast_ms=1.0, raw_ms=measured, now_ms=measured, clean_passes=5))
        return out

    real = verification.verify_pick

    def verify_pick(folder, config, ranked, **options):
        fake.target = config["reward"]["target_ms"]
        return real(folder, config, ranked, **options)

    monkeypatch.setattr(verification, "verify", fake)
    monkeypatch.setattr(verification, "verify_pick", verify_pick)
    return asked


def test_when_the_best_measures_over_t_the_next_that_fits_is_the_verified_pick(tiny_bundle, tmp_path, capsys,
                                                                                 monkeypatch):
    from pynas.cli import scale, verify as verify_cli

    asked = _fake_measure(monkeypatch, lambda n: 1.06 if n == 1 else 0.97)
    code, out, err = _search_over_tiny(capsys, tiny_bundle, tmp_path, monkeypatch)
    assert code == 0, err
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    record = json.loads((run / "verification.json").read_text())
    best = summary["best"]
    assert asked[0] == best["arch"] and len(asked) == 3  # one batch: ranks 1..3
    assert [c["rank"] for c in record["candidates"]] == [1, 2, 3]
    assert [c["arch"] for c in record["candidates"]] == asked
    first, second = record["candidates"][:2]
    assert first["measured_over_target"] == pytest.approx(1.06) and not first["fits"]
    assert second["fits"] and second["measured_ms"] <= summary["target_ms"]
    pick = record["pick"]
    assert pick["rank"] == 2 and pick["arch"] == second["arch"] != best["arch"]
    assert summary["verified_pick"] == pick and summary["verification"] == record
    assert set(pick) == {"arch", "rank", "sample", "accuracy", "predicted_ms", "measured_ms", "p10_ms", "p90_ms",
                         "measured_over_target", "verdict", "round"} and pick["round"] == 0
    assert record["refinements"] == []  # the pick measured 0.97 x T: within 5% of T, nothing to refine
    assert (pick["accuracy"], -pick["predicted_ms"]) <= (best["accuracy"], -best["latency_ms"])
    lines = (run / "best.txt").read_text().splitlines()
    assert lines[0] == pick["arch"]
    assert any(line.startswith("verified_pick rank 2 ") for line in lines)
    assert any(line.startswith(f"predicted_best {best['arch']} ") and "over T" in line for line in lines)
    assert "verified pick (the model to ship, best.txt's first line): rank 2" in out
    # The files tell it again; pynas verify and pynas scale take the pick from best.txt.
    code, again, err = search(capsys, "--report", "run")
    assert code == 0 and "verified pick (the model to ship, best.txt's first line): rank 2" in again
    assert (run / "best.txt").read_text().splitlines()[0] == pick["arch"]
    assert verify_cli._run_arch(run) == (pick["arch"], str(tiny_bundle))
    assert str(scale.arch_from(str(run))) == pick["arch"]
    # A resumed run verifies again at its end (here the best fits: it is its own pick).
    asked = _fake_measure(monkeypatch, lambda n: 0.99)
    code, out, err = search(capsys, "--resume", "run", "--verify-top", 1)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verified_pick"]["rank"] == 1 and summary["verified_pick"]["arch"] == best["arch"]
    assert asked == [best["arch"]] and len(summary["verification"]["candidates"]) == 1
    lines = (run / "best.txt").read_text().splitlines()
    assert lines[0] == best["arch"] and lines[-1].startswith("verified_pick rank 1: the best under T measured <= T")


def test_when_none_of_the_top_k_fits_best_txt_keeps_the_predicted_best(tiny_bundle, tmp_path, capsys, monkeypatch):
    asked = _fake_measure(monkeypatch, lambda n: 1.02)
    code, out, err = _search_over_tiny(capsys, tiny_bundle, tmp_path, monkeypatch, "--verify-top", 2,
                                       "--refine-budget", 0)  # tests/test_search_refine.py refines
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    record = summary["verification"]
    assert len(asked) == 2 and [c["rank"] for c in record["candidates"]] == [1, 2]
    assert record["pick"] is None and record["no_pick"] == "none of the top 2 measured <= T"
    assert summary["verified_pick"] is None
    lines = (tmp_path / "run" / "best.txt").read_text().splitlines()
    assert lines[0] == summary["best"]["arch"] and "verified_pick none: none of the top 2 measured <= T" in lines
    assert "verified pick: none (none of the top 2 measured <= T)" in out


@pytest.mark.parametrize("args, message", [
    (["--space", "nope", "--predictor", "nb201-pixel3", "--evaluator", "nb201:cifar10", "--target-ms", 5,
      "--budget", 5], "unknown search space 'nope': expected one of mnasnet, fbnet, nb201"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--strategy", "annealing"], "--strategy: invalid choice: 'annealing'"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--reward", "linear"], "--reward: invalid choice: 'linear'"),
    (["--space", "nb201", "--predictor", "nb201-pixel3", "--evaluator", "nb201:mnist", "--target-ms", 5,
      "--budget", 5], "dataset: expected one of cifar10, cifar100, imagenet16, got 'mnist'"),
    (["--space", "nb201", "--predictor", "nb201-pixel3", "--evaluator", "table", "--target-ms", 5, "--budget", 5],
     "evaluator: expected one of nb201:cifar10|cifar100|imagenet16, python:MODULE:FUNCTION"),
    ([*NB201, "--target-ms", 0, "--budget", 5], "--target-ms: expected a finite number in (0, inf], got '0'"),
    ([*NB201, "--target-ms", -3, "--budget", 5], "--target-ms: expected a finite number in (0, inf], got '-3'"),
    ([*NB201, "--target-ms", 500, "--budget", 5],
     "target_ms: expected a latency in the space's range [0.003277, 36.77] ms"),
    ([*NB201, "--target-ms", 5, "--budget", 0], "--budget: expected an integer 1..10000000, got '0'"),
    ([*NB201, "--target-quantile", 1.5, "--budget", 5], "--target-quantile: expected a finite number in (0, 1]"),
    (["--space", "nb201", "--predictor", "x86-avx512-native", "--evaluator", "nb201:cifar10", "--target-ms", 5,
      "--budget", 5], "space: expected"),
    (["--space", "mnasnet", "--predictor", "nb201-pixel3", "--evaluator", "python:x:y", "--target-ms", 5,
      "--budget", 5], "space: expected"),
    ([*NB201, "--budget", 5], "--target-ms (or --target-quantile): expected a value for a new search"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--fidelity", 50], "--fidelity: invalid choice: 50"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--strategy", "evolution", "--strategy-option", "population=-1"],
     "population"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--strategy", "evolution", "--strategy-option", "warp=1"],
     "unknown option 'warp'"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--verify-top", 0], "--verify-top: expected an integer 1..1000, got '0'"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--verify-top", "x"], "--verify-top: expected an integer 1..1000, got 'x'"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--verify-top", 3, "--no-verify"],
     "--verify-top: expected without --no-verify"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--refine-budget", 4, "--no-verify"],
     "--refine-budget: expected without --no-verify"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--refine-rounds", 1, "--no-verify"],
     "--refine-rounds: expected without --no-verify"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--refine-budget", -1], "--refine-budget: expected an integer 0..10000000"),
    ([*NB201, "--target-ms", 5, "--budget", 5, "--refine-rounds", 11], "--refine-rounds: expected an integer 0..10"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code, _, err = search(capsys, *args, "--out", out)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_resume_and_report_refuse_bad_logs_and_keep_them(tmp_path, capsys):
    code, _, err = search(capsys, *NB201, "--target-ms", 5, "--budget", 5, "--strategy", "random", "--out",
                          tmp_path / "run")
    assert code == 0, err
    log = tmp_path / "run" / "search.sqlite"
    before = log.read_bytes()
    cases = [
        (["--resume", tmp_path / "run", "--budget", 9], "--resume: expected alone (the run's settings are in its log), "
                                                         "got also --budget"),
        (["--resume", tmp_path / "nothing"], "expected a search folder with search.sqlite, got no such folder"),
        ([*NB201, "--target-ms", 5, "--budget", 5, "--out", tmp_path / "run"], "a search log is already there"),
    ]
    for args, message in cases:
        code, _, err = search(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert log.read_bytes() == before
    (tmp_path / "afile").write_text("keep me")
    code, _, err = search(capsys, *NB201, "--target-ms", 5, "--budget", 5, "--out", tmp_path / "afile")
    assert code == 2 and "expected a folder for the run's log and results, got a file" in err, err
    assert (tmp_path / "afile").read_text() == "keep me"
    with sqlite3.connect(log) as db:
        db.execute("""UPDATE meta SET value = '"0.0.0"' WHERE key = 'pynas_version'""")
    code, _, err = search(capsys, "--resume", tmp_path / "run")
    assert code == 2 and "pynas_version: expected" in err and "got '0.0.0'" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "search.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    code, _, err = search(capsys, "--report", tmp_path / "bad")
    assert code == 2 and "expected a pynas search log" in err, err
