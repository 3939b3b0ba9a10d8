"""Steady latencies from an unsteady machine: every item timed as a ratio to a reference timed
interleaved with it (`_core.time_interleaved`, cpp/profiling/interleaved.h).

Why a ratio. A shared machine (a 2-core VM here, with neighbours' builds and tests on both cores)
runs in states: the profiling thread gets the whole core, or shares it with other processes (a
call longer than a time slice is preempted), or finds the caches and memory loaded. A time taken
alone carries the state it was taken in: the same network timed twice minutes apart differed by 7%
(median, p90 22%), and a neighbour on the other core made whole networks 2-3x slower. Item sample,
reference sample, item sample, ...: the two samples of a pair are taken within milliseconds, in one
state, so their ratio is the state's no more. Measured with a memory or a compute hog on the other
core: whole networks timed alone ran 2.2-3.3x slower, their ratios to a reference network moved by
at most 6%; ratios to the stem (one short call a sample) did not follow them at all, and a
reference network was as wrong for segments (0.3-0.7x), which is why samples are matched in length
and why there are two references. `bench/repeatability.py` compares methods over passes.

Which reference. A spell slows work by how long it runs (a 20 ms call is preempted, a 0.3 ms one
mostly not) and by its footprint, so the reference is close to the item in both: the harness
repeats the shorter call of the pair until both samples last equally long, and
* segments are timed against the plan's stem (always its first item; 0.47 ms at MnasNet 224),
* whole networks against the whole network the stem was taken from (8 ms there), which streams
  its weights from L3 and DRAM as the item does: a segment reference repeated for as long did not
  follow a network through a memory-heavy spell.

Which clock. With one thread, samples are timed by the thread's CPU time (`cpu_time`, see
cpp/profiling/harness.h), not the wall clock: time spent preempted by a neighbour's process is not
counted at all. On this VM the profiling thread often had half its core (a neighbour's process on
it: whole networks took twice their time by the wall clock, and their ratios to the reference
still varied by 7-14% between samples; by CPU time 1.5-3%). What preemption leaves behind (caches
a neighbour evicted, a loaded memory system, the clock) the ratio takes out. Several threads:
the wall clock (other threads' work is not the calling thread's CPU time).

How a latency is derived. ratio (median over the pairs) x the reference's *fast-state time*:
the 10th percentile of that reference's times over the series (device, backend, version,
threads) — every run and pass of it, so runs and passes agree; a low quantile because a spell only
adds time. At record time the fast state is known from what was timed so far (`stats` hold that
estimate); `pynas.predictor.train.load_dataset` recomputes every row from its ratio and the series'
fast state over all its rows, so early and late rows of a run, and passes taken later, share one
scale. The harness record keeps the raw median, the ratio and the reference's time (see
`RatioTimer.measure`).

What is still rejected. The ratio holds while both samples of a pair see one state and the state
slows both alike; by CPU time what is left of a spell is mostly a loaded memory system, which slows
the stem (its 1.6 MB output streams through L3) more than a block whose data stay in L2: in such
a spell (the stem at 2.2x its fast CPU time) ratios moved by 4-20%. So in an extreme state (the
reference's median in the pairs over `state_limit`, 1.5 by default, times its fast state) the item is
flagged `slow_spell` and timed again at the end of the run (bounded), as the drift guard used to do
for every spell. A ratio that did not converge within its budget is kept (its CI is stored): under
load that is the usual end of a segment's budget, and its median is still the best estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FAST_QUANTILE = 10  # percent: of a reference's times, its fast state
TIMING = "ratio"  # the harness record's `timing` for interleaved ratio measurements

# Per kind: whole networks carry the predictor's network term and its held-out check, so they get
# a tighter target and a longer budget than segments (thousands of them, their errors average out
# in a network's sum). min_runs counts pairs.
SEGMENT_HARNESS = {"budget_seconds": 0.15, "target_rel_ci": 0.04, "min_runs": 10, "warmup_runs": 2,
                   "warmup_seconds": 0.0}
NETWORK_HARNESS = {"budget_seconds": 2.0, "target_rel_ci": 0.015, "min_runs": 10, "warmup_runs": 2,
                   "warmup_seconds": 0.0}


def fast_state(times: list[float]) -> float:
    """The fast state of a reference from its times: their FAST_QUANTILE percentile."""
    if not times:
        raise ValueError("times: expected at least one reference time")
    return float(np.percentile(times, FAST_QUANTILE))


@dataclass
class Reference:
    """One reference: what it is, its Timed, and its times in pairs so far (earlier runs' first).
    `alone_ms`: its time alone (`RatioTimer.calibrate`), the fast state until a pair has timed
    it: in pairs it runs after the item's footprint, a little slower than alone."""
    key: str
    timed: object  # a backends.Timed
    times: list[float] = field(default_factory=list)
    alone_ms: float | None = None

    @property
    def fast_ms(self) -> float:
        if self.times:
            return fast_state(self.times)
        if self.alone_ms is None:
            raise ValueError(f"reference {self.key}: expected a time (calibrate() first), got none")
        return self.alone_ms


class RatioTimer:
    """Times items as ratios to references (see the module docstring): `references` maps a role
    ('segment', 'network') to a Reference; `state_limit` is the reference's time over its fast
    state beyond which an item is flagged for timing again."""

    def __init__(self, references: dict[str, Reference], *, state_limit: float = 1.5, interleave=None):
        if not state_limit > 1:
            raise ValueError(f"state_limit: expected a number > 1, got {state_limit}")
        self.references, self.state_limit = references, state_limit
        if interleave is None:
            from pynas.profiling.backends import time_interleaved as interleave
        self.interleave = interleave  # (item, reference, **options) -> the interleaved stats dict
        self.states: list[float] = []  # reference time / its fast state, per item timed

    def calibrate(self, harness: dict[str, dict]) -> None:
        """Times each reference alone once (with `harness[role]`), so the first items of a new
        series have a fast state to scale by (the stored `stats` only: training rescales)."""
        for role, reference in self.references.items():
            if not reference.times:
                reference.alone_ms = reference.timed.measure(**harness[role])["median_ms"]

    def measure(self, timed, role: str, harness: dict) -> tuple[dict, dict]:
        """(the item's stats: median_ms, mad_ms, p10_ms, p90_ms, runs; its harness record).

        stats are the ratio's, scaled by the reference's fast state at this point; the record
        holds `timing` 'ratio', `ratio` (median), `ratio_ci_rel`, `raw_median_ms` (the item's
        own median, state included), `reference` (its key), `reference_ms` (its median in the
        pairs), `reference_fast_ms` (the fast state used), `state` (their quotient), pairs and
        inner counts, convergence, and `slow_spell` when the item is to be timed again."""
        reference = self.references[role]
        result = self.interleave(timed, reference.timed, **harness)
        reference.times.append(result["reference"]["median_ms"])
        fast = reference.fast_ms
        ratio, item = result["ratio"], result["item"]
        state = result["reference"]["median_ms"] / fast
        self.states.append(state)
        stats = {"median_ms": ratio["median_ms"] * fast, "mad_ms": ratio["mad_ms"] * fast,
                 "p10_ms": ratio["p10_ms"] * fast, "p90_ms": ratio["p90_ms"] * fast, "runs": ratio["runs"]}
        record = {"timing": TIMING, "ratio": ratio["median_ms"], "ratio_ci_rel": ratio["ci_rel"],
                  "raw_median_ms": item["median_ms"], "raw_ci_rel": item["ci_rel"], "min_ms": item["min_ms"],
                  "reference": reference.key, "reference_ms": result["reference"]["median_ms"],
                  "reference_fast_ms": fast, "state": state, "pairs": ratio["runs"], "inner": item["inner"],
                  "reference_inner": result["reference"]["inner"], "converged": result["converged"],
                  "seconds": result["seconds"], "cpu": result["cpu"], "freq_mhz_before": result["freq_mhz_before"],
                  "freq_mhz_after": result["freq_mhz_after"], "options": dict(harness),
                  "cpu_time": bool(harness.get("cpu_time")), "cpu_share": item.get("cpu_share", -1)}
        if state > self.state_limit:
            record["slow_spell"] = True
        return stats, record


def series_reference_times(rows) -> dict[str, list[float]]:
    """Reference key -> its times, from stored measurements (`Measurement`s) of one series."""
    times: dict[str, list[float]] = {}
    for m in rows:
        if m.harness.get("timing") == TIMING:
            times.setdefault(m.harness["reference"], []).append(m.harness["reference_ms"])
    return times


def relative_differences(pairs: list[tuple[float, float]]) -> dict:
    """Repeatability of pairs (first, second) of one key's times: n, median and p90 of |b - a| / a."""
    diffs = [abs(b - a) / a for a, b in pairs if a > 0]
    if not diffs:
        return {"n": 0, "median": math.nan, "p90": math.nan}
    return {"n": len(diffs), "median": float(np.median(diffs)), "p90": float(np.percentile(diffs, 90))}
