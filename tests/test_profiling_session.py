"""Profiling runs (pynas.profiling.session, `pynas profile`): the plan, resume, kill -9, bad input."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from pynas.cli import main
from pynas.profiling.backends import Backend, unavailable
from pynas.profiling.session import plan, prepare, run, unmeasured
from pynas.space import get_space
from pynas.space.catalogue import space_items
from pynas.store import Store

FAST = {"budget_seconds": 0.02, "target_rel_ci": 0.5, "min_runs": 3, "warmup_runs": 1, "warmup_seconds": 0}


def test_space_segment_count_and_plan():
    space = get_space("mnasnet")
    configs = space_items(space)
    kinds = Counter(c.kind for c in configs.values())
    # 7 blocks x 144 choices (op, kernel, SE, skip, width) x input widths (3, or 6 after a block
    # that can be empty) for first repeats, plus the later repeats; identity = none on first repeats.
    assert kinds == {"mbconv": 1464, "convblock": 732, "dsconv": 732, "head": 6, "stem": 1}
    # Every segment of sampled networks is among them: the enumeration covers the space.
    from pynas.ir import lower
    from pynas.ir.segments import segments
    for arch in space.sample(200, seed=5):
        for seg in segments(lower(arch)):
            assert seg.key in configs, (str(arch), seg.id)
    p = plan(get_space("mnasnet", resolution=64), neighbours=10, networks=3, seed=1)
    assert p.items[0].kind == "stem" and len({i.key for i in p.items}) == len(p.items)
    assert p.counts["neighbours"] == 10 and p.counts["networks"] == 3
    again = plan(get_space("mnasnet", resolution=64), neighbours=10, networks=3, seed=1)
    assert [i.key for i in again.items] == [i.key for i in p.items]  # seeded: reruns resume the same plan


def test_run_records_and_resumes(tmp_path):
    p = plan(get_space("mnasnet", resolution=32), networks=2, seed=0)
    p = type(p)(p.space, p.resolution, p.counts, p.items[:12] + [i for i in p.items if i.kind == "network"])
    backend = Backend("native")
    with Store(tmp_path / "m.sqlite") as store:
        first = run(p, backend, store, harness=FAST, budget_seconds=1e9, session="t", drift_tolerance=1e9)
        assert first.measured == len(p.items) and first.already == 0 and not first.failed
        second = run(p, backend, store, harness=FAST, session="t", drift_tolerance=1e9)
        assert second.measured == 0 and second.already == len(p.items)
        rows = list(store.measurements(backend="native"))
        assert Counter(m.op.key for m in rows) == {i.key: 1 for i in p.items}
        network = next(m for m in rows if m.op.kind == "network")
        assert network.op.features["segments"] and network.stats.median_ms > 0
        assert rows[-1].harness["timing"] == "ratio" and rows[-1].harness["options"]["min_runs"] == 3
        third = run(p, backend, store, harness=FAST, session="t2", drift_tolerance=1e9, again=True)  # another pass
        assert third.measured == len(p.items) and third.already == 0
        assert Counter(m.op.key for m in store.measurements(backend="native")) == {i.key: 2 for i in p.items}
        # A third pass cut short, then resumed by its tag: each key once more, none twice.
        cut = run(p, backend, store, harness=FAST, session="t3", drift_tolerance=1e9, again=True,
                  should_stop=lambda: len(list(store.measurements(session="t3"))) >= 5)
        assert cut.measured == 5 and cut.stopped_by == "interrupt"
        rest = run(p, backend, store, harness=FAST, session="t3", drift_tolerance=1e9, again=True)
        assert rest.already == 5 and rest.measured == len(p.items) - 5
        assert Counter(m.op.key for m in store.measurements(backend="native")) == {i.key: 3 for i in p.items}
        untagged = run(p, backend, store, harness=FAST, drift_tolerance=1e9, again=True)  # no tag: everything
        assert untagged.measured == len(p.items)


def test_budget_stops_between_items(tmp_path):
    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=200)
    with Store(tmp_path / "m.sqlite") as store:
        report = run(p, Backend("native"), store, harness=FAST, budget_seconds=0.5, drift_tolerance=1e9)
    assert report.stopped_by == "budget" and 0 < report.measured < len(p.items)
    assert report.remaining == len(p.items) - report.measured


def _profile_cmd(db, *extra):
    return [sys.executable, "-P", "-m", "pynas.cli", "profile", "--backend", "native", "--resolution", "32",
            "--db", str(db), "--neighbours", "0", "--networks", "3", "--item-budget-seconds", "0.02",
            "--target-ci", "0.5", "--session", "kill-test", "--limit", "150", "--drift-tolerance", "1e9", "--repeat", "0",
            *extra]


def test_kill_9_then_rerun_has_every_measurement_once(tmp_path):
    db = tmp_path / "m.sqlite"
    # This process's path: the installed pynas (CI) or the dev tree (PYTHONPATH=$PWD), whichever it uses.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for attempt in range(3):
        proc = subprocess.Popen(_profile_cmd(db), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once it has measured something (more each round)
            time.sleep(0.3)
            if db.exists():
                with sqlite3.connect(db) as c:
                    try:
                        if c.execute("SELECT count(*) FROM measurements").fetchone()[0] > 30 * (attempt + 1):
                            break
                    except sqlite3.OperationalError:
                        pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(_profile_cmd(db), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 of" in done.stdout and " left" in done.stdout
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        total, distinct = c.execute("SELECT count(*), count(DISTINCT key) FROM measurements").fetchone()
    expected = len(plan(get_space("mnasnet", resolution=32), networks=3, limit=150).items)
    assert total == distinct == expected


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["profile", "--backend", "tensorrt", "--db", str(tmp_path / "x.sqlite")]) == 2
    assert "argument --backend: invalid choice: 'tensorrt' (choose from 'native', 'torch', 'torch_cl', 'onnxruntime', " \
        "'litert')" in capsys.readouterr().err
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not a database" * 100)
    assert main(["profile", "--resolution", "32", "--db", str(junk), "--networks", "0", "--neighbours", "0"]) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and "SQLite" in err
    assert junk.read_bytes() == b"definitely not a database" * 100  # untouched
    assert main(["profile", "--space", "nasnet", "--db", str(tmp_path / "y.sqlite")]) == 2
    assert "space" in capsys.readouterr().err
    fresh = tmp_path / "z.sqlite"
    for flag, value, message in (
            ("--drift-tolerance", "-0.1", "argument --drift-tolerance: expected a finite number in (0, 1e+12], got '-0.1'"),
            ("--item-budget-seconds", "0", "argument --item-budget-seconds: expected a finite number in (0, 3600], got '0'"),
            ("--network-target-ci", "nan", "argument --network-target-ci: expected a finite number in (0, 1], got 'nan'"),
            ("--repeat", "-1", "argument --repeat: expected an integer 0..100000, got '-1'"),
            ("--round-size", "0", "argument --round-size: expected an integer 1..100000, got '0'"),
            ("--adaptive", "-1", "argument --adaptive: expected an integer 0..1000, got '-1'")):
        assert main(["profile", "--resolution", "32", "--limit", "3", "--db", str(fresh), flag, value]) == 2
        assert message in capsys.readouterr().err
        if fresh.exists():  # nothing measured before the error
            with Store(fresh) as store:
                assert not list(store.measurements())


class _States:
    """Stands in for backends.time_interleaved: item / reference = 2 always; the reference's time
    (the machine's state, fast state 1.0 ms) is 1.0 ms, or `extreme` for the calls in `slow`."""

    def __init__(self, slow=(), extreme=5.0):
        self.slow, self.extreme, self.calls = set(slow), extreme, 0

    def __call__(self, item, reference, **options):
        from tests.test_profiling_steady import interleaved

        self.calls += 1
        return interleaved(2.0, self.extreme if self.calls in self.slow else 1.0)


def test_items_timed_in_an_extreme_state_are_timed_again_at_the_end_or_by_a_rerun(tmp_path):
    from pynas.store import Context

    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=6)
    backend = Backend("native")
    context = Context.here(backend.name, backend.version, backend.threads)
    with Store(tmp_path / "m.sqlite") as store:
        # Items 2 and 3 timed with the reference at 5x its fast state: timed again at the end.
        report = run(p, backend, store, harness=FAST, interleave=_States(slow={2, 3}))
        assert report.measured == 6 and report.repaired == 2 and report.slow_spells == 0
        assert "2 items timed again at the end" in report.summary()
        rows = list(store.measurements(backend="native"))
        assert len(rows) == 8 and sum(bool(m.harness.get("slow_spell")) for m in rows) == 2
        assert sum(bool(m.harness.get("retimed")) for m in rows) == 2
        assert store.slow_only(context) == set() and unmeasured(p, backend, store) == []
    with Store(tmp_path / "n.sqlite") as store:
        # A spell through a whole later run (the series' fast state known from an earlier one):
        # every item stays flagged, and the next run measures them again.
        assert run(plan(get_space("mnasnet", resolution=32), seed=0, limit=3), backend, store, harness=FAST,
                   interleave=_States()).measured == 3
        report = run(p, backend, store, harness=FAST, interleave=_States(slow=range(1, 100)))
        assert report.measured == 3 and report.repaired == 0 and report.slow_spells == 3
        assert "a rerun measures them again" in report.summary()
        keys = {i.key for i in p.items[3:]}
        assert store.slow_only(context) == keys and {i.key for i in unmeasured(p, backend, store)} == keys
        assert run(p, backend, store, harness=FAST, interleave=_States()).measured == 3
        assert store.slow_only(context) == set() and unmeasured(p, backend, store) == []
    with Store(tmp_path / "o.sqlite") as store:
        # A larger drift tolerance accepts the same state.
        report = run(p, backend, store, harness=FAST, interleave=_States(slow={2, 3}), drift_tolerance=4.0)
        assert report.repaired == report.slow_spells == 0 and max(report.states) == pytest.approx(5 / 1.4)
    with pytest.raises(ValueError, match="drift_tolerance: expected a number > 0, got 0"):
        run(p, backend, store, drift_tolerance=0)
    with pytest.raises(ValueError, match="repeat: expected an integer >= 0, got -1"):
        run(p, backend, store, repeat=-1)


