"""Accuracy evaluators by spec (`make_evaluator`): what a search's budget pays for.

* ``nb201:cifar10|cifar100|imagenet16`` (`fidelity` 12, the default: the 12-epoch validation
  accuracy, a cheap noisy proxy as MnasNet's 5-epoch training; 200: the 200-epoch test accuracy,
  what a NAS-Bench-201 search is judged by): a lookup in the benchmark's table, space nb201 only.
* ``python:MODULE:FUNCTION`` / ``python:FILE.py:FUNCTION``: a user's function (`python.py`).
* ``train:DATASET[:EPOCHS]``: proxy training on real data (`train.py`).
* ``zero-cost:PROXY``: a zero-cost proxy at initialisation (`zero_cost.py`).
* ``supernet:PATH``: a sub-network of a trained weight-sharing supernet (`supernet.py`).

Evaluators with options (the train evaluator's proxy resolution, width, threads, ...) take them as
keyword arguments of their `from_spec`; an unknown option is refused naming the ones it takes. The
options are part of the run's config (and its fingerprint where they change a score).

Training-based evaluators (proxy training, zero-cost proxies, a supernet) plug in through the same
interface; `pynas.search.workers` runs any of them on a process pool or Ray, one task per candidate.
"""
from __future__ import annotations

import importlib
import inspect

from pynas.search.evaluators.base import Candidate, Evaluator, Outcome, Pending

# kind -> (module, class, what follows the colon); classes other than nb201's and python's take
# `from_spec(rest, space, **options)`.
_KINDS = {
    "nb201": ("pynas.search.evaluators.table", "NB201Evaluator", "cifar10|cifar100|imagenet16"),
    "python": ("pynas.search.evaluators.python", "PythonEvaluator", "MODULE:FUNCTION or FILE.py:FUNCTION"),
    "train": ("pynas.search.evaluators.train", "TrainEvaluator", "DATASET[:EPOCHS]"),
    "zero-cost": ("pynas.search.evaluators.zero_cost", "ZeroCostEvaluator",
                  "synflow|naswot|jacob_cov|grad_norm|snip|params|flops"),
    "supernet": ("pynas.search.evaluators.supernet", "SupernetEvaluator", "PATH"),
}
KINDS = tuple(f"{kind}:{rest}" for kind, (_, _, rest) in _KINDS.items())


def _expected() -> str:
    return ", ".join(KINDS)


def evaluator_class(kind: str):
    module, name, _ = _KINDS[kind]
    return getattr(importlib.import_module(module), name)


def make_evaluator(spec: str, space, fidelity: int | None = None, options: dict | None = None) -> Evaluator:
    """The evaluator `spec` for architectures of `space` (checked now: a table of another space,
    a fidelity it does not have or an option it does not take is refused)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"evaluator: expected one of {_expected()}, got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind not in _KINDS:
        raise ValueError(f"evaluator: expected one of {_expected()}, got {spec!r}")
    options = dict(options or {})
    if kind in ("python", "nb201") and options:
        raise ValueError(f"evaluator option {next(iter(options))}: expected none with a {kind}: evaluator")
    if kind == "python":
        if fidelity is not None:
            raise ValueError("fidelity: expected none with a python: evaluator (it is a table's option)")
        return evaluator_class(kind)(rest)
    if kind == "nb201":
        if space.name != "nb201":
            raise ValueError(f"evaluator {spec}: space: expected nb201 (a table of NAS-Bench-201's architectures), "
                             f"got {space.name}")
        return evaluator_class(kind)(rest, fidelity=12 if fidelity is None else fidelity)
    if fidelity is not None:
        raise ValueError(f"fidelity: expected none with a {kind}: evaluator (it is the nb201 table's option)")
    cls = evaluator_class(kind)
    known = [name for name, p in inspect.signature(cls.from_spec).parameters.items()
             if p.kind == p.KEYWORD_ONLY]
    for name in options:
        if name not in known:
            raise ValueError(f"evaluator option {name}: expected one of {', '.join(known) or 'none'} for {kind}:, "
                             f"got {name!r}")
    return cls.from_spec(rest, space, **options)


def evaluator_from_config(config: dict, space) -> Evaluator:
    return make_evaluator(config["spec"], space, fidelity=config.get("fidelity"), options=config.get("options"))


__all__ = ["Candidate", "Evaluator", "KINDS", "Outcome", "Pending", "evaluator_class", "evaluator_from_config",
           "make_evaluator"]
