"""A profiling run: plan what to measure for a space, measure what the store lacks, record each
measurement the moment it exists.

Resuming is the store's job (`Store.missing`): a run measures only keys its series (device,
backend, backend version, threads) has no measurement of, and commits each one before starting the
next, so a run killed at any point (even kill -9) loses at most the measurement in flight and a
rerun picks up where it stopped. Two runs on one store (two backends, or two processes) lose
nothing either: the store serializes writers, and each item is claimed before it is measured
(`Store.claim`), so two processes profiling one plan measure disjoint items, a killed one's claims
going stale with it.

Drift: shared machines have slow spells (here up to 25% for a minute or more, when neighbours
load the memory system) and fast ones. A `DriftGuard` re-times a reference (the plan's first item,
the stem) right after every item, briefly; a low quantile of its times so far is the machine's fast
state, the median of its last few its state now. When the state is more than `tolerance` slower
than the fast state, the item's time is suspect: the guard waits, re-times the reference until it
is back (or gives up after `retries`), and measures the item again. Each measurement stores the
reference's time, its ratio to the fast state (`reference_ratio`), the state's (`state_ratio`),
and whether a slow spell outlasted the retries (`slow_spell`); the report counts retries and flags
a run whose accepted measurements strayed beyond 5%.

Waiting is bounded (`DriftGuard.wait_share`): in a spell that lasts, items are recorded flagged
`slow_spell` rather than waited for, measured once more at the end of the run, and a key whose
only measurements are flagged counts as unmeasured for the next run; training uses a key's clean
measurements when it has any (`pynas.predictor.train.load_dataset`).
"""
from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from pynas.arch import Arch
from pynas.profiling.backends import Backend
from pynas.profiling.configs import neighbour_segments, network_samples
from pynas.space.base import SearchSpace
from pynas.space.catalogue import Item, space_items
from pynas.store import Context, OpKey, Stats, Store

DRIFT_LIMIT = 0.05
FAST_QUANTILE = 10  # percent: of the drift reference's times, the machine's fast state


@dataclass(frozen=True)
class Plan:
    space: str
    resolution: int
    counts: dict[str, int]  # of `items`, per kind: the space's distinct segments, then neighbours and networks
    items: list[Item]
    of: int | None = None  # with a limit: how many items the whole plan has


