"""A profiling run: plan what to measure for a space, measure what the store lacks, record each
measurement the moment it exists.

Resuming is the store's job (`Store.missing`): a run measures only keys its series (device,
backend, backend version, threads) has no measurement of, and commits each one before starting the
next, so a run killed at any point (even kill -9) loses at most the measurement in flight and a
rerun picks up where it stopped. Two runs on one store (two backends, or two processes) lose
nothing either: the store serializes writers, and each item is claimed before it is measured
(`Store.claim`), so two processes profiling one plan measure disjoint items, a killed one's claims
going stale with it.

Timing: shared machines have slow spells (neighbours' processes on the core, load on the caches
and memory), which a time taken alone carries with it. Every item is timed as a ratio to a
reference timed interleaved with it (`pynas.profiling.steady`: the stem for segments, the stem's
whole network for networks), and its latency is that ratio times the reference's fast-state time
over the series. Items timed in an extreme state are flagged
`slow_spell` and timed once more at the end of the run, within a bounded share of it; a key whose
only measurements are flagged counts as unmeasured for the next run. At the end, a seeded sample
of the run's items is timed again: the run's own repeatability, printed and kept in the store
(each key then has two measurements; `pynas.predictor.train.load_dataset` reports it).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from pynas.arch import Arch
from pynas.profiling.backends import Backend
from pynas.profiling.configs import neighbour_segments, network_samples
from pynas.space.base import SearchSpace
from pynas.space.catalogue import NETWORK_KIND, Item, segment_by_id, space_items
from pynas.store import Context, OpKey, Stats, Store



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
    if space.profiled_whole:
        if neighbours or segments_sample is not None:
            raise ValueError(f"neighbours, segments_sample: expected none for space {space.name}, whose networks "
                             f"are profiled whole (no segments), got {neighbours} and {segments_sample}")
        return _whole_network_plan(space, networks, seed, limit, extra)
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


def _whole_network_plan(space: SearchSpace, networks: int, seed: int, limit: int | None, extra) -> Plan:
    """The plan of a space profiled whole (`SearchSpace.profiled_whole`): the stem of its reference
    network (`space.reference_network()`: the segment reference, and the network reference is its
    whole network), then `networks` distinct sampled networks (seeded) and `extra` ones (Items of
    networks, or architectures of the space: what `space.network` takes), in a seeded random order."""
    reference = space.reference_network()
    stem = Item.of_segment(reference, segment_by_id(reference)["stem"])
    nets = [Item.of_network(space.network(a)) for a in network_samples(space, networks, seed=seed)] if networks else []
    added = [e if isinstance(e, Item) else Item.of_network(space.network(e)) for e in extra]
    if any(not i.is_network for i in added):
        raise ValueError(f"extra: expected whole networks for space {space.name} (profiled whole), got a segment")
    known = {i.key for i in nets}
    added = [i for i in dict((i.key, i) for i in added).values() if i.key not in known]
    rest = nets + added
    order = np.random.default_rng(seed).permutation(len(rest))
    items = [stem] + [rest[i] for i in order]
    kept = items[:limit]
    keys = {i.key for i in added}
    counts = {"stem": 1, "networks": sum(1 for i in kept[1:] if i.key not in keys),
              "extra": sum(1 for i in kept[1:] if i.key in keys)}
    return Plan(space.name, space.resolution, {k: n for k, n in counts.items() if n},
                kept, len(items) if len(kept) < len(items) else None)


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
    from pynas import cell
    from pynas.arch import parse

    t0 = time.monotonic()
    try:
        # An item's network is a block network or (nb201, profiled whole) a cell network.
        net = cell.parse(arch) if cell.is_cellnet_string(arch) else parse(arch)
        _PREPARE_BACKEND.prepare(net, segment, key)
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
    # The machine's state while each item was timed: its reference's time / the reference's fast state.
    states: list[float] = field(default_factory=list)
    # With CPU-time timing: the profiling thread's CPU time / wall time per item (1: the core to itself).
    cpu_shares: list[float] = field(default_factory=list)
    slow_spells: int = 0  # items whose only measurement is flagged (a rerun measures them again)
    repaired: int = 0  # flagged items timed again cleanly at the end of the run
    retime_seconds: float = 0.0  # spent timing flagged items again
    # The run's repeatability: kind ('networks', 'segments') -> n, median and p90 of the relative
    # difference between an item's ratio and its ratio timed again at the end of the run.
    repeatability: dict[str, dict] = field(default_factory=dict)
    repeat_seconds: float = 0.0
    per_kind_seconds: dict[str, float] = field(default_factory=dict)
    per_kind_count: dict[str, int] = field(default_factory=dict)
    reference_fast_ms: dict[str, float] = field(default_factory=dict)  # reference key -> its fast state
    elsewhere: int = 0  # items another process profiling into the store had claimed (or measured meanwhile)

    @property
    def remaining(self) -> int:
        return self.planned - self.already - self.measured - len(self.failed) - self.elsewhere

    def summary(self) -> str:
        lines = [f"measured {self.measured} in {self.seconds:.0f} s ({self.stopped_by}); "
                 f"{self.already} were in the store already; "
                 + (f"{self.elsewhere} taken by another process; " if self.elsewhere else "")
                 + f"{self.remaining} of {self.planned} left"]
        for kind in sorted(self.per_kind_count):
            n, s = self.per_kind_count[kind], self.per_kind_seconds[kind]
            lines.append(f"  {kind:<10} {n:5d} measured, {s / n:6.2f} s each (build + convert + time)")
        if self.states:
            p10, p50, p90 = np.percentile(self.states, [10, 50, 90])
            lines.append(f"machine state while items were timed (reference / its fast state): "
                         f"{min(self.states):.2f}..{max(self.states):.2f} (p10 {p10:.2f}, median {p50:.2f}, "
                         f"p90 {p90:.2f}); latencies are ratios to the reference, so a spell cancels")
        if self.cpu_shares:
            lines.append(f"the profiling thread had {100 * float(np.median(self.cpu_shares)):.0f}% of its core "
                         f"(median; p10 {100 * float(np.percentile(self.cpu_shares, 10)):.0f}%): timed by its CPU "
                         f"time, so time other processes took is not counted")
        if self.repaired or self.slow_spells:
            lines.append(f"extreme states: {self.repaired} items timed again at the end "
                         f"({self.retime_seconds:.0f} s), {self.slow_spells} left flagged"
                         + (" (a rerun measures them again)" if self.slow_spells else ""))
        for kind, r in sorted(self.repeatability.items()):
            if r["n"]:
                lines.append(f"repeatability, {r['n']} {kind} timed again at the end: relative difference "
                             f"median {100 * r['median']:.1f}%, p90 {100 * r['p90']:.1f}%")
        for key, error in self.failed[:10]:
            lines.append(f"FAILED {key}: {error}")
        return "\n".join(lines)


def _stats(result: dict) -> Stats:
    return Stats(result["median_ms"], result["mad_ms"], result["p10_ms"], result["p90_ms"], result["runs"])


RETIME_SHARE = 0.05  # of the run so far (plus RETIME_GRACE_SECONDS): the most timing flagged items again may take
RETIME_GRACE_SECONDS = 10.0


def _references(plan_: Plan, backend: Backend, earlier: dict[str, list[float]], network: bool) -> dict:
    """The references of a run (see pynas.profiling.steady): the plan's stem (its first item) for
    segments and, when the plan has networks, the whole network the stem comes from."""
    from pynas.profiling.steady import Reference

    stem = plan_.items[0]
    if stem.kind != "stem":
        raise ValueError(f"plan: expected the stem as its first item (the reference), got {stem.kind} {stem.key}")
    refs = {"segment": Reference(stem.key, backend.segment(stem.arch, stem.segment, stem.key),
                                 list(earlier.get(stem.key, [])))}
    if network:
        key = f"network:{stem.arch}"
        refs["network"] = Reference(key, backend.network(stem.arch), list(earlier.get(key, [])))
    return refs


def _repeat_sample(done: list[Item], count: int, seed: int) -> list[Item]:
    """A seeded sample of up to `count` of `done`: half networks (or as many as there are), the
    rest segments."""
    if count <= 0 or not done:
        return []
    rng = np.random.default_rng(seed + 7)
    nets = [i for i in done if i.kind == NETWORK_KIND]
    segs = [i for i in done if i.kind != NETWORK_KIND]
    n_nets = min(len(nets), max(count // 2, count - len(segs)))
    n_segs = min(len(segs), count - n_nets)
    pick = lambda items, n: [items[i] for i in sorted(rng.choice(len(items), n, replace=False))] if n else []  # noqa: E731
    return pick(nets, n_nets) + pick(segs, n_segs)


def run(plan_: Plan, backend: Backend, store: Store, *, budget_seconds: float = math.inf,
        harness: dict | None = None, segment_harness: dict | None = None, network_harness: dict | None = None,
        session: str | None = None, drift_tolerance: float = 0.5, repeat: int = 0, seed: int = 0,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False, again: bool = False, interleave=None) -> Report:
    """Measures the plan's items the store lacks for this device, backend and thread count (with
    `again`: another pass, at another time, resumable by its `session` tag, see `unmeasured`; a
    key measured several times counts with its median), until done or `budget_seconds` has passed
    (checked between items), each as a ratio to a reference timed interleaved with it
    (`pynas.profiling.steady`). Harness options: `steady.SEGMENT_HARNESS` / `NETWORK_HARNESS`, then
    `harness` (both kinds), then `segment_harness` / `network_harness`; with one thread samples are
    timed by CPU time (`cpu_time`) unless the options say otherwise.

    An item timed while its reference ran over 1 + `drift_tolerance` times its fast state is
    flagged and timed once more at the end (within RETIME_SHARE of the run). Then `repeat` items (a
    seeded sample of the cleanly timed ones, half networks) are timed again: the run's
    repeatability (`Report.repeatability`, over the re-timings that were not flagged). `interleave`: stands in for
    `backends.time_interleaved` (tests)."""
    from pynas.profiling.steady import NETWORK_HARNESS, SEGMENT_HARNESS, RatioTimer, relative_differences, \
        series_reference_times

    if not drift_tolerance > 0:  # NaN too
        raise ValueError(f"drift_tolerance: expected a number > 0, got {drift_tolerance}")
    if not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"repeat: expected an integer >= 0, got {repeat!r}")
    # One thread: CPU time (preemption not counted, see pynas.profiling.steady), unless told.
    clock = {"cpu_time": backend.threads == 1}
    options = {"segment": {**SEGMENT_HARNESS, **clock, **(harness or {}), **(segment_harness or {})},
               "network": {**NETWORK_HARNESS, **clock, **(harness or {}), **(network_harness or {})}}
    context = Context.here(backend.name, backend.version, backend.threads, session=session)
    todo = unmeasured(plan_, backend, store, again, session)
    report = Report(planned=len(plan_.items), already=len(plan_.items) - len(todo))
    start = time.monotonic()
    timer: RatioTimer | None = None

    def timed(item: Item):
        return backend.network(item.arch) if item.segment is None else backend.segment(item.arch, item.segment, item.key)

    def role(item: Item) -> str:
        return "network" if item.segment is None else "segment"

    def measure(item: Item, extra: dict | None = None, count_failure: bool = True) -> dict | None:
        """Times and records one item: its harness record, None if it failed (only a first
        attempt's failure is reported: a failed re-timing leaves the item its measurement)."""
        nonlocal timer
        t0 = time.monotonic()
        try:
            if timer is None:  # built on the first item: a run with nothing to do builds nothing
                series = store.measurements(device_id=context.device.device_id, backend=backend.name,
                                            backend_version=backend.version, threads=backend.threads)
                refs = _references(plan_, backend, series_reference_times(series),
                                   any(i.segment is None for i in todo))
                timer = RatioTimer(refs, state_limit=1 + drift_tolerance, interleave=interleave)
                timer.calibrate(options)
            stats, record = timer.measure(timed(item), role(item), options[role(item)])
        except (RuntimeError, ValueError) as error:  # one bad conversion must not end a long run
            if count_failure:
                report.failed.append((item.key, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
            return None
        record.update(extra or {})
        store.record(context, OpKey(item.key, item.kind, item.features), Stats(**stats), harness=record)
        report.per_kind_seconds[item.kind] = report.per_kind_seconds.get(item.kind, 0.0) + time.monotonic() - t0
        return record

    def out_of_time() -> bool:
        if time.monotonic() - start >= budget_seconds:
            report.stopped_by = "budget"
        elif should_stop():
            report.stopped_by = "interrupt"
        else:
            return False
        return True

    flagged: list[Item] = []
    clean: dict[str, tuple[Item, float]] = {}  # key -> (item, ratio) of items timed cleanly
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
        record = measure(item)
        if not (record or {}).get("slow_spell"):  # a flagged one stays claimed for the re-timing at the end
            store.release(context, item.key)
        if record is None:
            continue
        report.measured += 1
        report.per_kind_count[item.kind] = report.per_kind_count.get(item.kind, 0) + 1
        report.states.append(record["state"])
        if record["cpu_share"] > 0:
            report.cpu_shares.append(record["cpu_share"])
        if record.get("slow_spell"):
            flagged.append(item)
        else:
            clean[item.key] = (item, record["ratio"])
    retime_start = time.monotonic()
    for item in flagged:  # another chance, in another state: bounded, so a long spell cannot hold the run
        if out_of_time() or time.monotonic() - retime_start > RETIME_GRACE_SECONDS + RETIME_SHARE * (
                retime_start - start):
            break
        if progress:
            progress(len(todo), f"again (extreme state) {item.key}")
        record = measure(item, {"retimed": True}, count_failure=False)
        if record is not None and not record.get("slow_spell"):
            report.repaired += 1
            clean[item.key] = (item, record["ratio"])
    report.retime_seconds = time.monotonic() - retime_start
    report.slow_spells = len(flagged) - report.repaired
    repeat_start = time.monotonic()
    pairs: dict[str, list[tuple[float, float]]] = {"networks": [], "segments": []}
    for item in _repeat_sample([i for i, _ in clean.values()], repeat, seed):
        if out_of_time():
            break
        if progress:
            progress(len(todo), f"repeatability {item.key}")
        record = measure(item, {"repeat": True}, count_failure=False)
        if record is not None and not record.get("slow_spell"):  # as training reads them: clean ones
            pairs["networks" if item.kind == NETWORK_KIND else "segments"].append((clean[item.key][1], record["ratio"]))
    report.repeatability = {kind: relative_differences(p) for kind, p in pairs.items() if p}
    report.repeat_seconds = time.monotonic() - repeat_start
    store.release(context)
    if progress:
        progress(report.measured + len(report.failed), "")
    if timer:
        report.reference_fast_ms = {r.key: r.fast_ms for r in timer.references.values()}
    report.seconds = time.monotonic() - start
    return report
