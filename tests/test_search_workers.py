"""Evaluations on workers (pynas/search/workers.py): serial, a process pool and a real local Ray give
the same outcomes and the same search; a worker killed mid-evaluation loses nothing; an evaluation
that kills its worker twice is a failed Outcome; a Ray address that does not answer is a one-line
error within the timeout; budget_seconds stops a run and a resume respects it.

One local Ray (2 CPUs) for the module: starting one costs seconds."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from pynas import search
from pynas.search import workers
from pynas.search.evaluators import Candidate, make_evaluator
from pynas.search.log import LOG_NAME
from pynas.search.workers import CRASHED, Execution, with_workers
from pynas.space import get_space

ray = pytest.importorskip("ray")

EVALUATOR = '''
import math, os, time, zlib
from pathlib import Path

def accuracy(archs):
    out = []
    for a in archs:
        time.sleep(0.01)
        crc = zlib.crc32(a.encode())            # the candidate decides its number, never the worker
        if crc % 7 == 0:
            out.append(math.nan)                # a per-architecture failure
        elif crc % 11 == 0:
            raise RuntimeError("diverged")      # an exception: this candidate's failure
        else:
            out.append(30 + (crc % 6000) / 100)
    return out

def killable(archs):
    """The victim writes its pid and sleeps (the test kills it) the first time; a retry sees the mark."""
    mark = Path(MARK)
    if archs[0] == VICTIM and not mark.exists():
        mark.write_text(str(os.getpid()))
        time.sleep(60)
    return accuracy(archs)

def suicidal(archs):
    if archs[0] == VICTIM:
        os.kill(os.getpid(), 9)
    return accuracy(archs)
'''


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def space():
    return get_space("nb201")


def candidates(space, n=16, seed=0):
    out = []
    for t in space.sample_tokens(n, seed=seed):
        cell = space.decode(t)
        out.append(Candidate(tuple(int(x) for x in t), cell, str(cell)))
    return out


def write_evaluator(tmp_path, victim="") -> str:
    path = tmp_path / "acc.py"
    path.write_text(f"MARK = {str(tmp_path / 'mark')!r}\nVICTIM = {victim!r}\n" + textwrap.dedent(EVALUATOR))
    return str(path)


def outcomes(space, spec, execution, cands):
    judge = with_workers(make_evaluator(spec, space), {"spec": spec, "fidelity": None}, space, execution)
    try:
        return [(o.accuracy, o.error) for o in judge.submit(cands).result()]
    finally:
        judge.close()


def test_serial_pool_and_ray_give_the_same_outcomes(local_ray, space, tmp_path):
    cands = candidates(space)
    for spec in ("nb201:cifar10", f"python:{write_evaluator(tmp_path)}:accuracy"):
        serial = outcomes(space, spec, Execution("serial"), cands)
        assert outcomes(space, spec, Execution("pool", workers=2), cands) == serial
        assert outcomes(space, spec, Execution("ray", workers=2), cands) == serial
        assert len(serial) == 16 and all((a is None) != (e is None) for a, e in serial)
    errors = [e for _, e in serial if e]  # the python one: NaN and exceptions are that candidate's failure
    assert errors and any("diverged" in e for e in errors) and all(a != 0 for a, _ in serial)


def test_a_pynas_checkout_in_the_working_directory_does_not_shadow_the_ray_workers_pynas(space, tmp_path,
                                                                                       monkeypatch):
    # Ray puts the driver's cwd first on its workers' sys.path; CI runs from a clean clone, whose
    # pynas/ has no compiled _core. Here a checkout that cannot be imported at all stands for it.
    checkout = tmp_path / "checkout"
    (checkout / "pynas").mkdir(parents=True)
    (checkout / "pynas" / "__init__.py").write_text("raise ImportError('the checkout shadowed pynas')\n")
    monkeypatch.chdir(checkout)
    cands = candidates(space, n=4, seed=3)
    serial = outcomes(space, "nb201:cifar10", Execution("serial"), cands)
    assert outcomes(space, "nb201:cifar10", Execution("ray", workers=2), cands) == serial
    assert all(error is None for _, error in serial)


def kill_when_marked(mark, timeout=60):
    def kill():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mark.exists() and mark.read_text():
                os.kill(int(mark.read_text()), signal.SIGKILL)
                return
            time.sleep(0.02)
    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_a_worker_killed_mid_evaluation_is_retried_and_nothing_is_lost(local_ray, space, tmp_path, executor):
    cands = candidates(space, seed=1)
    path = write_evaluator(tmp_path, victim=cands[5].text)
    expected = outcomes(space, f"python:{path}:accuracy", Execution("serial"), cands)
    killer = kill_when_marked(tmp_path / "mark")
    got = outcomes(space, f"python:{path}:killable", Execution(executor, workers=2), cands)
    killer.join(1)
    assert (tmp_path / "mark").exists() and not killer.is_alive()  # the kill happened
    assert got == expected


@pytest.mark.parametrize("executor", ["pool", "ray"])
def test_an_evaluation_that_kills_its_worker_twice_is_a_failed_outcome(local_ray, space, tmp_path, executor):
    cands = candidates(space, n=6, seed=2)
    path = write_evaluator(tmp_path, victim=cands[2].text)
    expected = outcomes(space, f"python:{path}:accuracy", Execution("serial"), cands)
    got = outcomes(space, f"python:{path}:suicidal", Execution(executor, workers=2), cands)
    assert got[2] == (None, CRASHED)
    assert got[:2] + got[3:] == expected[:2] + expected[3:]


def logged(folder):
    with sqlite3.connect(folder / LOG_NAME) as db:
        return db.execute("SELECT step, place, tokens, status, accuracy, error, attempts, reward, cached "
                          "FROM samples ORDER BY id").fetchall()


class Interrupt(Exception):
    pass


def stop_after(steps):
    seen = []

    def progress(log, rows):
        seen.append(rows)
        if len(seen) == steps:
            raise Interrupt
    return progress


def test_a_search_on_a_pool_or_ray_equals_the_serial_one_and_resumes_on_another_executor(local_ray, tmp_path):
    spec = f"python:{write_evaluator(tmp_path)}:accuracy"
    common = dict(strategy="evolution", seed=3, batch_size=8)
    # Explicitly serial: one task per candidate as on workers (without an executor a python: function gets the
    # whole batch, and an exception fails all of it).
    search.run("nb201", "nb201-pixel3", 5.0, spec, 32, tmp_path / "serial", execution=Execution("serial"), **common)
    search.run("nb201", "nb201-pixel3", 5.0, spec, 32, tmp_path / "pool", execution=Execution("pool", workers=2),
               **common)
    search.run("nb201", "nb201-pixel3", 5.0, spec, 32, tmp_path / "ray", execution=Execution("ray", workers=2),
               **common)
    with pytest.raises(Interrupt):  # started on a pool, stopped after two steps, finished on Ray
        search.run("nb201", "nb201-pixel3", 5.0, spec, 32, tmp_path / "moved", execution=Execution("pool", workers=2),
                   progress=stop_after(2), **common)
    search.resume(tmp_path / "moved", execution=Execution("ray", workers=2))
    serial = logged(tmp_path / "serial")
    assert len([r for r in serial if not r[8]]) == 32 and any(r[3] == "failed" for r in serial)
    for other in ("pool", "ray", "moved"):
        assert logged(tmp_path / other) == serial, other


def silent_port():
    """A TCP port that accepts and never answers (not a Ray cluster)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def test_a_ray_address_that_does_not_answer_is_a_one_line_error_within_the_timeout(tmp_path):
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens there now
    with pytest.raises(ValueError, match=rf"ray address 127.0.0.1:{port}: expected a Ray cluster there, got no answer"):
        workers._connect(ray, f"127.0.0.1:{port}", timeout=5)
    server = silent_port()
    try:  # the port answers but Ray never does: in a process of its own (the hung ray.init is abandoned)
        code = textwrap.dedent(f'''
            import sys, time
            from pynas.search import workers
            from pynas.space import get_space
            from pynas.search.evaluators import make_evaluator
            workers.CONNECT_TIMEOUT_S = 4
            space = get_space("nb201")
            start = time.monotonic()
            try:
                workers.with_workers(make_evaluator("nb201:cifar10", space), {{"spec": "nb201:cifar10"}}, space,
                                     workers.Execution("ray", ray_address="127.0.0.1:{server.getsockname()[1]}"))
            except ValueError as error:
                print(error, round(time.monotonic() - start))
                sys.stdout.flush()
                import os
                os._exit(0)
            os._exit(1)
        ''')
        done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-2000:]
    message, seconds = done.stdout.strip().rsplit(" ", 1)
    assert "expected a Ray cluster there, got no answer within 4 s" in message and int(seconds) < 30


