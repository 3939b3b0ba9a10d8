"""Side-by-side timing for benchmarks: interleaved passes, rotating inputs, medians.

The VMs this runs on have slow and fast spells of 5-8% lasting about a minute, so candidates are
timed in interleaved passes (A B C, A B C, ...) and each candidate's result is the median of its
per-pass medians; ratios between candidates come from the same passes.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


def time_calls(fn: Callable, inputs: Sequence, min_seconds: float = 0.05, min_runs: int = 5) -> list[float]:
    """Seconds per call, cycling through `inputs` so repeated runs do not all hit a warm cache."""
    fn(inputs[0])  # warm-up
    samples, start, i = [], time.perf_counter(), 0
    while len(samples) < min_runs or time.perf_counter() - start < min_seconds:
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        fn(x)
        samples.append(time.perf_counter() - t0)
        i += 1
    return samples


def interleaved(candidates: dict[str, Callable], inputs: Sequence, passes: int = 7,
                seconds_per_pass: float = 0.05) -> dict[str, Timing]:
    """Time every candidate in each of `passes` interleaved rounds; medians of per-pass medians."""
    per_pass: dict[str, list[float]] = {name: [] for name in candidates}
    everything: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(passes):
        for name, fn in candidates.items():
            samples = time_calls(fn, inputs, seconds_per_pass)
            per_pass[name].append(statistics.median(samples))
            everything[name].extend(samples)
    result = {}
    for name in candidates:
        deciles = statistics.quantiles(everything[name], n=10)
        result[name] = Timing(1e3 * statistics.median(per_pass[name]), 1e3 * deciles[0], 1e3 * deciles[-1],
                              len(everything[name]))
    return result