def test_repeatability_sample_is_timed_again_stored_and_read_by_training(tmp_path):
    from pynas.predictor.train import load_dataset

    p = plan(get_space("mnasnet", resolution=32), networks=2, seed=0)
    p = type(p)(p.space, p.resolution, p.counts, p.items[:30] + [i for i in p.items if i.kind == "network"])
    with Store(tmp_path / "m.sqlite") as store:
        report = run(p, Backend("native"), store, harness=FAST, repeat=6, interleave=_States())
        assert report.measured == 32
        assert report.repeatability["networks"]["n"] == 2 and report.repeatability["segments"]["n"] == 4
        assert report.repeatability["networks"]["median"] == 0.0  # the fake's ratios do not change
        assert "repeatability, 2 networks timed again at the end: relative difference median 0.0%" in report.summary()
        rows = list(store.measurements(backend="native"))
        assert len(rows) == 38 and sum(bool(m.harness.get("repeat")) for m in rows) == 6
        network = next(m for m in rows if m.op.kind == "network")
        assert network.harness["reference"] == f"network:{p.items[0].arch}"  # networks against a network
        assert next(m for m in rows if m.op.kind == "mbconv").harness["reference"] == p.items[0].key
        data = load_dataset(store, backend="native")
        assert data.timing == "ratio" and data.ignored == 0
        assert data.repeatability["segments"]["n"] == 4 and data.repeatability["networks"]["n"] == 2


