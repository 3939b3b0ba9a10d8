"""NAS-Bench-201's ground truth for scoring a search: what the best answer under a latency target is.

    truth = NB201Truth("imagenet16", "pixel3")
    target = truth.quantiles([0.25])[0]                    # T at the 25% latency quantile
    truth.best_accuracy_under(target)                      # the best 200-epoch test accuracy with latency <= T
    truth.regret(target, index)                            # that minus the test accuracy of the run's pick
    truth.floor_under(target)                              # the pick of a run that evaluated every cell under T
    truth.pareto_front()                                   # indices of the true front, by latency

Accuracy here is the 200-epoch test accuracy (what a search is judged by); the search itself sees
the 12-epoch validation accuracy (`proxy`). Latency is HW-NAS-Bench's on the device, the numbers the
`nb201-<device>` bundles give. Architectures are benchmark indices (`NB201Space.index_of`).
"""
from __future__ import annotations

import numpy as np

from pynas.space.nb201 import benchmark


class NB201Truth:
    """Ground truth of one (dataset, device): `accuracy` (200-epoch test, %), `proxy` (12-epoch
    validation, %) and `latency_ms` per benchmark index."""

    def __init__(self, dataset: str, device: str):
        data = benchmark()
        self.dataset, self.device, self.sha256 = dataset, device, data.sha256
        self.accuracy = data.accuracy(dataset, 200)
        self.proxy = data.accuracy(dataset, 12)
        self.latency_ms = data.latency(device)

    def _under(self, target_ms: float) -> np.ndarray:
        feasible = self.latency_ms <= target_ms
        if not feasible.any():
            raise ValueError(f"target_ms: expected at least the fastest architecture's {self.latency_ms.min():g} ms "
                             f"on {self.device}, got {target_ms!r}")
        return np.flatnonzero(feasible)

    def best_under(self, target_ms: float, by: str = "accuracy") -> int:
        """The index with the highest `by` ("accuracy" or "proxy") among latency <= `target_ms`;
        ties go to the lower latency, then the lower index."""
        if by not in ("accuracy", "proxy"):
            raise ValueError(f"by: expected 'accuracy' or 'proxy', got {by!r}")
        score = getattr(self, by)
        under = self._under(target_ms)
        order = np.lexsort((under, self.latency_ms[under], -score[under]))  # last key first
        return int(under[order[0]])

    def best_accuracy_under(self, target_ms: float) -> float:
        """The best 200-epoch test accuracy of any architecture with latency <= `target_ms`."""
        return float(self.accuracy[self.best_under(target_ms)])

    def floor_under(self, target_ms: float) -> float:
        """The test accuracy of what a run that evaluated every architecture under `target_ms`
        returns (its best by the proxy): the best a search on the proxy can do."""
        return float(self.accuracy[self.best_under(target_ms, by="proxy")])

    def regret(self, target_ms: float, index: int) -> float:
        """`best_accuracy_under(target_ms)` minus the test accuracy of architecture `index`."""
        return self.best_accuracy_under(target_ms) - float(self.accuracy[index])

    def pareto_front(self) -> np.ndarray:
        """Indices of the architectures no other beats on both latency (<=) and accuracy (>=, one
        strictly), by latency ascending; one index per point (the lowest, for equal points)."""
        n = len(self.accuracy)
        order = np.lexsort((np.arange(n), -self.accuracy, self.latency_ms))  # latency, then best accuracy first
        accuracy = self.accuracy[order]
        best_before = np.maximum.accumulate(np.concatenate(([-np.inf], accuracy[:-1])))
        return order[accuracy > best_before]

    def quantiles(self, q) -> np.ndarray:
        """Latency quantiles (ms) over all architectures (numpy's default, linear interpolation)."""
        return np.quantile(self.latency_ms, q)

    def share_under(self, target_ms: float) -> float:
        """The share of all architectures with latency <= `target_ms`."""
        return float(np.mean(self.latency_ms <= target_ms))


def hypervolume(latency_ms, accuracy, ref_latency_ms: float, ref_accuracy: float) -> float:
    """The area (ms x accuracy points) dominated by the points and bounded by the reference point
    (latency `ref_latency_ms`, accuracy `ref_accuracy`): the union of the rectangles
    [latency, ref_latency] x [ref_accuracy, accuracy] of the points faster and better than it."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    keep = (lat < ref_latency_ms) & (acc > ref_accuracy)
    lat, acc = lat[keep], acc[keep]
    if not len(lat):
        return 0.0
    order = np.lexsort((-acc, lat))  # by latency, best accuracy first
    area, best = 0.0, ref_accuracy
    edges = np.append(lat[order], ref_latency_ms)
    for i, j in enumerate(order):  # sweep left to right: the best accuracy so far covers up to the next point
        best = max(best, acc[j])
        area += (edges[i + 1] - edges[i]) * (best - ref_accuracy)
    return float(area)
