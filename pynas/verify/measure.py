"""Measure architectures where their latency bundle says they run, and hold them against its prediction.

    from pynas.verify.measure import verify
    [v] = verify(["mnasnet-a1"], "amd-epyc-avx2-native-c5f008", passes=5, tolerance=0.10)
    print(v.predicted_ms, v.measured_ms, v.p10_ms, v.p90_ms, v.verdict)   # verdict: ok / over tolerance / too unsteady

Where. The bundle's own backend and thread count, on this machine when the bundle describes it
(`pynas.predictor.device.differences` empty), or on an Android device over adb (`OverAdb`: the
native backend with the static `pynas-profile`). A bundle made on another machine, or one that
names its device without a fingerprint (a phone's table), is refused: its numbers are not this
machine's, and measuring here would compare two different machines.

How: as profiling measured what the bundle was trained on (`pynas.profiling.steady`), each
architecture is timed as a ratio to a reference network timed interleaved with it (pairs
alternate within milliseconds, so a slow spell that slows both cancels; one thread: by the thread's
CPU time), in `passes` passes that go round the architectures (pass 1 of each, then pass 2, ...),
so one architecture's passes are spread over the whole verification, not caught in one spell.
The reference is the one the bundle's profiling used (named in the measurements it ships), else
the stem network of its space, as profiling picks it.

The measured latency (`measured_ms`): the median, over the clean passes, of the pass's median
ratio x F_profiled, the reference's fast state in the bundle's profiling run (the 10th percentile
of its medians in pairs there, `steady.fast_state`, read from the measurements the bundle ships):
exactly the figure profiling would have recorded for this network, on the scale the bundle's
latencies were trained on, so measured / predicted is the prediction's error alone. Why not the
reference's fast state now: this VM's speed moves by 5-25% for minutes, and with it any time taken
now (on the day this was written the reference ran 21% faster than when the bundle was profiled,
in one pass 27%, while the ratios moved by 2-6%); the ratio is what pynas measures reliably, and it
is what predictions are made of. A bundle without its measurements (no profiled fast state) is
scaled by the reference's fast state over this verification instead (`scale` "now"), and the
reference's spread over the passes adds to the uncertainty. Also kept: `now_ms` (median ratio x
the reference's fast state over this verification: the machine's speed now), `raw_ms` (the item's
own median time, its state included: CPU time with one thread, wall time otherwise).

An exported file (`pynas.ship.verify_export`, `pynas verify FILE`) is timed the same way through
`interleaved_passes` and `verification`, the file's runner against the reference converted to the
file's runtime; with no bundle of that runtime the reference is MnasNet's stem network at the
file's resolution, the scale "now", and the verdict NO_PREDICTION (the spread still reported).

Too unsteady to judge. A pass whose reference ran over `state_limit` (1.5) x its fast state (the
profiled one when known) is dropped (an extreme state, where profiling would time the item again);
fewer than half the passes (or than 2) left: too unsteady. Otherwise the measurement's uncertainty
u is the half-width of its spread over the clean passes ((p90 - p10) / 2 / median), plus, scaled
"now", the reference's own spread. With e = |measured / predicted - 1| and tolerance t: e + u <= t
is ok and e - u > t over tolerance, whatever the noise; in between the point estimate decides when
u <= t / 2 (`steady`), and otherwise it is too unsteady to judge.
"""
from __future__ import annotations

import functools
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pynas.arch import Arch

DEFAULT_PASSES = 5
DEFAULT_TOLERANCE = 0.10
STATE_LIMIT = 1.5  # as profiling: the reference over this x its fast state is an extreme state
OK, OVER, UNSTEADY = "ok", "over tolerance", "too unsteady"
NO_PREDICTION = "no prediction"  # measured with no bundle of the runtime to compare with (an exported file)