def test_training_reads_ratio_rows_on_one_scale_and_leaves_raw_rows_out(tmp_path):
    from pynas.predictor.train import load_dataset
    from pynas.store import Context, OpKey, Stats

    backend = Backend("native")
    context = Context.here(backend.name, backend.version, backend.threads)

    def ratio_row(ratio, reference_ms, **extra):
        return dict({"timing": "ratio", "ratio": ratio, "reference": "stem", "reference_ms": reference_ms}, **extra)

    with Store(tmp_path / "m.sqlite") as store:
        old = OpKey("old_segment", "mbconv", {})
        store.record(context, old, Stats(5.0, 0.1, 4.9, 5.1, 10), harness={"reference_ms": 1.0})
        # The stored stats were scaled by the fast state known at the time (1.2, then 1.0): training
        # takes every ratio times the series' fast state over all rows (1.0), so they agree.
        a, b = OpKey("a", "mbconv", {}), OpKey("b", "dsconv", {})
        store.record(context, a, Stats(2.4, 0.1, 2.3, 2.5, 10), harness=ratio_row(2.0, 1.2))
        for _ in range(12):
            store.record(context, b, Stats(3.0, 0.1, 2.9, 3.1, 10), harness=ratio_row(3.0, 1.0))
        store.record(context, a, Stats(2.0, 0.1, 1.9, 2.1, 10), harness=ratio_row(2.2, 1.0, slow_spell=True))
        data = load_dataset(store, backend="native")
    assert data.timing == "ratio" and data.ignored == 1 and "old_segment" not in data.segments
    assert data.segments["a"][2] == pytest.approx(2.0) and data.segments["b"][2] == pytest.approx(3.0)
    assert data.repeatability["segments"] == {"n": 1, "median": 0.0, "p90": 0.0}  # b's first two


