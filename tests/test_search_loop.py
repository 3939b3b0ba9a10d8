"""The search loop (pynas/search/loop.py), its log and report: budget, cache, failures, resume.

A strategy defined here (registered by class) keeps the tests independent of the shipped ones;
tests/test_search_resume.py kills real `pynas search` processes running those."""
import json
import sqlite3
import textwrap

import numpy as np
import pytest

from pynas import search
from pynas.search.log import FORMAT_VERSION, LOG_NAME, LogError, SearchLog
from pynas.search.loop import StrategyError
from pynas.search.report import pareto_mask
from pynas.search.strategies import STRATEGIES
from pynas.search.strategies.base import State, Strategy, restore_rng, rng_state

BUNDLE = "x86-avx512-native"  # a shipped bundle with a compiled table of mnasnet@224


class Learner(Strategy):
    """Uniform rows, plus a repeat of the best row so far (to exercise the cache) and a running sum
    of rewards in its state (so that a lost or doubled tell would show)."""
    name = "test-learner"
    batch_size = 3

    def __init__(self, problem, seed=0, repeat=True):
        super().__init__(problem, seed)
        self.rng, self.repeat = np.random.default_rng(seed), repeat
        self.best, self.total, self.told = None, 0.0, 0

    def ask(self, n):
        rows = self.problem.uniform(self.rng, n)
        if self.repeat and self.best is not None and n > 1:
            rows[0] = self.best
        return rows

    def tell(self, tokens, accuracy, latency_ms, reward):
        assert len(tokens) == len(accuracy) == len(latency_ms) == len(reward)
        for row, r in zip(tokens, reward):
            self.told += 1
            if np.isfinite(r):
                self.total += r
                if self.best is None or r > self.best_reward:
                    self.best, self.best_reward = np.array(row), r

    def get_state(self):
        values = {"rng": rng_state(self.rng), "total": self.total, "told": self.told}
        if self.best is not None:
            values["best_reward"] = self.best_reward
        return State(values, {} if self.best is None else {"best": self.best})

    def set_state(self, state):
        self.rng = restore_rng(state.values["rng"])
        self.total, self.told = state.values["total"], state.values["told"]
        if "best" in state.arrays:
            self.best, self.best_reward = state.arrays["best"], state.values["best_reward"]


class Drifter(Learner):
    """Not deterministic from its state: a resume must notice."""
    name = "test-drifter"
    calls = 0

    def ask(self, n):
        Drifter.calls += 1
        return self.problem.uniform(np.random.default_rng(Drifter.calls), n)


@pytest.fixture(autouse=True)
def registered():
    STRATEGIES["test-learner"] = Learner
    STRATEGIES["test-drifter"] = Drifter
    yield
    del STRATEGIES["test-learner"], STRATEGIES["test-drifter"]


EVALUATOR = '''
import zlib
CALLS = {"n": 0}
def accuracy(archs):
    CALLS["n"] += 1
    out = []
    for a in archs:
        h = zlib.crc32(a.encode())
        out.append(None if h % 11 == 0 else 40 + (h % 5000) / 100)   # about 1 in 11 fails
    return out
def crash_after(archs):
    import os
    CALLS["n"] += 1
    if CALLS["n"] > int(os.environ["CRASH_AFTER"]):
        raise SystemExit("killed")            # not an Exception: it goes through the loop as a kill would
    return accuracy(archs)
def always_raises(archs):
    raise RuntimeError("no GPU today")
'''


@pytest.fixture
def evaluator_file(tmp_path):
    path = tmp_path / "acc.py"
    path.write_text(textwrap.dedent(EVALUATOR))
    return path


def start(tmp_path, evaluator_file, out="run", function="accuracy", **options):
    options = {"strategy": "test-learner", "seed": 3, "target_ms": 3.0, "budget": 20, **options}
    return search.run("mnasnet", BUNDLE, options.pop("target_ms"), f"python:{evaluator_file}:{function}",
                      options.pop("budget"), tmp_path / out, **options)


def rows(folder):
    with sqlite3.connect(folder / LOG_NAME) as db:
        return db.execute("SELECT step, place, tokens, arch, latency_ms, status, accuracy, error, attempts, reward, "
                          "cached FROM samples ORDER BY id").fetchall()