@pytest.mark.parametrize("kwargs, message", [
    (dict(executor="threads"), "executor: expected one of serial, pool, ray, got 'threads'"),
    (dict(executor="pool", workers=0), "workers: expected an integer >= 1, got 0"),
    (dict(executor="pool", threads=True), "threads: expected an integer >= 1, got True"),
    (dict(executor="pool", ray_address="h:1"), "ray_address: expected only with executor ray, got executor pool"),
])
def test_bad_executions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Execution(**kwargs)


def test_ray_not_installed_names_the_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"executor ray: expected the ray package, not installed \(pip install "
                                         r"'pynas\[ray\]'\)"):
        Execution("ray")


def seconds_by_step(folder):
    with sqlite3.connect(folder / LOG_NAME) as db:
        return db.execute("SELECT step, SUM(seconds) FROM samples WHERE cached = 0 GROUP BY step ORDER BY step"
                          ).fetchall()


def test_budget_seconds_stops_the_run_and_a_resume_respects_it(tmp_path):
    spec = f"python:{write_evaluator(tmp_path)}:accuracy"  # ~0.01 s per evaluation (its wall time)
    options = dict(strategy="random", seed=0, batch_size=4, budget_seconds=0.2)
    whole = search.run("nb201", "nb201-pixel3", 5.0, spec, None, tmp_path / "whole", **options)
    assert whole.stop_reason == "budget_seconds" and whole.config["budget_seconds"] == 0.2
    sums = np.cumsum([s for _, s in seconds_by_step(tmp_path / "whole")])
    assert sums[-1] >= 0.2 > sums[-2]  # stopped at the first step that reached it
    assert f"of budget 0.2 s ({sums[-1]:.1f} s spent)" in search.report(tmp_path / "whole")
    again = search.resume(tmp_path / "whole")
    assert again.stop_reason == "budget_seconds" and again.evaluated == whole.evaluated  # nothing more spent
    with pytest.raises(Interrupt):
        search.run("nb201", "nb201-pixel3", 5.0, spec, None, tmp_path / "cut", progress=stop_after(2), **options)
    resumed = search.resume(tmp_path / "cut", execution=Execution("pool", workers=2))
    sums = np.cumsum([s for _, s in seconds_by_step(tmp_path / "cut")])
    assert resumed.stop_reason == "budget_seconds" and sums[-1] >= 0.2 > sums[-2]
    both = search.run("nb201", "nb201-pixel3", 5.0, spec, 6, tmp_path / "both", **options)
    assert both.stop_reason == "budget" and both.evaluated == 6  # whichever comes first


@pytest.mark.parametrize("budget, seconds, message", [
    (None, None, "budget: expected a number of evaluations or budget_seconds (or both), got neither"),
    (5, -1.0, "budget_seconds: expected a finite number of seconds > 0, got -1.0"),
    (5, float("nan"), "budget_seconds: expected a finite number of seconds > 0, got nan"),
])
def test_bad_budgets_are_refused_before_any_work(tmp_path, budget, seconds, message):
    with pytest.raises(ValueError) as caught:
        search.run("nb201", "nb201-pixel3", 5.0, "nb201:cifar10", budget, tmp_path / "run", budget_seconds=seconds)
    assert str(caught.value) == message and not (tmp_path / "run").exists()