def test_prepare_is_a_no_op_for_native_and_checks_jobs(tmp_path, capsys):
    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=5)
    with Store(tmp_path / "m.sqlite") as store:
        items = unmeasured(p, Backend("native"), store)
    assert len(items) == 5
    assert prepare(items, Backend("native"), jobs=2) == (0, [])
    with pytest.raises(ValueError, match="jobs: expected an integer >= 1, got 0"):
        prepare(items, Backend("native"), jobs=0)
    assert main(["profile", "--resolution", "32", "--limit", "5", "--db", str(tmp_path / "m.sqlite"),
                 "--prepare-only"]) == 0
    assert "converted 0 items for native" in capsys.readouterr().out


@pytest.mark.skipif(unavailable("onnxruntime") is not None, reason="needs onnxruntime (pip install 'pynas[onnx]')")
def test_prepare_converts_ahead_in_processes_then_run_only_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("PYNAS_CACHE", str(tmp_path / "cache"))
    p = plan(get_space("mnasnet", resolution=32), networks=1, seed=0, limit=4)
    p = type(p)(p.space, p.resolution, p.counts, p.items + [i for i in plan(
        get_space("mnasnet", resolution=32), networks=1, seed=0).items if i.kind == "network"])
    backend = Backend("onnxruntime")
    with Store(tmp_path / "m.sqlite") as store:
        items = unmeasured(p, backend, store)
        assert prepare(items, backend, jobs=2) == (len(items), [])
        converted = sorted((tmp_path / "cache" / "converted").glob("onnx-*.onnx"))
        assert len(converted) == len(items)  # one file per segment key and per network
        stamps = [f.stat().st_mtime_ns for f in converted]
        report = run(p, backend, store, harness=FAST, drift_tolerance=1e9)
        assert report.measured == len(items) and not report.failed
        assert [f.stat().st_mtime_ns for f in converted] == stamps  # loaded, not converted again
        assert unmeasured(p, backend, store) == [] and len(unmeasured(p, backend, store, again=True)) == len(items)