@dataclass(frozen=True)
class OverAdb:
    """Measure on an Android device: its serial, the `pynas-profile` built for it (bash
    scripts/build-profiler.sh aarch64), the adb command, and how long the device may take to answer
    a first command (seconds)."""
    serial: str
    profiler: str | os.PathLike
    adb: str = "adb"
    timeout: float = 10.0


@dataclass
class Pass:
    ratio: float  # the pass's median ratio item / reference
    ratio_ci_rel: float
    reference_ms: float  # the reference's median in the pass's pairs
    raw_ms: float  # the item's own median in the pass
    pairs: int
    converged: bool


@dataclass
class Verification:
    arch: str
    bundle: str | None  # None: an exported file measured with no bundle of its runtime (no prediction)
    predicted_ms: float | None
    measured_ms: float  # see the module docstring
    p10_ms: float  # spread of measured over the clean passes (each pass's ratio x F)
    p90_ms: float
    ratio: float | None  # measured / predicted
    verdict: str  # OK, OVER or UNSTEADY; NO_PREDICTION without a prediction
    steady: bool
    reason: str  # why steady or not, in words
    tolerance: float
    uncertainty: float  # u of the module docstring
    backend: str
    threads: int
    clock: str  # "cpu" (the thread's CPU time) or "wall"
    device: str
    reference: str  # the reference network's key
    reference_source: str
    scale: str  # what measured_ms is scaled by: "profiled" (the bundle's run) or "now" (this verification)
    reference_fast_ms: float  # the reference's fast state over this verification
    reference_bundle_fast_ms: float | None  # its fast state in the bundle's profiling run (None: unknown)
    raw_ms: float  # median over clean passes of the item's own time, its state included
    now_ms: float  # median ratio x reference_fast_ms: on the scale of the machine's state now
    clean_passes: int
    passes: list[Pass] = field(default_factory=list)
    file: str | None = None  # an exported file timed in its runtime (`pynas.ship.verify_export`), else None

    def to_json(self) -> dict:
        return asdict(self)


# -- which bundle, which reference ---------------------------------------------------------------

def check_bundle(bundle, adb: OverAdb | None) -> None:
    """The bundle must describe this machine, or adb must be given; errors name --predictor / --adb."""
    from pynas.predictor.device import describe, describes_a_host, differences

    manifest = bundle.manifest
    if not describes_a_host(manifest) or not manifest.device.get("cpu_model"):
        raise ValueError(f"--predictor: bundle {manifest.name} names its device ({describe(manifest)}) without a "
                         f"fingerprint of a machine pynas runs on: verify measures with the bundle's own backend on "
                         f"the machine it describes; use a bundle of this machine (`pynas device init`) or one "
                         f"profiled over adb with --adb SERIAL")
    if adb is not None:
        if manifest.backend != "native":
            raise ValueError(f"--adb: pynas-profile times the native backend only, and bundle {manifest.name} is of "
                             f"{manifest.backend}")
        return
    diffs = differences(manifest)
    if diffs:
        raise ValueError(f"--predictor: bundle {manifest.name} was made on {describe(manifest)}, not this machine "
                         f"({'; '.join(diffs)}): verify measures here; use a bundle of this machine (`pynas device init`) or "
                         f"--adb SERIAL")


@dataclass(frozen=True)
class ReferenceChoice:
    arch: Arch
    key: str
    source: str
    bundle_times: tuple[float, ...]  # its medians in the bundle's profiling run (empty: unknown)


def _bundle_reference_times(bundle) -> dict[str, list[float]]:
    """Network reference key -> its medians in pairs, from the measurements the bundle ships
    (pynas device init bundles do), for the bundle's series (backend, its version, threads): the
    store's reader (`import_jsonl`, errors naming the line and field) and profiling's
    `series_reference_times`, as the bundle's training read them."""
    from pynas.predictor.predictors import MEASUREMENTS

    path = Path(bundle.folder) / MEASUREMENTS
    if not path.is_file():
        return {}
    manifest = bundle.manifest
    return _reference_times(str(path), path.stat().st_mtime_ns, manifest.backend, manifest.backend_version,
                            manifest.threads)


