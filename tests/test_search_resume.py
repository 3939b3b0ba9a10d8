"""kill -9 at random points of real `pynas search` processes, then `--resume` until done: the log
ends exactly as an uninterrupted run's (samples, outcomes, rewards, order; the front and the best
architecture), and no architecture is evaluated twice (the evaluator counts its calls in a file).

Kills are placed by the log's progress (after a random number of logged samples), not by time, so
each lands inside the run whatever the machine's speed."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from pynas import search
from pynas.search.log import LOG_NAME

BUNDLE = "x86-avx512-native"
EVALUATOR = '''
import json, os, time, zlib
def accuracy(archs):
    time.sleep(0.004)                     # slow enough that a kill lands in the middle of a step
    with open(os.environ["PYNAS_TEST_CALLS"], "a") as f:
        for a in archs:
            f.write(json.dumps(a) + "\\n")
            f.flush()
    return [30 + (zlib.crc32(a.encode()) % 6000) / 100 for a in archs]
'''
KILLS = 4
BUDGET = 60


def samples(folder):
    with sqlite3.connect(folder / LOG_NAME) as db:
        return db.execute("SELECT step, place, tokens, arch, latency_ms, status, accuracy, error, attempts, reward, "
                          "cached FROM samples ORDER BY id").fetchall()


def logged(folder) -> int:
    try:
        with sqlite3.connect(f"file:{folder / LOG_NAME}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0


def command(*args):
    return [sys.executable, "-P", "-m", "pynas.cli", "search", *map(str, args)]


@pytest.mark.parametrize("strategy", ["evolution", "rl", "optuna-tpe"])
def test_kill_9_and_resume_ends_exactly_as_an_uninterrupted_run(tmp_path, strategy):
    if strategy.startswith("optuna"):
        pytest.importorskip("optuna")
    if strategy == "rl":
        pytest.importorskip("torch")
    evaluator = tmp_path / "acc.py"
    evaluator.write_text(textwrap.dedent(EVALUATOR))
    spec = f"python:{evaluator}:accuracy"
    env = dict(os.environ, PYNAS_TEST_CALLS=str(tmp_path / "calls-whole"), PYTHONWARNINGS="ignore")
    os.environ["PYNAS_TEST_CALLS"] = str(tmp_path / "calls-whole")
    try:
        whole = search.run("mnasnet", BUNDLE, 3.0, spec, BUDGET, tmp_path / "whole", strategy=strategy, seed=5)
    finally:
        del os.environ["PYNAS_TEST_CALLS"]
    assert whole.evaluated == BUDGET

    out = tmp_path / "killed"
    env["PYNAS_TEST_CALLS"] = str(tmp_path / "calls-killed")
    rng = random.Random(strategy)
    marks = sorted(rng.sample(range(2, BUDGET - 2), KILLS))
    args = ["--space", "mnasnet", "--predictor", BUNDLE, "--target-ms", 3.0, "--evaluator", spec, "--budget", BUDGET,
            "--strategy", strategy, "--seed", 5, "--out", out]
    kills = 0
    for i, mark in enumerate(marks):
        process = subprocess.Popen(command(*args) if i == 0 else command("--resume", out), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and logged(out) < mark and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= KILLS - 1, "the kills should land inside the run"
    done = subprocess.run(command("--resume", out), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stopped: budget" in done.stdout
    assert samples(out) == samples(whole.folder)
    killed_summary = json.loads((out / "summary.json").read_text())
    assert killed_summary["front"] == whole.summary["front"] and killed_summary["best"] == whole.summary["best"]
    # Nothing evaluated twice, except a batch in flight at a kill (evaluated, its outcomes not yet
    # committed): it is re-queued on resume, so at most one batch per kill is seen twice.
    from pynas.search.strategies import STRATEGIES

    module, cls = STRATEGIES[strategy]
    batch = getattr(__import__(module, fromlist=[cls]), cls).batch_size
    calls = [json.loads(line) for line in (tmp_path / "calls-killed").read_text().splitlines()]
    repeats = len(calls) - len(set(calls))
    assert repeats <= kills * batch, (repeats, kills, batch)
    assert set(calls) == {r[3] for r in samples(out) if not r[10]}