@pytest.mark.skipif(unavailable("onnxruntime") is not None, reason="needs onnxruntime (pip install 'pynas[onnx]')")
def test_prepare_converts_cell_networks_too(tmp_path, monkeypatch):
    # nb201's items are whole cell networks (cellnet_... strings, not block strings): --prepare-only
    # once failed every one of them on the block parser.
    monkeypatch.setenv("PYNAS_CACHE", str(tmp_path / "cache"))
    p = plan(get_space("nb201"), networks=2, seed=0)
    backend = Backend("onnxruntime")
    with Store(tmp_path / "c.sqlite") as store:
        items = [i for i in unmeasured(p, backend, store) if i.kind == "network"]
    assert len(items) == 2 and all(str(i.arch).startswith("cellnet_") for i in items)
    assert prepare(items, backend, jobs=1) == (2, [])
    assert len(list((tmp_path / "cache" / "converted").glob("onnx-*.onnx"))) == 2


def test_plan_counts_describe_the_items_kept():
    space = get_space("mnasnet", resolution=32)
    whole = plan(space, neighbours=10, networks=3, seed=1)
    assert whole.of is None and sum(whole.counts.values()) == len(whole.items)
    assert list(whole.counts) == ["stem", "convblock", "dsconv", "mbconv", "head", "neighbours", "networks"]
    few = plan(space, neighbours=10, networks=3, seed=1, limit=5)
    assert len(few.items) == 5 and few.of == len(whole.items)
    assert sum(few.counts.values()) == 5 and few.counts["stem"] == 1
    assert few.counts == dict(Counter(i.kind for i in few.items))  # here all segments of the space
    sampled = plan(space, segments_sample=20, networks=3, seed=1, limit=5)
    assert sampled.counts["of_space_segments"] == 2935 and sum(sampled.counts.values()) == 5 + 2935