@functools.lru_cache(maxsize=4)
def _reference_times(path: str, mtime_ns: int, backend: str, backend_version: str, threads: int) -> dict:
    """Read once per file version: a search's verification measures its candidates in batches."""
    import tempfile

    from pynas.profiling.steady import series_reference_times
    from pynas.store import Store, import_jsonl

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
        try:
            import_jsonl(store, path)
        except ValueError as error:
            raise ValueError(f"--predictor: {' '.join(str(error).split())}") from None
        # Networks' rows: their reference is a network ("network:ARCH" from pynas profile, the bare
        # architecture string from pynas-profile over adb).
        times = series_reference_times(store.measurements(
            backend=backend, backend_version=backend_version, threads=threads, kind="network"))
    return {key: [ms for ms in values if math.isfinite(ms) and ms > 0] for key, values in times.items()}


def choose_reference(bundle, arch: Arch) -> ReferenceChoice:
    """The network the bundle's profiling timed networks against (its measurements name it), else
    the stem network of its space as profiling picks it (the first architecture the space gives
    for its stem), else (or with no bundle: None) that of MnasNet at `arch`'s resolution."""
    from pynas.arch import parse

    from pynas.cell import is_cellnet_string, parse as parse_cellnet

    recorded = _bundle_reference_times(bundle) if bundle is not None else {}
    if recorded:
        key = max(recorded, key=lambda k: len(recorded[k]))
        text = key.removeprefix("network:")
        return ReferenceChoice(parse_cellnet(text) if is_cellnet_string(text) else parse(text), key,
                               "the bundle's profiling run", tuple(recorded[key]))
    from pynas.space import get_space

    space = bundle.space if bundle is not None else None
    if space is not None and space.profiled_whole:
        reference = space.reference_network()
        return ReferenceChoice(reference, f"network:{reference}", f"the reference network of the bundle's space "
                               f"({space.name}), as profiling picks it", ())
    source = f"the stem network of the bundle's space ({space.name}@{space.resolution}), as profiling picks it" \
        if space is not None and space.lowerable else None
    if source is None:
        space = get_space("mnasnet", resolution=arch.resolution)
        source = f"the stem network of mnasnet@{arch.resolution} " + (
            "(no bundle)" if bundle is None else "(the bundle names no reference and has no space)")
    stem = next(a for a, segment in space.segment_archs() if segment == "stem")
    return ReferenceChoice(stem, f"network:{stem}", source, ())


# -- timing --------------------------------------------------------------------------------------

def _local_passes(archs: list[Arch], reference: Arch, backend: str, threads: int, passes: int,
                  harness: dict, interleave=None) -> list[list[Pass]]:
    """Each arch timed `passes` times against `reference` on this machine, passes going round the
    archs; [arch][pass]."""
    from pynas.profiling.backends import Backend

    runner = Backend(backend, threads)
    ref = runner.network(reference)
    return interleaved_passes([runner.network(a) for a in archs], ref, passes, harness, interleave)


def interleaved_passes(items: list, reference, passes: int, harness: dict, interleave=None) -> list[list[Pass]]:
    """Each of `items` (`backends.Timed`) timed `passes` times as a ratio to `reference` (a Timed of
    the same backend), passes going round the items; [item][pass]."""
    from pynas.profiling.backends import time_interleaved

    interleave = interleave or time_interleaved
    out: list[list[Pass]] = [[] for _ in items]
    for _ in range(passes):
        for i, item in enumerate(items):
            r = interleave(item, reference, **harness)
            out[i].append(Pass(r["ratio"]["median_ms"], r["ratio"]["ci_rel"], r["reference"]["median_ms"],
                               r["item"]["median_ms"], r["ratio"]["runs"], bool(r["converged"])))
    return out


