"""`pynas predict | predictors | calibrate | fewshot`: latency predictor bundles."""
from __future__ import annotations

import os
import warnings

from pynas import ui
from pynas.cli import flags
from pynas.cli.common import MAX_RESOLUTION, arch_from_args, load_for_prediction, print_warnings
from pynas.presets import resolve

MIN_CALIBRATION_NETWORKS = 10  # the network term's scale and weight need this many (network_term.py)


def cmd_predict(args) -> None:
    from pynas.predictor.device import describe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = load_for_prediction(args.predictor)
        arch = _lookup_arch(p, args) if p.manifest.kind == "lookup" else arch_from_args(args)
        if args.breakdown:
            rows = [[r["segment"], r["kind"], f"{r['ms']:.4f}", r["key"]] for r in p.explain(arch)]
            print(ui.table(["segment", "kind", "ms", "key"], rows, {2}))
        ms = p.predict(arch)
    threads = f"{p.manifest.threads} thread(s)" if p.manifest.threads else "threads not stated by its source"
    where = "this machine" if p.device_differences() == [] and _is_host(p) else describe(p.manifest)
    print(f"{ms:.4f} ms  ({p.name}: {where}, {threads})")
    print_warnings("predict", caught)


def _lookup_arch(p, args):
    """ARCH as an architecture of a lookup bundle's space (a NAS-Bench-201 string)."""
    if args.resolution is not None:
        raise ValueError(f"--resolution: expected none with {p.name} (a lookup of {p.space.name}@{p.space.resolution} "
                         f"architectures), got {args.resolution}")
    try:
        return p.space.parse(args.arch)
    except ValueError as error:
        raise ValueError(f"ARCH: {error} (bundle {p.name} prices {p.space.name} architectures)") from None


def _is_host(p) -> bool:
    from pynas.predictor.device import describes_a_host

    return describes_a_host(p.manifest)


def cmd_predictors(args) -> None:
    from pynas.predictor import bundle
    from pynas.predictor.device import describe, describes_a_host, differences

    rows = []
    for name, folder, manifest in bundle.list_bundles():
        if isinstance(manifest, Exception):
            rows.append([name, "unreadable", "", "", "", str(manifest)])
            continue
        space = f"{manifest.space['name']}@{manifest.space['resolution']}" if manifest.space else "-"
        if not describes_a_host(manifest):
            here = "-"  # a phone's or a simulator's table: another kind of device by design
        else:
            diffs = differences(manifest)
            here = "yes" if not diffs else "no: " + "; ".join(d.split(":")[0] for d in diffs)
        rows.append([name, manifest.kind, describe(manifest), space, here, str(folder)])
    if not rows:
        print("no bundles on the search path: " + ", ".join(str(p) for p in bundle.search_path()))
        return
    print(ui.table(["name", "kind", "device", "space", "this machine", "folder / reason"], rows))
    if any(r[4].startswith("no") for r in rows):
        from pynas.predictor.device import FIX

        print(f"\n'no': made on another machine; {FIX}")


def calibration_space(args, data):
    """The space to compile into the bundle: --space at --resolution, else at the resolution of the
    measured networks (if they agree), else the space's default."""
    from collections import Counter

    from pynas.space import get_space

    if not args.space:
        return None
    resolution = args.resolution
    if resolution is None and data.networks:
        counts = Counter(resolve(a).resolution for a in data.networks)
        resolution = counts.most_common(1)[0][0]
    return get_space(args.space, **({"resolution": resolution} if resolution else {}))


