"""`pynas verify ARCH...`: measure architectures where their latency bundle runs, against its prediction.

    pynas verify mnasnet-a1 runs/a --tolerance 5 --passes 5 --json verify.json
    pynas verify a1.onnx                        # an exported file itself, in ONNX Runtime

ARCH: a preset, an architecture string, or a search's run folder (its pick, best.txt's first line:
the verified pick when the search's own verification chose one, else its best under T; without
--predictor, with the run's bundle). Measured as `pynas.verify.measure`
says (ratios to the bundle's profiling reference, interleaved, over several passes, on the
profiling run's scale). Exit status: 0 every architecture within the tolerance, 1 one or more
over it (a result), 3 none over but the machine too unsteady to judge one or more (run it again
on a quieter machine, or with more --passes), 2 bad input (before anything is timed).

FILE (alone): a file of `pynas export` (.onnx, .tflite, .pt), timed itself in its runtime (ONNX
Runtime, LiteRT, PyTorch) against a reference network in that runtime (`pynas.ship.verify_export`),
and compared with --predictor, else this machine's own bundle of that runtime; with neither, the
measurement and its spread are printed with "no prediction" (exit 0: nothing to be over), never a
prediction of another runtime or machine. The same exit statuses otherwise.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from pynas import ui
from pynas.cli import flags

EXIT_OVER, EXIT_UNSTEADY = 1, 3


def _is_run(text: str) -> bool:
    return Path(text).is_dir()


def _run_arch(folder: Path) -> tuple[str, str]:
    """(the run's pick, best.txt's first line; the run's bundle) of search run folder `folder`."""
    from pynas.search.report import read_pick

    pick = read_pick(folder)
    return str(pick.arch), pick.predictor


def _short(arch: str, width: int = 48) -> str:
    return arch if len(arch) <= width else arch[:width - 3] + "..."


def _is_file(text: str) -> bool:
    """An exported file (by its extension, or any existing file: refused by its extension later)."""
    from pynas.ship.export import SUFFIX

    return Path(text).suffix.lower() in SUFFIX.values() or Path(text).is_file()


def cmd_verify(args) -> None:
    from pynas.predictor.device import default_bundle
    from pynas.verify.measure import OVER, UNSTEADY, OverAdb, load_bundle, verify

    if any(_is_file(text) for text in args.arch):
        _verify_file(args)
        return
    archs, run_bundles = [], {}
    for text in args.arch:
        if _is_run(text):
            arch, bundle = _run_arch(Path(text))
            run_bundles.setdefault(bundle, text)
            archs.append(arch)
        else:
            archs.append(text)
    if len(run_bundles) > 1 and args.predictor is None:
        (a, first), (b, second) = list(run_bundles.items())[:2]
        raise ValueError(f"ARCH: the runs {first} and {second} searched with different bundles ({a}, {b}): verify "
                         f"them separately, or name one with --predictor")
    run_bundle = next(iter(run_bundles), None)
    if args.profiler is not None and args.adb is None:
        raise ValueError("--profiler: expected with --adb only (the pynas-profile binary to run on the device)")
    adb = None
    if args.adb is not None:
        if args.profiler is None:
            raise ValueError("--profiler: expected the pynas-profile binary built for the device with --adb "
                             "(bash scripts/build-profiler.sh aarch64)")
        if not Path(args.profiler).is_file():
            raise FileNotFoundError(f"--profiler: expected the pynas-profile binary, got {args.profiler!r}, which "
                                    f"is not a file")
        adb = OverAdb(args.adb, args.profiler, adb=args.adb_command)
    predictor = args.predictor or run_bundle
    if predictor is None:
        predictor = default_bundle(args.backend or "native", args.threads or 1)
        if predictor is None:
            raise ValueError(f"--predictor: none given and this machine has no bundle of its own for "
                             f"{args.backend or 'native'} at {args.threads or 1} thread(s) (`pynas device init "
                             f"--backend {args.backend or 'native'}`): name one (`pynas predictors`)")
    with warnings.catch_warnings():  # a bundle of another machine is refused below, by name
        warnings.simplefilter("ignore")
        bundle = load_bundle(predictor)
    if args.backend is not None and args.backend != bundle.manifest.backend:
        raise ValueError(f"--backend: expected the bundle's backend ({bundle.manifest.backend}: it measures with "
                         f"that), got {args.backend}")
    if args.threads is not None and args.threads != bundle.manifest.threads:
        raise ValueError(f"--threads: expected the bundle's thread count ({bundle.manifest.threads}: its latencies "
                         f"are for that many), got {args.threads}")
    if args.json is not None and Path(args.json).is_dir():
        raise IsADirectoryError(f"--json: expected a file to write, got the folder {args.json}")
    results = verify(archs, bundle, passes=args.passes, tolerance=args.tolerance / 100, adb=adb)
    rows = [[_short(v.arch), f"{v.predicted_ms:.3f}", f"{v.measured_ms:.3f}", f"{v.p10_ms:.3f}..{v.p90_ms:.3f}",
             f"{v.ratio:.3f}", v.verdict] for v in results]
    print(ui.table(["architecture", "predicted ms", "measured ms", "p10..p90", "measured/predicted", "verdict"],
                   rows, right={1, 2, 3, 4}))
    first = results[0]
    scale = ("the bundle's profiling run" if first.scale == "profiled" else "this verification (the bundle ships "
             "no profiled times)")
    print(f"{first.bundle} on {first.device}, {first.threads} thread(s), {first.clock} time, {args.passes} passes; "
          f"measured = ratio to the reference network x its fast state in {scale} "
          f"({first.reference_bundle_fast_ms or first.reference_fast_ms:.3f} ms; now {first.reference_fast_ms:.3f} ms)")
    for v in results:
        if v.verdict != "ok" or not v.steady:
            print(f"{_short(v.arch)}: {v.verdict}: {v.reason}")
    if args.json is not None:
        Path(args.json).write_text(json.dumps([v.to_json() for v in results], indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    verdicts = {v.verdict for v in results}
    if OVER in verdicts:
        raise SystemExit(EXIT_OVER)
    if UNSTEADY in verdicts:
        raise SystemExit(EXIT_UNSTEADY)


def _verify_file(args) -> None:
    """`pynas verify FILE`: the exported file timed in its runtime (`pynas.ship.verify_export`)."""
    from pynas.ship.export import RUNTIME, SUFFIX
    from pynas.ship.verify_export import verify_export
    from pynas.verify.measure import NO_PREDICTION, OVER, UNSTEADY

    if len(args.arch) > 1:
        raise ValueError(f"ARCH: expected an exported file alone (it is timed in its own runtime), got "
                         f"{len(args.arch)} arguments: verify each file in a call of its own, architectures apart")
    path = Path(args.arch[0])
    for flag, value in (("--adb", args.adb), ("--profiler", args.profiler)):
        if value is not None:
            raise ValueError(f"{flag}: expected with an architecture only (an exported file is timed here, in its "
                             f"runtime; over adb pynas-profile times native builds of architectures)")
    runtime = {suffix: RUNTIME[fmt] for fmt, suffix in SUFFIX.items()}.get(path.suffix.lower())
    if args.backend is not None and runtime is not None and args.backend != runtime:
        raise ValueError(f"--backend: expected the file's runtime ({runtime}: {path.suffix} files run there), got "
                         f"{args.backend}")
    if args.json is not None and Path(args.json).is_dir():
        raise IsADirectoryError(f"--json: expected a file to write, got the folder {args.json}")
    v = verify_export(path, args.predictor, passes=args.passes, tolerance=args.tolerance / 100, threads=args.threads)
    predicted = v.predicted_ms is not None
    print(ui.table(["file", "predicted ms", "measured ms", "p10..p90", "measured/predicted", "verdict"],
                   [[_short(str(path)), f"{v.predicted_ms:.3f}" if predicted else "-", f"{v.measured_ms:.3f}",
                     f"{v.p10_ms:.3f}..{v.p90_ms:.3f}", f"{v.ratio:.3f}" if predicted else "-", v.verdict]],
                   right={1, 2, 3, 4}))
    scale = ("the bundle's profiling run" if v.scale == "profiled" else
             "this verification" + (" (the bundle ships no profiled times)" if predicted else ""))
    print(f"{path}: {_short(v.arch, 72)} (as the file records it)")
    print(f"timed in {v.backend} on {v.device}, {v.threads} thread(s), {v.clock} time, {args.passes} passes"
          f"{f', bundle {v.bundle}' if v.bundle else ''}; measured = ratio to the reference network x its fast "
          f"state in {scale} ({v.reference_bundle_fast_ms or v.reference_fast_ms:.3f} ms; now "
          f"{v.reference_fast_ms:.3f} ms)")
    if v.verdict == NO_PREDICTION:
        print(v.reason)  # "no prediction to compare: why; the spread"
    elif v.verdict != "ok" or not v.steady:
        print(f"{v.verdict}: {v.reason}")
    if args.json is not None:
        Path(args.json).write_text(json.dumps([v.to_json()], indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if v.verdict == OVER:
        raise SystemExit(EXIT_OVER)
    if v.verdict == UNSTEADY:
        raise SystemExit(EXIT_UNSTEADY)
    assert v.verdict in ("ok", NO_PREDICTION), v.verdict


def add_parsers(commands) -> None:
    from pynas.profiling.backends import BACKENDS
    from pynas.verify.measure import DEFAULT_PASSES, DEFAULT_TOLERANCE

    p = commands.add_parser(
        "verify", help="measure architectures here (or over adb) against their predicted latency",
        description="Times each ARCH with the bundle's backend as a ratio to the bundle's profiling reference, "
                    "interleaved, over several passes, and prints predicted vs measured; an exported FILE (alone) "
                    "is timed itself in its runtime (no bundle of that runtime here: measured, no prediction). Exit "
                    "status: 0 all within --tolerance (or no prediction), 1 one or more over it, 3 the machine too "
                    "unsteady to judge (none over), 2 bad input.")
    p.add_argument("arch", nargs="+", metavar="ARCH",
                   help="a preset, an architecture string, or a search run folder (its pick: best.txt's first line); "
                        "or, alone, an exported FILE (.onnx, .tflite, .pt of `pynas export`), timed in its runtime")
    p.add_argument("--predictor", help="latency bundle (default: the run's, else this machine's own from "
                                       "`pynas device init`; for a FILE, this machine's own of its runtime if any, "
                                       "else no prediction)")
    p.add_argument("--tolerance", type=flags.number(0, 900, low_open=True), default=100 * DEFAULT_TOLERANCE,
                   metavar="PCT", help=f"measured within this many %% of predicted is ok (default {100 * DEFAULT_TOLERANCE:g})")
    p.add_argument("--passes", type=flags.integer(2, 1000), default=DEFAULT_PASSES,
                   help=f"interleaved timings of each architecture (default {DEFAULT_PASSES})")
    p.add_argument("--backend", choices=[b for b in BACKENDS if b != "torch_cl"],
                   help="this machine's bundle of this backend (default native; an exported file's runtime: "
                        "onnxruntime, litert, torch); with --predictor, must be its own")
    p.add_argument("--threads", type=flags.threads,
                   help="this machine's bundle at this many threads (default 1); with --predictor, must be its own")
    p.add_argument("--adb", metavar="SERIAL", help="measure on this Android device (native bundles; needs --profiler)")
    p.add_argument("--profiler", metavar="PATH", help="with --adb: pynas-profile built for the device")
    p.add_argument("--adb-command", default="adb", metavar="PATH", help="the adb program (default: adb on PATH)")
    p.add_argument("--json", metavar="OUT", help="also write the verifications as JSON")
    p.set_defaults(run=cmd_verify)