def _adb_passes(archs: list[Arch], reference: Arch, threads: int, passes: int, harness: dict,
                adb: OverAdb) -> tuple[list[list[Pass]], dict, str]:
    """As `_local_passes`, with pynas-profile on the device (`--reference`: the same interleaved
    ratio timing), one run of it per pass; also the device's fingerprint and backend version."""
    import tempfile

    from pynas.profiling.adb import AdbError, answers, profile_over_adb
    from pynas.profiling.oplist import network_entry
    from pynas.store import Store

    ref_entry = network_entry(reference)
    entries = [network_entry(a) for a in archs]
    if any(e.key == ref_entry.key for e in entries):
        raise ValueError(f"ARCH: {ref_entry.key[:60]}... is the reference network itself: over adb its ratio is 1 "
                         f"by definition (verify it on this machine, or verify another architecture)")
    try:
        answers(adb.serial, adb=adb.adb, timeout=adb.timeout)
    except AdbError as error:
        raise ValueError(f"--adb: {error}") from None
    # Each pynas-profile run takes its entries' budgets; the device gets that and a minute more.
    run_timeout = 60.0 + 3 * harness["budget_seconds"] * (len(entries) + 1)
    out: list[list[Pass]] = [[] for _ in archs]
    device, version = {}, ""
    session = f"verify-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="pynas-verify-") as tmp:
        for n in range(passes):
            with Store(Path(tmp) / f"pass{n}.sqlite") as store:
                try:
                    profile_over_adb(adb.serial, [ref_entry] + entries, store, profiler=adb.profiler, adb=adb.adb,
                                     threads=threads, budget_seconds=harness["budget_seconds"],
                                     target_ci=harness["target_rel_ci"], min_runs=harness["min_runs"],
                                     session=session, remote_output=f"{session}-{n}.jsonl", timeout=run_timeout,
                                     reference=ref_entry.key, cpu_time=bool(harness.get("cpu_time")))
                except AdbError as error:
                    raise ValueError(f"--adb: {error}") from None
                rows = {m.op.key: m for m in store.measurements()}
            for i, entry in enumerate(entries):
                m = rows.get(entry.key)
                if m is None or m.harness.get("reference") != ref_entry.key:
                    raise ValueError(f"--adb: pynas-profile on {adb.serial} returned no ratio to the reference for "
                                     f"{entry.key[:60]}...")
                h = m.harness
                out[i].append(Pass(h["ratio"], h.get("ratio_ci_rel", math.nan), h["reference_ms"], h["raw_median_ms"],
                                   int(h.get("pairs", m.stats.runs)), bool(h.get("converged"))))
                device, version = m.context.device.to_dict(), m.context.backend_version
    return out, device, version


# -- judging -------------------------------------------------------------------------------------

