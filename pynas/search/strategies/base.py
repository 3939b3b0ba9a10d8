"""The strategy interface: ask for candidates, tell their outcomes; state that saves and restores.

A strategy proposes token vectors (one int per decision of the space) and learns from what it is
told. The search loop (`pynas.search.loop`) owns the budget, the log and the evaluations:

    strategy = make_strategy("evolution", problem, seed=0)
    tokens = strategy.ask(n)                      # n x D int64, n >= 1
    strategy.tell(tokens, accuracy, latency_ms, reward)   # same rows, any order the loop asked them

Contract (the loop's resume relies on it; tests check every registered strategy):

* Deterministic: from the same state, `ask(n)` returns the same rows and leaves the same state.
  All randomness comes from the strategy's own seeded generators, which are part of its state.
* `tell` gets every asked row exactly once, in the order asked, before the next `ask`.
  ``accuracy`` (percent) is NaN for a failed evaluation: that row's reward is NaN too, and the
  strategy must skip it (never learn from a made-up number). A row may repeat an architecture told
  before (the loop answers repeats from its cache without spending budget).
* `get_state()` -> `State`: everything needed to continue exactly (weights, optimiser moments,
  baselines, populations, generator states), as JSON-able values plus named numpy arrays, never
  pickle; `set_state(state)` on a freshly built strategy with the same problem, seed and options
  restores it bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pynas.search.problem import Problem


@dataclass
class State:
    """A strategy's state: `values` JSON-able (ints, floats, strings, lists, dicts), `arrays` named
    numpy arrays (stored as .npy inside an npz, allow_pickle=False)."""
    values: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Strategy:
    """Subclasses set `name`, `summary` (one line for `pynas search --help` and the docs) and
    `batch_size` (how many rows the loop asks for at a time by default) and implement the four
    methods below."""

    name: str = ""
    summary: str = ""
    batch_size: int = 1

    def __init__(self, problem: Problem, seed: int = 0, **options):
        if options:
            raise ValueError(f"strategy {self.name}: unknown option {next(iter(options))!r}")
        self.problem, self.seed = problem, seed

    def ask(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def tell(self, tokens: np.ndarray, accuracy: np.ndarray, latency_ms: np.ndarray, reward: np.ndarray) -> None:
        raise NotImplementedError

    def get_state(self) -> State:
        raise NotImplementedError

    def set_state(self, state: State) -> None:
        raise NotImplementedError


def rng_state(rng: np.random.Generator) -> dict:
    """A numpy Generator's state as JSON-able values (PCG64's 128-bit ints are Python ints)."""
    return rng.bit_generator.state


def restore_rng(state: dict) -> np.random.Generator:
    name = state.get("bit_generator")
    if name != "PCG64":
        raise ValueError(f"generator state: expected bit_generator 'PCG64', got {name!r}")
    bit = np.random.PCG64()
    bit.state = state
    return np.random.Generator(bit)