def test_cli_plan_line_under_limit(tmp_path, capsys, monkeypatch):
    from pynas.profiling import session

    monkeypatch.setattr(session, "run", lambda *a, **k: session.Report(planned=5, already=0, measured=5))
    assert main(["profile", "--resolution", "32", "--limit", "5", "--db", str(tmp_path / "m.sqlite")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    space = get_space("mnasnet", resolution=32)
    whole, kept = (plan(space, neighbours=300, networks=120, seed=0, limit=limit) for limit in (None, 5))
    counts = ", ".join(f"{n} {kind}" for kind, n in kept.counts.items())
    assert first == f"space mnasnet at 32: 5 items to measure ({counts}) of a plan of {len(whole.items)}"
    assert counts.startswith("1 stem, ") and sum(kept.counts.values()) == 5  # "(1 stem, 4 mbconv) of a plan of 3355"


def test_run_skips_items_another_live_process_holds(tmp_path):
    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=6)
    backend = Backend("native")
    with Store(tmp_path / "m.sqlite") as store:
        from pynas.store import Context

        context = Context.here(backend.name, backend.version, backend.threads)
        assert store.claim(context, p.items[3].key)
    # The claim is this test's process's: make it another live process's (the test runner's parent).
    from pynas.store.db import _process_start
    parent = os.getppid()
    with sqlite3.connect(tmp_path / "m.sqlite") as conn:
        conn.execute("UPDATE claims SET pid = ?, started = ?", (parent, _process_start(parent)))
    conn.close()
    with Store(tmp_path / "m.sqlite") as store:
        report = run(p, backend, store, harness=FAST, drift_tolerance=1.0)
        assert report.measured == 5 and report.elsewhere == 1 and report.remaining == 0
        assert "1 taken by another process" in report.summary()
        assert p.items[3].key not in {m.op.key for m in store.measurements()}
        assert store.claims(context) == {p.items[3].key: (socket.gethostname(), parent)}  # its own claims released


def test_two_processes_profiling_one_store_measure_disjoint_keys(tmp_path):
    db = tmp_path / "m.sqlite"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # Items of ~0.15 s (a CI of 0.1% is never reached, the budget ends each): 40 of them outlast the
    # seconds one process may take longer than the other to start, so both get to measure.
    slow_items = ("--item-budget-seconds", "0.15", "--target-ci", "0.001", "--network-budget-seconds", "0.15")
    procs = [subprocess.Popen(_profile_cmd(db, "--session", f"p{i}", "--limit", "40", *slow_items), env=env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (0, 1)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    with sqlite3.connect(db) as c:
        total, distinct = c.execute("SELECT count(*), count(DISTINCT key) FROM measurements").fetchone()
        per_session = dict(c.execute("SELECT session, count(*) FROM measurements GROUP BY session").fetchall())
        claims = c.execute("SELECT count(*) FROM claims").fetchone()[0]
    c.close()
    expected = len(plan(get_space("mnasnet", resolution=32), networks=3, limit=40).items)
    assert total == distinct == expected  # together everything, no key twice
    assert set(per_session) == {"p0", "p1"} and all(n > 0 for n in per_session.values()), per_session
    assert claims == 0  # each released its own
    assert any("taken by another process" in out for out, _ in outputs)


def test_nb201_plans_whole_networks_against_its_reference_network():
    space = get_space("nb201")
    p = plan(space, networks=40, seed=3)
    reference = space.reference_network()
    stem = p.items[0]
    assert stem.kind == "stem" and stem.arch == reference and stem.segment == "stem"
    nets = p.items[1:]
    assert p.counts == {"stem": 1, "networks": 40} and all(i.is_network for i in nets)
    assert len({i.key for i in nets}) == 40 and all(space.holds_network(i.arch) and i.key == str(i.arch) for i in nets)
    again = plan(space, networks=40, seed=3)
    assert [i.key for i in again.items] == [i.key for i in p.items]  # seeded: reruns resume the same plan
    short = plan(space, networks=40, seed=3, limit=5)
    assert [i.key for i in short.items] == [i.key for i in p.items[:5]] and short.of == 41
    extra = plan(space, networks=2, seed=3, extra=["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert extra.counts == {"stem": 1, "networks": 2, "extra": 1}
    with pytest.raises(ValueError, match="neighbours, segments_sample: expected none for space nb201"):
        plan(space, neighbours=10, networks=2)


def test_nb201_networks_are_timed_whole_as_ratios_to_the_reference_network(tmp_path):
    space = get_space("nb201")
    p = plan(space, networks=3, seed=0)
    with Store(tmp_path / "m.sqlite") as store:
        report = run(p, Backend("native"), store, harness=FAST, session="t", drift_tolerance=1e9)
        assert report.measured == 4 and not report.failed
        rows = {m.op.key: m for m in store.measurements(kind="network")}
    assert set(rows) == {i.key for i in p.items[1:]}
    assert {m.harness["reference"] for m in rows.values()} == {f"network:{space.reference_network()}"}
    assert all(m.harness["timing"] == "ratio" and m.stats.median_ms > 0 for m in rows.values())


def test_profile_nb201_from_the_command_line(tmp_path, capsys):
    db = tmp_path / "m.sqlite"
    code = main(["profile", "--space", "nb201", "--db", str(db), "--networks", "2", "--repeat", "0",
                 "--network-budget-seconds", "0.05", "--item-budget-seconds", "0.02", "--drift-tolerance", "1e9"])
    out = capsys.readouterr().out
    assert code == 0 and "space nb201 at 32: 3 items to measure (1 stem, 2 networks)" in out
    for flag in ("--neighbours", "--segments"):
        assert main(["profile", "--space", "nb201", "--db", str(db), flag, "5"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{flag}: expected none with --space nb201, whose networks are profiled " \
                                           f"whole" in err
    assert main(["profile", "--space", "darts", "--db", str(db)]) == 2
    assert "--space: expected a space pynas profiles (mnasnet, fbnet, nb201), got darts" in capsys.readouterr().err