def cmd_calibrate(args) -> None:
    import sys

    from pynas.cli.store import existing_store
    from pynas.predictor import bundle
    from pynas.predictor.train import load_dataset, train
    from pynas.space import get_space

    bundle.check_writable(args.output, args.force)  # before minutes of training, not after
    if args.space:  # a bad --space fails now, not after the training
        space = get_space(args.space, **({"resolution": args.resolution} if args.resolution else {}))
        if space.profiled_whole:
            return _calibrate_cells(args, space)
        if not space.lowerable:
            raise ValueError(f"--space: expected a space of pynas networks to compile a table for (mnasnet, fbnet), "
                             f"got {args.space}, whose architectures are not lowered to segments")
    with existing_store(args.db) as store:
        data = load_dataset(store, backend=args.backend, threads=args.threads, device_id=args.device_id)
    print(f"series: device {data.device_id}, {data.backend} ({data.backend_version}), {data.threads} thread(s): "
          f"{len(data.segments)} segments, {len(data.networks)} networks"
          + (f"; ratio-timed ({data.ignored} older raw-timed measurements left out)" if data.timing == "ratio" else ""))
    for kind, r in sorted(data.repeatability.items()):
        print(f"repeatability of the measurements: {r['n']} {kind} timed twice, relative difference median "
              f"{100 * r['median']:.1f}%, p90 {100 * r['p90']:.1f}%")
    if len(data.networks) < args.min_networks:
        raise ValueError(f"{args.db}: expected at least {args.min_networks} measured whole networks to fit and check "
                         f"the network term (--min-networks), got {len(data.networks)}: measure more with "
                         f"`pynas profile --networks N --segments 1`")
    if len(data.networks) < MIN_CALIBRATION_NETWORKS:
        print(f"WARNING: only {len(data.networks)} measured networks (fewer than {MIN_CALIBRATION_NETWORKS}): one "
              f"network-term parameter is fitted and the held-out network figures below rest on few networks",
              file=sys.stderr)
    space = calibration_space(args, data)
    trained = train(data, seed=args.seed, space=space)
    folder = bundle.save(args.output, trained, data, space=space, source=f"{args.db} {data.device_id}",
                         overwrite=args.force)
    for name in ("heldout_segments", "heldout_networks"):
        if name in trained.report:
            r = trained.report[name]
            print(f"{name:<18} n={r['n']:<5} RMSPE {r['rmspe']:.2f}%  within 5% {r['within5']:.1f}%  "
                  f"within 10% {r['within10']:.1f}%  Spearman {r['spearman']:.4f}")
    term = trained.term
    table = f", table {space.name}@{space.resolution}" if space else ""
    print(f"network = {term.scale:.4f} x sum(segments) + {term.weight_ms_per_mb:.4f} ms/MB x weights + "
          f"{term.overhead_ms:.4f} ms; bundle {folder}{table}")


def _calibrate_cells(args, space) -> None:
    """`pynas calibrate DB --space nb201`: a model of whole networks (`pynas.predictor.cellnet`),
    fitted on the store's measured networks of the space but a held-out fifth, written as a lookup
    of every cell with the model and the measurements beside it."""
    import tempfile
    from pathlib import Path

    from pynas.cli.store import existing_store
    from pynas.predictor import cellnet
    from pynas.predictor.predictors import MEASUREMENTS
    from pynas.store import export_jsonl

    with existing_store(args.db) as store:
        data = cellnet.load_cells(store, space, backend=args.backend, threads=args.threads, device_id=args.device_id)
        series = data.series
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / MEASUREMENTS
            export_jsonl(store, export, device_id=series.device_id, backend=series.backend,
                         backend_version=series.backend_version, threads=series.threads)
            measurements = export.read_bytes()
    print(f"series: device {series.device_id}, {series.backend} ({series.backend_version}), {series.threads} "
          f"thread(s): {len(data.keys)} networks of {space.name}"
          + (f" ({data.other_networks} networks of other spaces left out)" if data.other_networks else ""))
    for kind, r in sorted(series.repeatability.items()):
        print(f"repeatability of the measurements: {r['n']} {kind} timed twice, relative difference median "
              f"{100 * r['median']:.1f}%, p90 {100 * r['p90']:.1f}%")
    trained = cellnet.train_cells(data, space, seed=args.seed)
    folder = cellnet.save_cells(args.output, trained, data, space, source=f"{args.db} {series.device_id}",
                                overwrite=args.force, measurements=measurements)
    scores = trained.report.get("form_validation")
    if scores:
        n = next(iter(scores.values()))["n"]
        print(f"model form: {trained.report['form']}, chosen on {n} of the fitted networks: "
              + "; ".join(f"{form} RMSPE {v['rmspe']:.2f}%, within 10% {v['within10']:.1f}%" for form, v in scores.items()))
    r = trained.report["heldout_networks"]
    print(f"heldout_networks   n={r['n']:<5} RMSPE {r['rmspe']:.2f}%  within 5% {r['within5']:.1f}%  "
          f"within 10% {r['within10']:.1f}%  Spearman {r['spearman']:.4f}  (fitted on {len(data.keys) - r['n']})")
    print(f"bundle {folder}: every one of {space.size} {space.name} cells predicted (a lookup), model {cellnet.MODEL}")