def plan(space: SearchSpace, *, neighbours: int = 0, networks: int = 0, seed: int = 0,
         limit: int | None = None, segments_sample: int | None = None,
         extra: Iterable[Item | Arch] = ()) -> Plan:
    """Every distinct segment of `space` (or a seeded random `segments_sample` of them: the stem
    always, one of each other kind while the sample has room, then at random; where measuring is
    slow, a learned predictor prices the rest, and it prices only kinds it has seen), `neighbours`
    segments just outside it and `networks` sampled whole networks, in a seeded random order (so a
    run cut short by its budget covers the space evenly) with the stem first (the drift
    reference); only the first `limit` if given.

    `extra`: more segments (Items, e.g. from `configs.neighbour_segments` around where a
    predictor errs) or whole networks (Arch) to measure: the hook for adaptive sampling rounds."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit: expected an integer >= 1, got {limit}")
    if segments_sample is not None and segments_sample < 1:
        raise ValueError(f"segments_sample: expected an integer >= 1, got {segments_sample}")
    configs = space_items(space)
    measured = list(configs.values())
    if segments_sample is not None and segments_sample < len(measured):
        measured = _sample_segments(measured, segments_sample, np.random.default_rng(seed + 1))
    group = {id(c): c.kind for c in measured}  # what each item counts as: its kind, or where it came from
    items = list(measured)
    if neighbours:
        near = list(neighbour_segments(configs, neighbours, seed=seed).values())
        group.update((id(i), "neighbours") for i in near)
        items += near
    if networks:
        nets = [Item.of_network(a) for a in network_samples(space, networks, seed=seed)]
        group.update((id(i), "networks") for i in nets)
        items += nets
    added = [Item.of_network(e) if isinstance(e, Arch) else e for e in extra]
    if added:
        known = {i.key for i in items}
        added = [i for i in dict((i.key, i) for i in added).values() if i.key not in known]
        group.update((id(i), "extra") for i in added)
        items += added
    reference = next(i for i in items if i.kind == "stem")
    rest = [i for i in items if i is not reference]
    order = np.random.default_rng(seed).permutation(len(rest))
    items = [reference] + [rest[i] for i in order]
    kept = items[:limit]
    tally = Counter(group[id(item)] for item in kept)  # the counts describe the items kept
    counts = {g: tally[g] for g in dict.fromkeys(group.values()) if g in tally}  # segment kinds, then the others
    if len(measured) < len(configs):
        counts["of_space_segments"] = len(configs)
    of = len(items) if len(kept) < len(items) else None
    return Plan(space.name, getattr(space, "resolution", 0), counts, kept, of)


def _sample_segments(items: list[Item], n: int, rng) -> list[Item]:
    """`n` of the space's segments: the stem (the drift reference), one of each other kind while
    there is room, the rest uniformly, in catalogue order."""
    chosen = [i for i, item in enumerate(items) if item.kind == "stem"][:1]
    kinds = sorted({item.kind for item in items} - {"stem"})
    for kind in kinds[: max(0, n - len(chosen))]:
        of_kind = [i for i, item in enumerate(items) if item.kind == kind]
        chosen.append(int(of_kind[rng.integers(len(of_kind))]))
    rest = np.setdiff1d(np.arange(len(items)), chosen)
    chosen += [int(i) for i in rng.choice(rest, max(0, n - len(chosen)), replace=False)]
    return [items[i] for i in sorted(chosen)]


_PREPARE_BACKEND: Backend | None = None  # one per prepare() worker process


def _prepare_worker_init(backend: str, threads: int) -> None:
    global _PREPARE_BACKEND
    _PREPARE_BACKEND = Backend(backend, threads=threads)


def _prepare_one(arch: str, segment: str | None, key: str) -> tuple[str, str | None, float]:
    from pynas.arch import parse

    t0 = time.monotonic()
    try:
        _PREPARE_BACKEND.prepare(parse(arch), segment, key)
    except (RuntimeError, ValueError) as error:
        return key, f"{type(error).__name__}: {str(error).splitlines()[0]}", time.monotonic() - t0
    return key, None, time.monotonic() - t0


def unmeasured(plan_: Plan, backend: Backend, store: Store, again: bool = False,
               session: str | None = None) -> list[Item]:
    """The plan's items the store has no measurement of for this device, backend, backend version
    and thread count, or only measurements taken in a slow spell, in plan order. With `again`
    (another pass): all of them, or with a `session` tag the ones that session has not measured
    yet, so rerunning a pass with its tag resumes it."""
    context = Context.here(backend.name, backend.version, backend.threads)
    keys = [item.key for item in plan_.items]
    if again:
        todo_keys = set(keys) if session is None else set(store.missing(context, keys, session=session))
    else:
        todo_keys = set(store.missing(context, keys)) | store.slow_only(context)
    return [item for item in plan_.items if item.key in todo_keys]


def prepare(items: list[Item], backend: Backend, *, jobs: int = 1,
            progress: Callable[[int, str], None] | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Convert (onnxruntime, litert: into the on-disk cache) what `items` (e.g. `unmeasured(...)`)
    will run, in `jobs` processes, timing nothing: conversion is most of a LiteRT profile's time
    and needs no quiet machine, so it can run ahead and in parallel. Returns (items prepared,
    failures)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}")
    failed: list[tuple[str, str]] = []
    if backend.name not in ("onnxruntime", "litert") or not items:
        return 0, failed
    import concurrent.futures
    import multiprocessing

    # spawn: a forked child would inherit torch's thread pools mid-state.
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_prepare_worker_init,
                                                initargs=(backend.name, backend.threads)) as pool:
        futures = [pool.submit(_prepare_one, str(item.arch), item.segment, item.key) for item in items]
        for n, future in enumerate(concurrent.futures.as_completed(futures)):
            key, error, _ = future.result()
            if error:
                failed.append((key, error))
            if progress:
                progress(n + 1, key)
    return len(items) - len(failed), failed


@dataclass
class Report:
    planned: int
    already: int  # measured before this run
    measured: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str = "done"  # "done", "budget", "interrupt"
    state_ratios: list[float] = field(default_factory=list)  # the guard's state_ratio after each accepted item
    retries: int = 0  # items measured again because the reference said the machine was slow
    slow_spells: int = 0  # items whose only measurement was taken in a slow spell (a rerun measures them again)
    repaired: int = 0  # items recorded in a slow spell, then measured at the fast state in the repair pass
    waited_seconds: float = 0.0  # spent re-measuring and pausing for slow spells
    # This run's fast state / the fast state of earlier runs of the series stored: above 1 the
    # whole run may have been in a slow state, which the guard (relative to this run) cannot see.
    fast_state_vs_earlier: float | None = None
    per_kind_seconds: dict[str, float] = field(default_factory=dict)
    per_kind_count: dict[str, int] = field(default_factory=dict)
    elsewhere: int = 0  # items another process profiling into the store had claimed (or measured meanwhile)

    @property
    def remaining(self) -> int:
        return self.planned - self.already - self.measured - len(self.failed) - self.elsewhere

    @property
    def drift(self) -> float:
        return max((abs(r - 1) for r in self.state_ratios), default=0.0)

    def summary(self) -> str:
        lines = [f"measured {self.measured} in {self.seconds:.0f} s ({self.stopped_by}); "
                 f"{self.already} were in the store already; "
                 + (f"{self.elsewhere} taken by another process; " if self.elsewhere else "")
                 + f"{self.remaining} of {self.planned} left"]
        for kind in sorted(self.per_kind_count):
            n, s = self.per_kind_count[kind], self.per_kind_seconds[kind]
            lines.append(f"  {kind:<10} {n:5d} measured, {s / n:6.2f} s each (build + convert + time)")
        if self.state_ratios:
            flag = "  DRIFT beyond 5%: compare with care" if self.drift > DRIFT_LIMIT else ""
            lines.append(f"machine state after each accepted item, relative to its fast state: "
                         f"{min(self.state_ratios):.3f}..{max(self.state_ratios):.3f}{flag}")
        if self.retries or self.repaired or self.slow_spells:
            lines.append(f"slow spells: {self.retries} re-measurements ({self.waited_seconds:.0f} s waiting), "
                         f"{self.repaired} items repaired at the end, {self.slow_spells} measured only while slow"
                         + (" (a rerun measures them again)" if self.slow_spells else ""))
        if self.fast_state_vs_earlier is not None and self.fast_state_vs_earlier > 1 + DRIFT_LIMIT:
            lines.append(f"SLOW RUN: the reference's fast state in this run was {self.fast_state_vs_earlier:.3f}x "
                         f"its fast state in earlier runs of this series: the whole run may have been in a slow "
                         f"state; measure again at another time (--again) and compare")
        for key, error in self.failed[:10]:
            lines.append(f"FAILED {key}: {error}")
        return "\n".join(lines)


def _stats(result: dict) -> Stats:
    return Stats(result["median_ms"], result["mad_ms"], result["p10_ms"], result["p90_ms"], result["runs"])


def _harness_record(result: dict, options: dict, drift: dict) -> dict:
    keep = ("ci_rel", "converged", "inner", "cpu", "freq_mhz_before", "freq_mhz_after", "seconds", "min_ms", "mean_ms")
    record = {k: result[k] for k in keep}
    record["options"] = dict(options)
    record.update(drift)
    return record


REFERENCE_HARNESS = {"budget_seconds": 0.05, "min_runs": 10, "target_rel_ci": 0.01, "warmup_runs": 2}


class DriftGuard:
    """Measures items at the machine's fast state: see the module docstring.

    The reference is a short timing with about 1% noise, so two statistics stand in for single
    timings: the fast state is the `FAST_QUANTILE` (percent) of every reference time so far (the
    minimum of thousands of noisy timings keeps falling until a quiet machine looks slow and every
    item is retried), and the machine's state now is the median of the last `STATE_WINDOW` (one
    noisy timing is no slow spell; a spell lasts a minute, hundreds of items)."""

    STATE_WINDOW = 3

    def __init__(self, reference, *, tolerance: float = 0.03, retries: int = 4, pause_seconds: float = 2.0,
                 reference_harness: dict | None = None, wait_share: float = 0.25, grace_seconds: float = 10.0):
        self.reference = reference  # a backend Timed
        self.tolerance, self.retries, self.pause = tolerance, retries, pause_seconds
        # Waiting out slow spells is bounded: at most `wait_share` of the time since the first item
        # (plus `grace_seconds`) goes to re-measuring and pausing. Past that the item is recorded
        # with `slow_spell` and measured again later (`run`'s repair pass, or a rerun), so a long
        # slow spell costs a bounded share of the run instead of hours of retries.
        self.wait_share, self.grace = wait_share, grace_seconds
        self.reference_harness = dict(REFERENCE_HARNESS, **(reference_harness or {}))
        self.times: list[float] = []  # every reference timing, in order
        self.fast_ms = math.inf  # the machine's fast state: FAST_QUANTILE of `times`, kept with them
        self.retried = 0
        self.slow_spells = 0
        self.started: float | None = None
        self.waited = 0.0

    @property
    def state_ratio(self) -> float:
        """The machine's state now relative to its fast state (1.0: fast)."""
        return statistics.median(self.times[-self.STATE_WINDOW:]) / self.fast_ms

    def _reference_ms(self) -> float:
        ms = self.reference.measure(**self.reference_harness)["median_ms"]
        self.times.append(ms)
        self.fast_ms = float(np.percentile(self.times, FAST_QUANTILE))
        return ms

    def _slow(self) -> bool:
        return self.state_ratio > 1 + self.tolerance

    def may_wait(self) -> bool:
        return self.waited < self.grace + self.wait_share * (time.monotonic() - self.started)

    def measure(self, timed, harness: dict) -> tuple[dict, dict]:
        """(stats of `timed`, drift facts to store with them)."""
        if self.started is None:
            self.started = time.monotonic()
        if not self.times:
            self._reference_ms()
        attempt = 0
        while True:
            t0 = time.monotonic()
            result = timed.measure(**harness)
            ref = self._reference_ms()
            if attempt:  # a re-measurement is time spent on the slow spell too
                self.waited += time.monotonic() - t0
            drift = {"reference_ms": ref, "reference_ratio": ref / self.fast_ms, "state_ratio": self.state_ratio,
                     "retries": attempt}
            if not self._slow():
                return result, drift
            if attempt >= self.retries or not self.may_wait():
                break
            attempt += 1
            self.retried += 1
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.pause and self._slow():
                self._reference_ms()
            self.waited += time.monotonic() - t0
        self.slow_spells += 1
        return result, dict(drift, slow_spell=True)


