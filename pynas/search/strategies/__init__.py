"""Search strategies behind one ask/tell interface (`base.Strategy`), by name.

Each module registers its classes here; `make_strategy(name, problem, seed, **options)` builds one.
torch is imported only by the RL controller's module, and only when it is asked for; Optuna only by
its peers' module.
"""
from __future__ import annotations

import importlib
import inspect

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy

# name -> (module, class): imported on demand, so `pynas search --strategy random` needs no torch.
# A user's own strategy: `STRATEGIES["mine"] = MyStrategy` (a Strategy subclass) before the search.
STRATEGIES: dict[str, tuple[str, str] | type] = {}
STRATEGIES["random"] = ("pynas.search.strategies.random", "Random")
STRATEGIES["random-feasible"] = ("pynas.search.strategies.random", "RandomFeasible")
STRATEGIES["evolution"] = ("pynas.search.strategies.evolution", "Evolution")
STRATEGIES["optuna-nsga2"] = ("pynas.search.strategies.optuna_peers", "OptunaNSGA2")
STRATEGIES["optuna-tpe"] = ("pynas.search.strategies.optuna_peers", "OptunaTPE")
STRATEGIES["rl"] = ("pynas.search.strategies.rl", "RLStrategy")
STRATEGIES["rl-independent"] = ("pynas.search.strategies.rl", "RLIndependentStrategy")
STRATEGIES["darts"] = ("pynas.search.strategies.differentiable", "Darts")
STRATEGIES["proxyless"] = ("pynas.search.strategies.differentiable", "Proxyless")


def make_strategy(name: str, problem: Problem, seed: int = 0, **options) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    entry = STRATEGIES[name]
    cls = entry if isinstance(entry, type) else getattr(importlib.import_module(entry[0]), entry[1])
    # A misspelt option is a ValueError naming it and the valid ones, not a TypeError from __init__.
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        known = [n for n in parameters if n not in ("problem", "seed")]
        for option in options:
            if option not in known:
                raise ValueError(f"strategy {name}: unknown option {option!r}, expected one of "
                                 f"{', '.join(known) or '(none)'}")
    return cls(problem, seed=seed, **options)


__all__ = ["STRATEGIES", "State", "Strategy", "make_strategy"]