def cmd_fewshot(args) -> None:
    from pynas.predictor import bundle, fewshot

    *base_names, measured = args.inputs
    bundle.check_writable(args.output, args.force)
    names, ms = fewshot.read_measured(measured)
    archs = []
    for line, name in enumerate(names, start=2):  # line 1 is the header
        try:
            archs.append(resolve(name))
        except ValueError as error:
            raise ValueError(f"{measured}: line {line}: arch: {error}") from error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bases = [bundle.load(name) for name in base_names] if base_names else fewshot.bases_for(archs)
        for base in bases:
            fewshot.check_in_space(base, archs, measured)
        name = args.name or os.path.basename(os.path.normpath(args.output))
        target = fewshot.Target({"name": name}, args.backend, args.backend_version, args.threads)
        folder = fewshot.calibrated_bundle(bases, archs, ms, args.output, target, method=args.method, name=args.name,
                                           overwrite=args.force)
    report = bundle.load(folder).manifest.extra["report"]
    cal, fit = report["calibration"], report["fit"]
    print(f"calibrated on {len(archs)} networks ({args.method}) from {', '.join(b.name for b in bases)}")
    if args.method == "multibase":
        shares = sorted(cal["base_weight"].items(), key=lambda kv: -kv[1])
        print("bases' shares of the calibrated latency: " + ", ".join(f"{n} {100 * v:.0f}%" for n, v in shares
                                                                       if v >= 0.005))
        best = cal["similarity"][0]
        print(f"most similar base alone: {best['base']} (leave-one-out RMSPE {best['loo_rmspe']:.1f}%); averaged "
              f"{len(cal['models'])} of {cal['models_scored']} models")
    else:
        print(f"global scale {cal['scale']:.4f}, overhead {cal['overhead_ms']:.4f} ms, per segment "
              f"{cal['segment_ms']:.4f} ms")
        if cal["method"] == "groups":
            print("group scales: " + ", ".join(f"{g} {v:.3f}" for g, v in sorted(cal["scales"].items())))
    print(f"on the {fit['n']} calibration networks: RMSPE {fit['rmspe']:.2f}%, within 10% {fit['within10']:.1f}%; "
          f"bundle {folder}")
    print_warnings("fewshot", [w for w in caught if "describes another machine" not in str(w.message)])


def add_device_flags(parser, timed: str) -> None:
    """What a calibrated bundle's manifest says of the device it describes (and --force): the
    flags of every command that writes one from a user's measurements of `timed` (networks, cells)."""
    parser.add_argument("--name", help="bundle and device name (default: the folder's)")
    parser.add_argument("--backend", default="unknown", help="the device's runtime, e.g. tflite (for the manifest)")
    parser.add_argument("--backend-version", default="unknown", help="its version (for the manifest)")
    parser.add_argument("--threads", type=flags.integer(0, flags.MAX_THREADS), default=0,
                        help=f"threads the {timed} were timed with (0: not stated)")
    parser.add_argument("--force", action="store_true", help="replace a bundle already in the output folder")


def add_parsers(commands) -> None:
    predict = commands.add_parser("predict", help="predicted latency of an architecture")
    predict.add_argument("arch", metavar="ARCH")
    predict.add_argument("--predictor", help="bundle name (see `pynas predictors`) or folder (a path: ./NAME); "
                                             "default: this machine's own (`pynas device init`)")
    predict.add_argument("--breakdown", action="store_true", help="per segment")
    predict.add_argument("--resolution", type=flags.integer(1, MAX_RESOLUTION), help="override the input resolution")
    predict.set_defaults(run=cmd_predict)

    predictors = commands.add_parser("predictors", help="list the predictor bundles on the search path")
    predictors.set_defaults(run=cmd_predictors)

    calibrate = commands.add_parser("calibrate", help="train a latency predictor bundle from a measurement store")
    calibrate.add_argument("db", metavar="DB", help="the measurement store")
    calibrate.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle folder, e.g. predictors/NAME")
    calibrate.add_argument("--backend", default="native")
    calibrate.add_argument("--threads", type=flags.threads, default=1)
    calibrate.add_argument("--device-id", help="the device (default: the one with most measurements)")
    calibrate.add_argument("--space", help="compile the table of this space into the bundle (e.g. mnasnet); nb201: "
                                           "fit its networks measured whole, a lookup of every cell")
    calibrate.add_argument("--resolution", type=flags.integer(1, MAX_RESOLUTION),
                           help="the space's resolution (default: the measured networks', else the space's)")
    calibrate.add_argument("--min-networks", type=flags.integer(0), default=MIN_CALIBRATION_NETWORKS,
                           help=f"refuse a store with fewer measured whole networks (default "
                                f"{MIN_CALIBRATION_NETWORKS}: what the network term needs)")
    calibrate.add_argument("--seed", type=flags.integer(0), default=0)
    calibrate.add_argument("--force", action="store_true", help="replace a bundle already in the output folder")
    calibrate.set_defaults(run=cmd_calibrate)

    fewshot = commands.add_parser(
        "fewshot", help="calibrate a latency table for a new device from k measured networks",
        description="MEASURED is a CSV with header 'arch,ms': architectures (strings or presets) timed end to end on "
                    "the new device; k = 10-20 is enough. BASEs are bundles with compiled tables of the networks' "
                    "space (default: every such bundle on the search path); multibase weighs them cell by cell.")
    fewshot.add_argument("inputs", nargs="+", metavar="[BASE ...] MEASURED")
    fewshot.add_argument("-o", "--output", required=True, metavar="DIR", help="new bundle folder")
    fewshot.add_argument("--method", default="multibase", choices=("multibase", "scale", "groups"),
                         help="multibase: every base, per cell and op, constrained (default); scale / groups: one "
                              "base, one factor / a factor per op type")
    add_device_flags(fewshot, "networks")
    fewshot.set_defaults(run=cmd_fewshot)