def run(plan_: Plan, backend: Backend, store: Store, *, budget_seconds: float = math.inf,
        harness: dict | None = None, session: str | None = None, drift_tolerance: float = 0.03,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False, again: bool = False) -> Report:
    """Measures the plan's items the store lacks for this device, backend and thread count (with
    `again`: another pass, at another time, resumable by its `session` tag, see `unmeasured`; a
    key measured several times counts with its median), until done or `budget_seconds` has passed
    (checked between items). Items the drift guard had to record in a slow spell are measured once
    more at the end (the repair pass)."""
    if not drift_tolerance >= 0:  # NaN too
        raise ValueError(f"drift_tolerance: expected a number >= 0, got {drift_tolerance}")
    harness = dict(harness or {})
    context = Context.here(backend.name, backend.version, backend.threads, session=session)
    todo = unmeasured(plan_, backend, store, again, session)
    report = Report(planned=len(plan_.items), already=len(plan_.items) - len(todo))
    earlier = store.reference_times(context)
    earlier_reference_ms = float(np.percentile(earlier, FAST_QUANTILE)) if earlier else None
    start = time.monotonic()

    def timed(item: Item):
        return backend.network(item.arch) if item.segment is None else backend.segment(item.arch, item.segment, item.key)

    guard = None

    def measure(item: Item, repair: bool = False) -> dict | None:
        """Times and records one item: its drift facts, None if it failed (a failed repair
        is no failure: the item has its measurement)."""
        nonlocal guard
        t0 = time.monotonic()
        try:
            guard = guard or DriftGuard(timed(plan_.items[0]), tolerance=drift_tolerance)
            result, drift = guard.measure(timed(item), harness)
        except (RuntimeError, ValueError) as error:  # one bad conversion must not end a long run
            if not repair:
                report.failed.append((item.key, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
            return None
        store.record(context, OpKey(item.key, item.kind, item.features), _stats(result),
                     harness=_harness_record(result, harness, drift))
        report.per_kind_seconds[item.kind] = report.per_kind_seconds.get(item.kind, 0.0) + time.monotonic() - t0
        return drift

    def out_of_time() -> bool:
        if time.monotonic() - start >= budget_seconds:
            report.stopped_by = "budget"
        elif should_stop():
            report.stopped_by = "interrupt"
        else:
            return False
        return True

    slow: list[Item] = []
    for n, item in enumerate(todo):
        if out_of_time():
            break
        if progress:
            progress(n, item.key)
        # Another process profiling into this store may hold the item, or have measured it since.
        if not store.claim(context, item.key, skip_measured=not again or session is not None,
                           session=session if again else None):
            report.elsewhere += 1
            continue
        drift = measure(item)
        if not (drift or {}).get("slow_spell"):  # a slow one stays claimed for the repair pass
            store.release(context, item.key)
        if drift is None:
            continue
        report.measured += 1
        report.per_kind_count[item.kind] = report.per_kind_count.get(item.kind, 0) + 1
        if drift.get("slow_spell"):
            slow.append(item)
        else:
            report.state_ratios.append(drift["state_ratio"])
    for item in slow:  # the repair pass: another chance at the fast state
        if out_of_time():
            break
        if progress:
            progress(len(todo), f"again (slow spell) {item.key}")
        drift = measure(item, repair=True)
        if drift is not None and not drift.get("slow_spell"):
            report.repaired += 1
            report.state_ratios.append(drift["state_ratio"])
    store.release(context)
    if progress:
        progress(report.measured + len(report.failed), "")
    if guard:
        report.retries, report.slow_spells = guard.retried, len(slow) - report.repaired
        report.waited_seconds = guard.waited
        if earlier_reference_ms and math.isfinite(guard.fast_ms):
            report.fast_state_vs_earlier = guard.fast_ms / earlier_reference_ms
    report.seconds = time.monotonic() - start
    return report