def judge(ratios: list[float], reference_ms: list[float], predicted_ms: float | None, fast_ms: float,
          bundle_fast_ms: float | None, *, tolerance: float, state_limit: float = STATE_LIMIT) -> dict:
    """The measured figure and verdict of one architecture from its passes (the module docstring's
    rule): its pass ratios and the reference's medians in them, the reference's fast state over
    this verification (`fast_ms`) and in the bundle's profiling run (None: unknown). Without a
    prediction (None) the verdict is NO_PREDICTION when the machine was steady enough to measure
    (else UNSTEADY), the uncertainty as with one."""
    if len(ratios) != len(reference_ms) or not ratios:
        raise ValueError(f"passes: expected as many ratios as reference times (>= 1), got {len(ratios)} and "
                         f"{len(reference_ms)}")
    scale = bundle_fast_ms or fast_ms
    kept = [(r, ref) for r, ref in zip(ratios, reference_ms) if ref <= state_limit * scale]
    clean = [r for r, _ in kept]
    measured_all = np.asarray(clean or ratios) * scale
    measured = float(np.median(measured_all))
    p10, p90 = (float(x) for x in np.percentile(measured_all, [10, 90]))
    error = None if predicted_ms is None else measured / predicted_ms - 1
    out = {"measured_ms": measured, "p10_ms": p10, "p90_ms": p90,
           "ratio": None if predicted_ms is None else measured / predicted_ms, "clean_passes": len(clean)}
    needed = max(2, math.ceil(len(ratios) / 2))
    if len(clean) < needed:
        out.update(steady=False, uncertainty=math.inf, verdict=UNSTEADY,
                   reason=f"the reference ran over {state_limit:g}x its fast state in {len(ratios) - len(clean)} of "
                          f"{len(ratios)} passes ({len(clean)} clean, {needed} needed)")
        return out
    u = spread = (p90 - p10) / 2 / measured
    parts = [f"ratios spread +-{100 * spread:.1f}% over {len(clean)} clean passes"]
    if bundle_fast_ms is None:
        # Scaled by the fast state now: how far the machine's state moved during the passes is
        # how far that scale may be off.
        refs = np.asarray([ref for _, ref in kept])
        state = float(np.percentile(refs, 90) - np.percentile(refs, 10)) / 2 / float(np.median(refs))
        u += state
        parts.append(f"the reference's time spread +-{100 * state:.1f}% (no profiled fast state to scale by)")
    steady = u <= tolerance / 2
    reason = "; ".join(parts) + f": uncertainty {100 * u:.1f}% {'<=' if steady else '>'} half the tolerance"
    if error is None:
        verdict = NO_PREDICTION
    elif abs(error) + u <= tolerance:
        verdict = OK
    elif abs(error) - u > tolerance:
        verdict = OVER
    elif steady:
        verdict = OK if abs(error) <= tolerance else OVER
    else:
        verdict = UNSTEADY
    out.update(steady=steady, uncertainty=u, verdict=verdict, reason=reason)
    return out


# -- the entry point -----------------------------------------------------------------------------

def check_options(passes, tolerance, state_limit=STATE_LIMIT) -> None:
    """--passes, --tolerance and state_limit, checked before anything is timed (ValueError naming the flag)."""
    if not isinstance(passes, int) or isinstance(passes, bool) or passes < 2:
        raise ValueError(f"--passes: expected an integer >= 2 (a spread needs two), got {passes!r}")
    if not isinstance(tolerance, (int, float)) or not 0 < tolerance < 10:
        raise ValueError(f"--tolerance: expected a share in (0, 10), e.g. 0.1 for 10%, got {tolerance!r}")
    if not state_limit > 1:
        raise ValueError(f"state_limit: expected a number > 1, got {state_limit!r}")


def load_bundle(predictor):
    """A loaded bundle from a name, a folder, a loaded bundle, or None (this machine's own native
    bundle at one thread, as `pynas search` picks it)."""
    from pynas.predictor import bundle as bundles
    from pynas.predictor.device import default_bundle

    if predictor is None:
        predictor = default_bundle("native", 1)
        if predictor is None:
            raise ValueError("--predictor: none given and this machine has no bundle of its own (`pynas device "
                             "init`): name one (`pynas predictors` lists them)")
    if hasattr(predictor, "manifest"):
        return predictor
    return bundles.load(predictor)