def test_a_run_spends_its_budget_on_distinct_architectures_and_logs_everything(tmp_path, evaluator_file):
    done = start(tmp_path, evaluator_file)
    assert done.stop_reason == "budget" and done.evaluated == 20
    logged = rows(done.folder)
    fresh = [r for r in logged if not r[10]]
    assert len(fresh) == 20 and len({r[2] for r in fresh}) == 20  # the budget buys distinct architectures
    cached = [r for r in logged if r[10]]
    assert cached, "the learner repeats its best row: those are answered from the cache"
    first = {r[2]: r for r in fresh}
    for r in cached:  # a repeat carries its first evaluation's outcome, no cost
        assert (r[5], r[6]) == (first[r[2]][5], first[r[2]][6]) and r[8] == 0
    for r in logged:
        assert r[5] in ("done", "failed") and r[4] > 0
        assert (r[6] is None) == (r[5] == "failed") and (r[9] is None) == (r[5] == "failed")
    failed = [r for r in fresh if r[5] == "failed"]
    assert failed and all(r[8] == 2 and "no accuracy" in r[7] for r in failed)  # retried once, then logged
    assert all(r[8] == 1 for r in fresh if r[5] == "done")


def test_failed_evaluations_are_never_scored(tmp_path, evaluator_file):
    done = start(tmp_path, evaluator_file, function="always_raises", budget=6)
    logged = rows(done.folder)
    assert all(r[5] == "failed" and r[6] is None and r[9] is None for r in logged)
    assert all(r[7] == "RuntimeError: no GPU today" for r in logged)
    assert done.summary["best"] is None and done.summary["failed"] == 6
    assert "none of the evaluated architectures" in search.report(done.folder)


def test_resume_after_a_crash_ends_exactly_as_an_uninterrupted_run(tmp_path, evaluator_file, monkeypatch):
    whole = start(tmp_path, evaluator_file, out="whole", budget=30)
    for crash_after in (1, 4, 7):
        out = f"crashed{crash_after}"
        monkeypatch.setenv("CRASH_AFTER", str(crash_after))
        with pytest.raises(SystemExit):
            start(tmp_path, evaluator_file, out=out, function="crash_after", budget=30)
        before = rows(tmp_path / out)
        assert any(r[5] == "pending" for r in before)  # killed with a step in flight
        monkeypatch.setenv("CRASH_AFTER", "1000000")
        resumed = search.resume(tmp_path / out)
        after = rows(tmp_path / out)
        assert after == rows(whole.folder)  # the same samples, outcomes and rewards, in the same order
        assert resumed.summary["front"] == whole.summary["front"] and resumed.summary["best"] == whole.summary["best"]
        with SearchLog.open(tmp_path / out, search.loop._version()) as a, \
                SearchLog.open(whole.folder, search.loop._version()) as b:
            assert a.load_state()[1].values == b.load_state()[1].values  # the strategy too (its sums of rewards)


def test_resume_refuses_a_strategy_that_is_not_deterministic(tmp_path, evaluator_file, monkeypatch):
    monkeypatch.setenv("CRASH_AFTER", "2")
    with pytest.raises(SystemExit):
        start(tmp_path, evaluator_file, out="d", function="crash_after", strategy="test-drifter", budget=12)
    monkeypatch.setenv("CRASH_AFTER", "1000")
    with pytest.raises(StrategyError, match="not deterministic from its state"):
        search.resume(tmp_path / "d")


def test_resume_of_a_finished_run_changes_nothing(tmp_path, evaluator_file):
    done = start(tmp_path, evaluator_file, budget=8)
    before = rows(done.folder)
    again = search.resume(done.folder)
    assert again.stop_reason == "budget" and rows(done.folder) == before


def test_max_asks_ends_a_run_that_only_repeats(tmp_path, evaluator_file):
    class Stuck(Learner):
        name = "test-stuck"

        def ask(self, n):
            return np.zeros((n, self.problem.dimensions), dtype=np.int64)

    STRATEGIES["test-stuck"] = Stuck
    try:
        done = start(tmp_path, evaluator_file, strategy="test-stuck", budget=5, max_asks=12)
    finally:
        del STRATEGIES["test-stuck"]
    assert done.stop_reason == "max_asks" and done.evaluated == 1 and done.asked == 12


