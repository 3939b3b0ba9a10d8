"""The `table` evaluator: accuracy looked up in a benchmark's ground truth (NAS-Bench-201).

    evaluator = NB201Evaluator("imagenet16", fidelity=12)      # or NB201Evaluator.from_spec("nb201:imagenet16")
    evaluator.evaluate([Candidate(tokens, cell, text), ...])   # one Outcome each, in percent

A search sees the 12-epoch validation accuracy (`fidelity=12`, a noisy proxy like MnasNet's
5-epoch training) and is judged by the 200-epoch test accuracy (`fidelity=200`; see
`pynas.search.groundtruth`). An evaluation is a table lookup: `seconds` is 0 (no training runs;
the budget is counted in evaluations, not time).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pynas.search.evaluators.base import Candidate, Evaluator, Outcome
from pynas.space.nb201 import DATASETS, FIDELITIES, NB201Space, benchmark

PREFIX = "nb201"


class NB201Evaluator(Evaluator):
    """NAS-Bench-201's accuracy of a cell on `dataset` (cifar10, cifar100, imagenet16) after
    `fidelity` epochs (12: validation accuracy, the proxy; 200: test accuracy, the final figure)."""

    name = PREFIX

    def __init__(self, dataset: str, fidelity: int = 12):
        data = benchmark()
        self.accuracy = data.accuracy(dataset, fidelity)  # ValueError naming a bad dataset or fidelity
        self.dataset, self.fidelity, self.sha256 = dataset, int(fidelity), data.sha256
        self.space = NB201Space()

    @classmethod
    def from_spec(cls, spec: str, fidelity: int = 12) -> "NB201Evaluator":
        """From `nb201:DATASET` (what `--evaluator` takes)."""
        prefix, colon, dataset = spec.partition(":") if isinstance(spec, str) else ("", "", "")
        if prefix != PREFIX or not colon or dataset not in DATASETS:
            raise ValueError(f"evaluator: expected {' or '.join(f'{PREFIX}:{d}' for d in DATASETS)}, got {spec!r}")
        return cls(dataset, fidelity)

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        """One Outcome per candidate: its accuracy, or an error naming what is wrong with its tokens
        (the others are still answered)."""
        outcomes: list[Outcome | None] = [None] * len(candidates)
        rows, where = [], []
        for i, candidate in enumerate(candidates):
            try:
                rows.append(self.space.check_tokens(candidate.tokens))
                where.append(i)
            except (ValueError, TypeError) as error:
                outcomes[i] = Outcome(None, error=f"not a NAS-Bench-201 cell: {error}")
        if rows:
            accuracy = self.accuracy[self.space.index_of(np.array(rows, dtype=np.int64))]
            for i, value in zip(where, accuracy):
                outcomes[i] = Outcome(float(value), seconds=0.0)
        return outcomes

    def fingerprint(self) -> dict:
        return {"evaluator": PREFIX, "dataset": self.dataset, "fidelity": self.fidelity, "sha256": self.sha256}

    def describe(self) -> str:
        what = "12-epoch validation accuracy (the proxy)" if self.fidelity == 12 else "200-epoch test accuracy"
        return f"{PREFIX}:{self.dataset}, {what}, a table lookup (NAS-Bench-201, no training)"


__all__ = ["FIDELITIES", "NB201Evaluator"]
