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
        first = run(p, backend, store, harness=FAST, budget_seconds=1e9, session="t", drift_tolerance=1.0)
        assert first.measured == len(p.items) and first.already == 0 and not first.failed
        second = run(p, backend, store, harness=FAST, session="t", drift_tolerance=1.0)
        assert second.measured == 0 and second.already == len(p.items)
        rows = list(store.measurements(backend="native"))
        assert Counter(m.op.key for m in rows) == {i.key: 1 for i in p.items}
        network = next(m for m in rows if m.op.kind == "network")
        assert network.op.features["segments"] and network.stats.median_ms > 0
        assert "reference_ratio" in rows[-1].harness and rows[-1].harness["options"]["min_runs"] == 3
        third = run(p, backend, store, harness=FAST, session="t2", drift_tolerance=1.0, again=True)  # another pass
        assert third.measured == len(p.items) and third.already == 0
        assert Counter(m.op.key for m in store.measurements(backend="native")) == {i.key: 2 for i in p.items}
        # A third pass cut short, then resumed by its tag: each key once more, none twice.
        cut = run(p, backend, store, harness=FAST, session="t3", drift_tolerance=1.0, again=True,
                  should_stop=lambda: len(list(store.measurements(session="t3"))) >= 5)
        assert cut.measured == 5 and cut.stopped_by == "interrupt"
        rest = run(p, backend, store, harness=FAST, session="t3", drift_tolerance=1.0, again=True)
        assert rest.already == 5 and rest.measured == len(p.items) - 5
        assert Counter(m.op.key for m in store.measurements(backend="native")) == {i.key: 3 for i in p.items}
        untagged = run(p, backend, store, harness=FAST, drift_tolerance=1.0, again=True)  # no tag: everything
        assert untagged.measured == len(p.items)


def test_budget_stops_between_items(tmp_path):
    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=200)
    with Store(tmp_path / "m.sqlite") as store:
        report = run(p, Backend("native"), store, harness=FAST, budget_seconds=0.5, drift_tolerance=1.0)
    assert report.stopped_by == "budget" and 0 < report.measured < len(p.items)
    assert report.remaining == len(p.items) - report.measured


def _profile_cmd(db, *extra):
    return [sys.executable, "-P", "-m", "pynas.cli", "profile", "--backend", "native", "--resolution", "32",
            "--db", str(db), "--neighbours", "0", "--networks", "3", "--item-budget-seconds", "0.02",
            "--target-ci", "0.5", "--session", "kill-test", "--limit", "150", "--drift-tolerance", "1", *extra]


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
    for flag, value, message in (("--drift-tolerance", "-0.1", "argument --drift-tolerance: expected a finite number in "
                                                               "[0, 10], got '-0.1'"),
                                 ("--round-size", "0", "argument --round-size: expected an integer 1..100000, got '0'"),
                                 ("--adaptive", "-1", "argument --adaptive: expected an integer 0..1000, got '-1'")):
        assert main(["profile", "--resolution", "32", "--limit", "3", "--db", str(fresh), flag, value]) == 2
        assert message in capsys.readouterr().err
        if fresh.exists():  # nothing measured before the error
            with Store(fresh) as store:
                assert not list(store.measurements())


class _Fake:
    """A Timed whose medians come from a list (the last one repeats)."""

    def __init__(self, medians):
        self.medians, self.calls = list(medians), 0

    def measure(self, **options):
        ms = self.medians[min(self.calls, len(self.medians) - 1)]
        self.calls += 1
        return {"median_ms": ms}


def test_drift_guard_remeasures_items_timed_in_a_slow_spell():
    from pynas.profiling.session import DriftGuard

    # Reference: fast (1.0), one noisy timing (1.2), then a spell (1.2, 1.2) in which the item
    # took 6.0, back to fast later. pause_seconds: the guard re-times the reference until it is back.
    reference = _Fake([1.0, 1.0, 1.2, 1.2, 1.0, 1.0, 1.0])
    guard = DriftGuard(reference, tolerance=0.03, retries=4, pause_seconds=5.0)
    item = _Fake([5.0, 5.0, 6.0, 5.0])
    first, drift = guard.measure(item, {})
    assert first["median_ms"] == 5.0 and drift["retries"] == 0 and drift["reference_ratio"] == 1.0
    noisy, drift = guard.measure(item, {})  # one slow reference timing is noise, not a spell
    assert noisy["median_ms"] == 5.0 and drift["retries"] == 0 and drift["state_ratio"] == 1.0
    assert drift["reference_ratio"] == pytest.approx(1.2)
    second, drift = guard.measure(item, {})  # two in a row: a spell; measured again once it is over
    assert second["median_ms"] == 5.0 and drift["retries"] == 1 and guard.retried == 1
    assert not drift.get("slow_spell") and guard.state_ratio == 1.0
    stuck = DriftGuard(_Fake([1.0, 1.5]), tolerance=0.03, retries=2, pause_seconds=0.0)
    result, drift = stuck.measure(_Fake([7.0]), {})
    assert drift["slow_spell"] and drift["retries"] == 2 and stuck.slow_spells == 1