def test_report_writes_the_front_the_best_and_a_plot(tmp_path, evaluator_file):
    pytest.importorskip("matplotlib")
    done = start(tmp_path, evaluator_file, budget=25)
    text = search.report(done.folder)
    summary = json.loads((done.folder / "summary.json").read_text())
    best = summary["best"]
    assert best["latency_ms"] <= 3.0 and best["arch"] in text
    assert (done.folder / "best.txt").read_text().splitlines()[0] == best["arch"]
    assert (done.folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluated = [r for r in rows(done.folder) if r[5] == "done" and not r[10]]
    under = [r for r in evaluated if r[4] <= 3.0]
    assert best["accuracy"] == max(r[6] for r in under)
    front = summary["front"]
    for r in evaluated:  # nothing evaluated dominates a point of the front
        for f in front:
            assert not (r[6] >= f["accuracy"] and r[4] <= f["latency_ms"] and (r[6], r[4]) != (f["accuracy"],
                                                                                                f["latency_ms"]))


def test_pareto_mask():
    acc = np.array([50, 60, 55, 70, 70, 40])
    lat = np.array([1.0, 2.0, 2.5, 3.0, 4.0, 0.5])
    assert pareto_mask(acc, lat).tolist() == [True, True, False, True, False, True]


@pytest.mark.parametrize("change, message", [
    ({"budget": 0}, "budget: expected an integer >= 1, got 0"),
    ({"seed": -1}, "seed: expected an integer >= 0, got -1"),
    ({"strategy": "annealing"}, "strategy: expected one of "),
    ({"reward": "linear"}, "reward: expected one of absolute, soft, hard, v3, got 'linear'"),
    ({"target_ms": 0.01}, r"target_ms: expected a latency in the space's range \["),
    ({"target_ms": 1e6}, r"target_ms: expected a latency in the space's range \["),
    ({"target_ms": -1.0}, "target_ms: expected a latency in ms > 0, got -1.0"),
    ({"strategy_options": {"warp": 9}}, "strategy test-learner: unknown option .warp., expected one of repeat"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, evaluator_file, change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        start(tmp_path, evaluator_file, **change)
    assert not (tmp_path / "run").exists()


def test_evaluator_specs_are_checked(tmp_path, evaluator_file):
    for spec, message in (("nope", "evaluator: expected one of nb201:cifar10|cifar100|imagenet16, python:"),
                          (f"python:{evaluator_file}:missing", "expected a function missing in"),
                          ("python:no_such_module_here:f", "importing module no_such_module_here failed"),
                          (f"python:{tmp_path}/none.py:f", "expected a Python file at"),
                          ("nb201:cifar10", "space: expected nb201")):
        with pytest.raises(ValueError, match=message):
            search.run("mnasnet", BUNDLE, 3.0, spec, 5, tmp_path / "x", strategy="test-learner")
    assert not (tmp_path / "x").exists()


def test_a_new_run_refuses_an_existing_log_and_a_resume_refuses_a_foreign_file(tmp_path, evaluator_file):
    done = start(tmp_path, evaluator_file, budget=3)
    before = rows(done.folder)
    with pytest.raises(LogError, match="a search log is already there"):
        start(tmp_path, evaluator_file, budget=3)
    assert rows(done.folder) == before
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / LOG_NAME).write_text("not a database")
    with pytest.raises(LogError, match="expected an SQLite search log"):
        search.resume(tmp_path / "junk")
    with pytest.raises(LogError, match="expected a search folder"):
        search.resume(tmp_path / "nothing")
    with sqlite3.connect(done.folder / LOG_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(LogError, match=f"format_version: expected {FORMAT_VERSION}, got 99"):
        search.resume(done.folder)
    with sqlite3.connect(done.folder / LOG_NAME) as db:
        db.execute(f"UPDATE meta SET value = '{FORMAT_VERSION}' WHERE key = 'format_version'")
        db.execute("""UPDATE meta SET value = '"0.0.1"' WHERE key = 'pynas_version'""")
    with pytest.raises(LogError, match="pynas_version: expected .* got '0.0.1'"):
        search.resume(done.folder)


def test_resume_refuses_a_changed_evaluator(tmp_path, evaluator_file):
    done = start(tmp_path, evaluator_file, budget=3)
    evaluator_file.write_text(evaluator_file.read_text() + "\n# changed\n")
    with pytest.raises(ValueError, match="evaluator: expected"):
        search.resume(done.folder)