def verify(archs, predictor=None, *, passes: int = DEFAULT_PASSES, tolerance: float = DEFAULT_TOLERANCE,
           adb: OverAdb | None = None, predicted_ms: list[float] | None = None, harness: dict | None = None,
           state_limit: float = STATE_LIMIT, interleave=None) -> list[Verification]:
    """Each of `archs` (Arch, preset names or architecture strings) measured with `predictor`'s
    backend and threads, here or over `adb`, against its prediction (or `predicted_ms`, e.g. what a
    search saw). `harness`: timing options over `steady.NETWORK_HARNESS`; `interleave` stands in
    for `backends.time_interleaved` (tests). Bad input: ValueError naming the flag, before any timing."""
    import warnings

    from pynas.predictor.device import describe
    from pynas.predictor.predictors import resolve_arch
    from pynas.profiling.steady import NETWORK_HARNESS, fast_state

    check_options(passes, tolerance, state_limit)
    bundle = load_bundle(predictor)
    check_bundle(bundle, adb)
    archs = [archs] if isinstance(archs, (str, Arch)) else list(archs)
    space = bundle.space
    if space is not None and space.profiled_whole:
        # Cells (NAS-Bench-201 strings, their networks' strings): named as the space names them,
        # predicted by the bundle's lookup, timed as the space's networks.
        cells = [space.cell_of(a) for a in archs]
        names, archs = [str(c) for c in cells], [space.network(c) for c in cells]
    else:
        archs = [resolve_arch(a) for a in archs]
        names = [str(a) for a in archs]
    if not archs:
        raise ValueError("ARCH: expected at least one architecture, got none")
    if predicted_ms is None:
        with warnings.catch_warnings():  # the bundle is checked to be this machine's (or the device's)
            warnings.simplefilter("ignore")
            predicted_ms = [float(bundle.predict(a)) for a in (names if space is not None and space.profiled_whole
                                                               else archs)]
    elif len(predicted_ms) != len(archs):
        raise ValueError(f"predicted_ms: expected one per architecture ({len(archs)}), got {len(predicted_ms)}")
    manifest = bundle.manifest
    threads = manifest.threads or 1
    options = {**NETWORK_HARNESS, "cpu_time": threads == 1, **(harness or {})}
    reference = choose_reference(bundle, archs[0])
    if adb is None:
        runs = _local_passes(archs, reference.arch, manifest.backend, threads, passes, options, interleave)
        where = f"this machine ({describe(manifest)})"
    else:
        runs, device, version = _adb_passes(archs, reference.arch, threads, passes, options, adb)
        _check_adb_device(manifest, device, version, adb.serial)
        where = f"{adb.serial} over adb ({device.get('cpu_model') or 'unknown CPU'}, {device.get('machine', '?')})"
    fast = fast_state([p.reference_ms for run in runs for p in run])
    bundle_fast = fast_state(list(reference.bundle_times)) if reference.bundle_times else None
    return [verification(name, run, predicted, fast, bundle_fast, tolerance=tolerance, state_limit=state_limit,
                         bundle=manifest.name, backend=manifest.backend, threads=threads,
                         clock="cpu" if options.get("cpu_time") else "wall", device=where, reference=reference.key,
                         reference_source=reference.source)
            for name, predicted, run in zip(names, predicted_ms, runs)]


def verification(arch: str, run: list[Pass], predicted: float | None, fast: float, bundle_fast: float | None, *,
                 tolerance: float, state_limit: float = STATE_LIMIT, **context) -> Verification:
    """One architecture's Verification from its passes (`judge`'s figures and verdict, its raw and
    now-scaled times); `context`: the Verification's fields saying where and how it was timed."""
    j = judge([p.ratio for p in run], [p.reference_ms for p in run], predicted, fast, bundle_fast,
              tolerance=tolerance, state_limit=state_limit)
    clean = [p for p in run if p.reference_ms <= state_limit * (bundle_fast or fast)] or run
    return Verification(
        arch=arch, predicted_ms=None if predicted is None else float(predicted), tolerance=float(tolerance),
        scale="profiled" if bundle_fast else "now", reference_fast_ms=fast, reference_bundle_fast_ms=bundle_fast,
        raw_ms=float(np.median([p.raw_ms for p in clean])), now_ms=float(np.median([p.ratio for p in clean])) * fast,
        passes=run, **context, **j)


def _check_adb_device(manifest, device: dict, version: str, serial: str) -> None:
    """The device adb reached must be the one the bundle describes."""
    from pynas.predictor.device import describe, differences

    diffs = differences(manifest, here=device, backend_version=version)
    if diffs:
        raise ValueError(f"--adb: bundle {manifest.name} was made on {describe(manifest)}, not on device {serial} "
                         f"({'; '.join(diffs)}): use a bundle profiled on that device")
