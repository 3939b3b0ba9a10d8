"""Search strategies behind one ask/tell interface (`base.Strategy`), by name.

Each module registers its classes here; `make_strategy(name, problem, seed, **options)` builds one.
torch is imported only by the RL controller's module, and only when it is asked for; Optuna only by
its peers' module.
"""
from __future__ import annotations

import importlib

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy

# name -> (module, class): imported on demand, so `pynas search --strategy random` needs no torch.
STRATEGIES: dict[str, tuple[str, str]] = {}
STRATEGIES["rl"] = ("pynas.search.strategies.rl", "RLStrategy")
STRATEGIES["rl-independent"] = ("pynas.search.strategies.rl", "RLIndependentStrategy")


def make_strategy(name: str, problem: Problem, seed: int = 0, **options) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    module, cls = STRATEGIES[name]
    return getattr(importlib.import_module(module), cls)(problem, seed=seed, **options)


__all__ = ["STRATEGIES", "State", "Strategy", "make_strategy"]