def test_drift_guard_fast_state_survives_one_lucky_reference_timing():
    from pynas.profiling.session import DriftGuard

    # A minimum would make 0.9 the fast state and every later item (reference 1.0) look 11% slow.
    guard = DriftGuard(_Fake([1.0] * 30 + [0.9] + [1.0] * 100), tolerance=0.03, retries=4, pause_seconds=0.0)
    item = _Fake([5.0])
    drifts = [guard.measure(item, {})[1] for _ in range(60)]
    assert guard.fast_ms == 1.0 and guard.retried == 0 and not any(d.get("slow_spell") for d in drifts)


def test_drift_guard_stops_waiting_once_its_share_of_the_run_is_spent():
    from pynas.profiling.session import DriftGuard

    # A spell that never ends, no waiting allowed: the item is recorded at once, flagged.
    guard = DriftGuard(_Fake([1.0, 1.5]), tolerance=0.03, retries=4, pause_seconds=0.0, wait_share=0.0,
                       grace_seconds=0.0)
    item = _Fake([7.0, 5.0])
    result, drift = guard.measure(item, {})
    assert result["median_ms"] == 7.0 and item.calls == 1
    assert drift["slow_spell"] and drift["retries"] == 0 and guard.retried == 0 and guard.slow_spells == 1
    # With waiting allowed the same spell is retried up to `retries`, and the time it took is counted.
    patient = DriftGuard(_Fake([1.0, 1.5]), tolerance=0.03, retries=3, pause_seconds=0.0)
    _, drift = patient.measure(_Fake([7.0]), {})
    assert drift["slow_spell"] and drift["retries"] == 3 and patient.waited > 0


class _GuardSlowFor:
    """Stands in for DriftGuard: the first `slow` measurements are flagged as taken in a slow spell."""

    def __init__(self, slow, fast_ms=1.0):
        self.slow, self.calls, self.retried, self.waited, self.fast_ms = slow, 0, 0, 0.0, fast_ms

    def __call__(self, reference, **options):
        return self

    def measure(self, timed, harness):
        self.calls += 1
        drift = {"reference_ms": self.fast_ms, "reference_ratio": 1.0, "state_ratio": 1.0, "retries": 0}
        if self.calls <= self.slow:
            drift.update(reference_ratio=1.3, state_ratio=1.3, slow_spell=True)
        return timed.measure(**harness), drift


def test_items_recorded_in_a_slow_spell_are_repaired_at_the_end_or_by_a_rerun(tmp_path, monkeypatch):
    from pynas.predictor.train import load_dataset
    from pynas.profiling import session
    from pynas.store import Context

    p = plan(get_space("mnasnet", resolution=32), seed=0, limit=6)
    backend = Backend("native")
    context = Context.here(backend.name, backend.version, backend.threads)
    with Store(tmp_path / "m.sqlite") as store:
        # Two items flagged, both measured again cleanly at the end of the same run.
        monkeypatch.setattr(session, "DriftGuard", _GuardSlowFor(2))
        report = run(p, backend, store, harness=FAST)
        assert report.measured == 6 and report.repaired == 2 and report.slow_spells == 0
        assert "2 items repaired at the end" in report.summary()
        rows = list(store.measurements(backend="native"))
        assert len(rows) == 8 and sum(bool(m.harness.get("slow_spell")) for m in rows) == 2
        assert store.slow_only(context) == set() and unmeasured(p, backend, store) == []
        # A spell through the whole run: every item stays flagged, and the next run measures them again.
    with Store(tmp_path / "n.sqlite") as store:
        monkeypatch.setattr(session, "DriftGuard", _GuardSlowFor(100))
        report = run(p, backend, store, harness=FAST)
        assert report.measured == 6 and report.repaired == 0 and report.slow_spells == 6
        assert "a rerun measures them again" in report.summary()
        keys = {i.key for i in p.items}
        assert store.slow_only(context) == keys and {i.key for i in unmeasured(p, backend, store)} == keys
        monkeypatch.setattr(session, "DriftGuard", _GuardSlowFor(0))
        assert run(p, backend, store, harness=FAST).measured == 6
        assert store.slow_only(context) == set() and unmeasured(p, backend, store) == []
        # Training takes a key's clean measurements, not the slow ones.
        rows = list(store.measurements(backend="native"))
        slow = {m.op.key: m.stats.median_ms for m in rows if m.harness.get("slow_spell")}
        clean = {m.op.key: m.stats.median_ms for m in rows if not m.harness.get("slow_spell")}
        data = load_dataset(store, backend="native")
        assert {k: v[2] for k, v in data.segments.items()} == clean != slow
        # A run whose fast state is slower than earlier runs' says so.
        assert store.reference_times(context) == [1.0] * 18
        monkeypatch.setattr(session, "DriftGuard", _GuardSlowFor(0, fast_ms=1.2))
        report = run(p, backend, store, harness=FAST, again=True)
        assert report.fast_state_vs_earlier == pytest.approx(1.2) and "SLOW RUN" in report.summary()


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
        report = run(p, backend, store, harness=FAST, drift_tolerance=1.0)
        assert report.measured == len(items) and not report.failed
        assert [f.stat().st_mtime_ns for f in converted] == stamps  # loaded, not converted again
        assert unmeasured(p, backend, store) == [] and len(unmeasured(p, backend, store, again=True)) == len(items)


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
    procs = [subprocess.Popen(_profile_cmd(db, "--session", f"p{i}", "--limit", "40"), env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (0, 1)]
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
