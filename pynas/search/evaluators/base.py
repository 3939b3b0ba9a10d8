"""The accuracy evaluator interface: the budget of a search is counted in its evaluations.

    evaluator = make_evaluator("nb201:imagenet16", space, fidelity=12)   # options=: an evaluator's own
    outcomes = evaluator.evaluate([Candidate(tokens, arch, text), ...])   # one Outcome each

An evaluation either gives an accuracy (percent) or fails with a reason: a failure is an Outcome
with `error` set and `accuracy` None, reported per architecture, never a silent 0. The search loop
retries a failed evaluation once and logs a second failure as such.

Asynchronous batches (training-based evaluators, Ray): `submit(candidates)` returns a `Pending`
whose `ready()` says whether its outcomes are in and `result()` waits for them. The base class
runs `evaluate` at once; an evaluator with its own workers overrides `submit`, and the loop keeps
several batches in flight. `fingerprint()` names what decides its numbers (dataset, fidelity, data
file sha256, function), stored in a search's log so that a resume with another evaluator is refused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Candidate:
    """One architecture to evaluate: its tokens in the space, the decoded architecture (an `Arch`,
    or the space's own type, e.g. a NAS-Bench-201 cell) and its string."""
    tokens: tuple[int, ...]
    arch: object
    text: str


@dataclass(frozen=True)
class Outcome:
    """`accuracy` in percent, or None with `error` saying why; `seconds` what the evaluation cost
    (the wall time spent, or for a table the cost it stands for, e.g. the benchmark's training time);
    `score` the raw number behind `accuracy` where that is a mapping of something else (a zero-cost
    proxy's score, whose percentile in the space is the accuracy), else None."""
    accuracy: float | None
    error: str | None = None
    seconds: float = 0.0
    score: float | None = None

    def __post_init__(self):
        if (self.accuracy is None) == (self.error is None):
            raise ValueError("outcome: expected exactly one of accuracy and error")
        if self.accuracy is not None and not (math.isfinite(self.accuracy) and 0 <= self.accuracy <= 100):
            raise ValueError(f"accuracy: expected a percentage in [0, 100], got {self.accuracy!r}")

    @property
    def ok(self) -> bool:
        return self.error is None


class Pending:
    """Outcomes on their way (the base class's are already in)."""

    def __init__(self, outcomes: list[Outcome]):
        self._outcomes = outcomes

    def ready(self) -> bool:
        return True

    def result(self) -> list[Outcome]:
        return self._outcomes


class Evaluator:
    """Subclasses set `name` and implement `evaluate` and `fingerprint`."""

    name: str = ""

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        raise NotImplementedError

    def submit(self, candidates: Sequence[Candidate]) -> Pending:
        return Pending(self.evaluate(candidates))

    def fingerprint(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name
