"""Accuracy evaluators by spec (`make_evaluator`): what a search's budget pays for.

* ``nb201:cifar10|cifar100|imagenet16`` (`fidelity` 12, the default: the 12-epoch validation
  accuracy, a cheap noisy proxy as MnasNet's 5-epoch training; 200: the 200-epoch test accuracy,
  what a NAS-Bench-201 search is judged by): a lookup in the benchmark's table, space nb201 only.
* ``python:MODULE:FUNCTION`` / ``python:FILE.py:FUNCTION``: a user's function (`python.py`).
* ``zero-cost:synflow|naswot|jacob_cov|grad_norm|snip|params|flops``: a zero-cost proxy's score at
  initialisation, reported as its percentile in the space (`zero_cost.py`); spaces nb201, mnasnet,
  fbnet; Gaussian inputs, batch 64, seed 0.

Training-based evaluators (proxy training, a supernet) and Ray plug in through
the same interface (`base.Evaluator.submit` for asynchronous batches).
"""
from __future__ import annotations

from pynas.search.evaluators.base import Candidate, Evaluator, Outcome, Pending

KINDS = ("nb201:DATASET", "python:MODULE:FUNCTION", "python:FILE.py:FUNCTION", "zero-cost:PROXY")


def make_evaluator(spec: str, space, fidelity: int | None = None) -> Evaluator:
    """The evaluator `spec` for architectures of `space` (checked now: a table of another space
    or a fidelity it does not have is refused)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"evaluator: expected one of {', '.join(KINDS)}, got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind == "python":
        if fidelity is not None:
            raise ValueError("fidelity: expected none with a python: evaluator (it is a table's option)")
        from pynas.search.evaluators.python import PythonEvaluator

        return PythonEvaluator(rest)
    if kind == "nb201":
        if space.name != "nb201":
            raise ValueError(f"evaluator {spec}: space: expected nb201 (a table of NAS-Bench-201's architectures), "
                             f"got {space.name}")
        from pynas.search.evaluators.table import NB201Evaluator

        return NB201Evaluator(rest, fidelity=12 if fidelity is None else fidelity)
    if kind == "zero-cost":
        from pynas.search.evaluators.zero_cost import ZeroCostEvaluator, parse_spec

        proxy = parse_spec(spec)
        if fidelity is not None:
            raise ValueError("fidelity: expected none with a zero-cost: evaluator (it is a table's option)")
        return ZeroCostEvaluator(proxy, space)
    raise ValueError(f"evaluator: expected one of {', '.join(KINDS)}, got {spec!r}")


def evaluator_from_config(config: dict, space) -> Evaluator:
    return make_evaluator(config["spec"], space, fidelity=config.get("fidelity"))


__all__ = ["Candidate", "Evaluator", "Outcome", "Pending", "evaluator_from_config", "make_evaluator"]
