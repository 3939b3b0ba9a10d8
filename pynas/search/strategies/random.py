"""The baselines: `random` (uniform over the tokens) and `random-feasible` (uniform among the
architectures the latency model puts at or under the target T).

* `random` draws each decision uniformly, so every architecture of the space is equally likely,
  whatever its latency: MnasNet's baseline. It may ask an architecture twice (the loop answers a
  repeat from its cache without spending budget).
* `random-feasible` prices candidates with the latency model (free) and keeps the first ones at or
  under T: rejection sampling in vectorised chunks of uniform draws (the first max(64, 8n) for n
  rows, doubling up to `chunk`, default 4096, while too few are under T), so each architecture under
  T is equally likely. It gives up with a ValueError after `max_draws` uniform
  draws (default 1,000,000) without finding enough, saying how many it drew: a T below nearly the
  whole space is better refused than searched forever.

Neither learns from what it is told; their state is their generator's.
"""
from __future__ import annotations

import numpy as np

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy, restore_rng, rng_state


def check_int(strategy: str, option: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; else a one-line ValueError naming the option."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low
            or (high is not None and value > high)):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"strategy {strategy}: option {option}: expected an integer {bound}, got {value!r}")
    return int(value)


def check_bool(strategy: str, option: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"strategy {strategy}: option {option}: expected true or false, got {value!r}")
    return bool(value)


def check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"ask: expected a number of rows >= 1, got {n!r}")
    return int(n)


def check_told(problem: Problem, tokens, accuracy, latency_ms, reward):
    """The told arrays as (tokens N x D int64, reward N float64), shapes checked."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[1] != problem.dimensions:
        raise ValueError(f"tell: expected tokens of shape N x {problem.dimensions}, got {tokens.shape}")
    reward = np.asarray(reward, dtype=np.float64).reshape(-1)
    for name, values in (("accuracy", accuracy), ("latency_ms", latency_ms), ("reward", reward)):
        if np.size(values) != len(tokens):
            raise ValueError(f"tell: expected {len(tokens)} {name} values (one per row), got {np.size(values)}")
    return tokens, reward


def sample_feasible(problem: Problem, rng: np.random.Generator, n: int, *, exclude: set | None = None,
                    chunk: int = 4096, max_draws: int = 1_000_000, strategy: str = "random-feasible",
                    error: bool = True) -> np.ndarray:
    """n rows, uniform among architectures whose predicted latency is <= T (and whose
    `tobytes()` is not in `exclude`, when given; the rows returned are then distinct). Rejection
    sampling in chunks of `chunk` uniform draws; after `max_draws` draws without n rows, a ValueError
    (error=True) or the rows found so far (error=False)."""
    target = problem.target_ms
    found: list[np.ndarray] = []
    count, draws = 0, 0
    taken = set() if exclude is not None else None
    size = min(chunk, max(64, 8 * n))
    while count < n and draws < max_draws:
        size = min(size, max_draws - draws)
        candidates = problem.uniform(rng, size)
        draws += size
        keep = np.asarray(problem.latency(candidates), dtype=np.float64) <= target
        rows = candidates[keep]
        if taken is not None:
            fresh = []
            for i, row in enumerate(rows):
                key = row.tobytes()
                if key not in exclude and key not in taken:
                    taken.add(key)
                    fresh.append(i)
                    if count + len(fresh) == n:
                        break
            rows = rows[fresh]
        rows = rows[: n - count]
        found.append(rows)
        count += len(rows)
        size = min(chunk, 2 * size)  # grows while T is rarely met
    if count < n and error:
        what = "new architecture" if exclude is not None else "architecture"
        raise ValueError(f"strategy {strategy}: found {count} of {n} {what}s with predicted latency <= T = "
                         f"{target:g} ms in {draws} uniform draws; raise the target")
    return np.concatenate(found, axis=0) if found else np.zeros((0, problem.dimensions), dtype=np.int64)


class Random(Strategy):
    name = "random"
    summary = "uniform over the tokens (every architecture equally likely, whatever its latency)"
    batch_size = 1

    def __init__(self, problem: Problem, seed: int = 0):
        super().__init__(problem, seed)
        self.rng = np.random.default_rng(seed)

    def ask(self, n: int) -> np.ndarray:
        return self.problem.uniform(self.rng, check_n(n))

    def tell(self, tokens, accuracy, latency_ms, reward) -> None:
        check_told(self.problem, tokens, accuracy, latency_ms, reward)

    def get_state(self) -> State:
        return State(values={"rng": rng_state(self.rng)})

    def set_state(self, state: State) -> None:
        self.rng = restore_rng(state.values["rng"])


class RandomFeasible(Random):
    name = "random-feasible"
    summary = "uniform among the architectures the latency model puts at or under T (rejection sampling)"

    def __init__(self, problem: Problem, seed: int = 0, chunk: int = 4096, max_draws: int = 1_000_000):
        super().__init__(problem, seed)
        self.chunk = check_int(self.name, "chunk", chunk, 1)
        self.max_draws = check_int(self.name, "max_draws", max_draws, 1)

    def ask(self, n: int) -> np.ndarray:
        return sample_feasible(self.problem, self.rng, check_n(n), chunk=self.chunk, max_draws=self.max_draws,
                               strategy=self.name)
