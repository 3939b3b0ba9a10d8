"""The `pynas` command line."""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time

from pynas.arch import Arch
from pynas.presets import PRESETS, resolve
from pynas.timing import format_table


def _human(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def _arch_from_args(args) -> Arch:
    arch = resolve(args.arch)
    return arch if args.resolution is None else arch.replace(resolution=args.resolution)


def cmd_describe(args) -> None:
    from pynas.ir import fuse, lower

    arch = _arch_from_args(args)
    graph = lower(arch)
    print(arch)
    print()
    if args.kernels == "ops":
        rows = [[op.id, op.name, op.kind, f"{op.cin}x{op.hin}x{op.win}", f"{op.cout}x{op.hout}x{op.wout}",
                 op.kernel, op.stride, op.groups, op.act or "", f"{op.macs:,}", f"{op.params:,}"]
                for op in graph.ops]
        print(format_table(["#", "op", "kind", "in CxHxW", "out CxHxW", "k", "s", "g", "act", "MACs", "params"],
                     rows, right={0, 5, 6, 7, 9, 10}))
    else:
        kernels = fuse(graph, blocks=args.kernels == "blocks")
        rows = [[i, k.name, k.kind, f"{k.macs:,}", f"{k.params:,}", _human(k.bytes_in + k.bytes_out + k.weight_bytes),
                 k.key] for i, k in enumerate(kernels)]
        print(format_table(["#", "kernel", "kind", "MACs", "params", "bytes", "key"], rows, right={0, 3, 4, 5}))
        print(f"\n{len(kernels)} kernels from {len(graph.ops)} ops")
    print(f"\ntotal: params {graph.params:,} ({_human(graph.params)})  MACs {graph.macs:,} ({_human(graph.macs)})"
          f"  at {arch.resolution}x{arch.resolution}, batch 1")
    print("counting: MACs of convs and FCs (SE included); params include BatchNorm's gamma and beta")


def _space(args):
    """The space of --space with the options given (the space's own defaults for the others)."""
    from pynas.space import get_space

    options = {name: getattr(args, name) for name in ("setting", "resolution") if getattr(args, name) is not None}
    return get_space(args.space, **options)


def cmd_sample(args) -> None:
    space = _space(args)
    if args.describe:
        print(space.describe())
        return
    rows = space.sample_tokens(args.n, seed=args.seed)
    for row in rows:
        arch = space.decode(row)
        print(" ".join(map(str, row)) + "\t" + str(arch) if args.tokens else str(arch))


def cmd_run(args) -> None:
    import statistics

    import numpy as np

    from pynas.native.runner import NativeNetwork

    arch = _arch_from_args(args)
    net = NativeNetwork(arch, threads=args.threads, seed=0, fused=not args.per_op)
    image = np.random.default_rng(0).standard_normal((arch.resolution, arch.resolution, 3)).astype(np.float32)
    net.time_runs(image, max(1, args.runs // 10))  # warm-up: caches, page faults, CPU clock
    seconds = sorted(net.time_runs(image, args.runs))
    median = 1e3 * statistics.median(seconds)
    p10, p90 = 1e3 * seconds[len(seconds) // 10], 1e3 * seconds[(9 * len(seconds)) // 10]
    if args.kernels:
        print("\n".join(net.describe()) + "\n")
    macs = net.graph.macs
    print(f"{arch}\n{args.threads} thread(s), {args.runs} runs: median {median:.3f} ms (p10 {p10:.3f}, "
          f"p90 {p90:.3f}), {2 * macs / median / 1e6:.1f} GFLOP/s, {len(net.describe())} kernels")


def cmd_info(args) -> None:
    import pynas

    def version(*distributions: str) -> str:
        """Version of the first installed distribution (xgboost ships as xgboost-cpu on x86_64 Linux)."""
        for distribution in distributions:
            try:
                return f"{importlib.metadata.version(distribution)} ({distribution})"
            except importlib.metadata.PackageNotFoundError:
                continue
        return "not installed"

    print(f"pynas {pynas.__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    for name, distributions in (("numpy", ["numpy"]), ("torch", ["torch"]), ("xgboost", ["xgboost-cpu", "xgboost"]),
                                ("onnxruntime", ["onnxruntime"]), ("litert", ["ai-edge-litert"]), ("ray", ["ray"])):
        print(f"{name:<12} {version(*distributions)}")
    print("\nbuild:")
    for key, value in pynas.build_info().items():
        print(f"  {key:<18} {value}")
    features = pynas.cpu_features()
    print(f"\ncpu: {features.get('model', '')} ({features.get('arch', '')})")
    print("  features: " + " ".join(k for k, v in features.items() if v is True))
    print("  kernel ISAs, best first: " + ", ".join(pynas.supported_isas()))
    print("\nkernels chosen (PYNAS_ISA=scalar|avx2|avx512|neon forces a lower ISA):")
    for op, name in pynas._core.selected_kernels().items():
        print(f"  {op:<12} {name}")


def _existing_store(args):
    """The --db store for commands that only read it: a mistyped path is an error, not a new file."""
    from pynas.store import Store, StoreError, default_path

    path = default_path() if args.db is None else args.db
    if not os.path.exists(path):
        raise StoreError(f"{path}: no measurement store there (--db PATH, or $PYNAS_DB)")
    return Store(path)


def cmd_db_summary(args) -> None:
    with _existing_store(args) as store:
        summary = store.summary()
    print(f"store {summary.path}")
    span = f", {summary.first} to {summary.last}" if summary.measurements else ""
    print(f"{summary.measurements} measurements of {summary.keys} keys on {summary.devices} device(s) in "
          f"{summary.sessions} session(s){span}")
    if summary.rows:
        rows = [[r.device_id, r.cpu_model, r.backend, r.backend_version, r.threads, r.kind, r.count, r.first, r.last]
                for r in summary.rows]
        print()
        print(format_table(["device", "cpu", "backend", "version", "threads", "kind", "count", "first", "last"], rows,
                     right={4, 6}))


def cmd_db_export(args) -> None:
    from pynas.store import export_jsonl

    filters = {name: getattr(args, name) for name in ("device_id", "backend", "threads", "session")
               if getattr(args, name) is not None}
    with _existing_store(args) as store:
        count = export_jsonl(store, args.output, overwrite=args.force, **filters)
    print(f"wrote {count} measurements to {args.output}")


def cmd_db_import(args) -> None:
    from pynas.store import Store, import_jsonl

    # Each file is one transaction: a bad file imports nothing, the files before it stay imported.
    with Store(args.db) as store:
        for path in args.files:
            result = import_jsonl(store, path)
            print(f"{path}: {result.records} measurements, {result.added} added, "
                  f"{result.duplicates} already in {store.path}")


def cmd_profile(args) -> None:
    import math
    import signal

    from pynas.profiling.backends import Backend, BackendUnavailable, unavailable
    from pynas.profiling.session import Progress, plan, prepare, run, unmeasured
    from pynas.store import Store

    if args.adaptive < 0 or args.round_size < 1:  # checked before anything is measured
        raise ValueError(f"--adaptive: expected an integer >= 0, got {args.adaptive}" if args.adaptive < 0 else
                         f"--round-size: expected an integer >= 1, got {args.round_size}")
    _check_timing_flags(args)
    reason = unavailable(args.backend)  # checked before the (slow) planning
    if reason:
        raise BackendUnavailable(f"backend {args.backend} is unavailable here: {reason}")
    space = _space(args)
    work = plan(space, neighbours=args.neighbours, networks=args.networks, seed=args.seed, limit=args.limit,
                segments_sample=args.segments)
    counts = ", ".join(f"{n} {kind}" for kind, n in work.counts.items())
    print(f"space {work.space} at {work.resolution}: {len(work.items)} items to measure ({counts})")
    # Per kind (defaults: pynas.profiling.steady.SEGMENT_HARNESS / NETWORK_HARNESS); `harness`, for
    # both kinds, is also what the adaptive rounds time their segments with.
    harness = {"budget_seconds": args.item_budget_seconds, "target_rel_ci": args.target_ci}
    if args.pin is not None:
        harness["pin_cpu"] = args.pin
    network_harness = {"budget_seconds": args.network_budget_seconds, "target_rel_ci": args.network_target_ci}
    if args.wall_clock:
        harness["cpu_time"] = False
    elif args.threads > 1:
        harness["cpu_time"] = False  # other threads' work is not the calling thread's CPU time
    backend = Backend(args.backend, threads=args.threads)
    if args.prepare_only:
        with Store(args.db) as store:
            todo = unmeasured(work, backend, store, args.again, args.session)
        bar = Progress(len(todo))
        t0 = time.monotonic()
        done, failed = prepare(todo, backend, jobs=args.jobs, progress=bar.update)
        bar.close()
        print(f"converted {done} items for {backend.name} in {time.monotonic() - t0:.0f} s with {args.jobs} job(s); "
              f"{len(failed)} failed" + "".join(f"\nFAILED {key}: {error}" for key, error in failed[:10]))
        return
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # finish the item, then stop
    try:
        with Store(args.db) as store:
            print(f"backend {backend.name} ({backend.version}), {backend.threads} thread(s); store {store.path}")
            todo = unmeasured(work, backend, store, args.again, args.session)
            bar = Progress(len(todo))
            report = run(work, backend, store, budget_seconds=60 * args.budget_minutes if args.budget_minutes else math.inf,
                         harness=harness, network_harness=network_harness, session=args.session,
                         progress=bar.update, drift_tolerance=args.drift_tolerance, again=args.again,
                         repeat=args.repeat, seed=args.seed, should_stop=lambda: bool(interrupted))
            bar.close()
            print(report.summary())
            if args.adaptive and report.stopped_by == "done":
                _adaptive_rounds(args, space, backend, store, harness, lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_timing_flags(args) -> None:
    """The profile command's timing flags, before anything is planned or measured: a value that
    would make every item fail or never stop is an error naming the flag."""
    for flag, value in (("--item-budget-seconds", args.item_budget_seconds), ("--target-ci", args.target_ci),
                        ("--network-budget-seconds", args.network_budget_seconds),
                        ("--network-target-ci", args.network_target_ci), ("--drift-tolerance", args.drift_tolerance)):
        if not value > 0:  # NaN too
            raise ValueError(f"{flag}: expected a number > 0, got {value}")
    if args.repeat < 0:
        raise ValueError(f"--repeat: expected an integer >= 0, got {args.repeat}")


def _adaptive_rounds(args, space, backend, store, harness, should_stop) -> None:
    """Train, report held-out network accuracy, measure where the committee is least sure, repeat."""
    from pynas.predictor.adaptive import next_segments, targets_met
    from pynas.predictor.train import load_dataset, train
    from pynas.profiling.session import Progress, plan, run
    from pynas.store import this_device

    for round_ in range(1, args.adaptive + 1):
        data = load_dataset(store, backend=backend.name, threads=backend.threads,
                            device_id=this_device().device_id, backend_version=backend.version)
        report = train(data, params={"rounds": 300}).report
        r = report.get("heldout_networks")
        state = (f"held-out networks n={r['n']}: RMSPE {r['rmspe']:.2f}%, within 10% {r['within10']:.1f}%"
                 if r else "no networks measured yet")
        print(f"adaptive round {round_}: {len(data.segments)} segments measured; {state}")
        if targets_met(report):
            print("targets met (>= 99% within 10%, RMSPE < 4%): stopping")
            return
        pick = next_segments(data, space, args.round_size, seed=args.seed + round_)
        print(f"  measuring {len(pick.configs)} more: {pick.uncertain} where the committee disagrees most (median "
              f"log-ms spread {pick.spread:.3f}), {pick.near_errors} near the worst-predicted segments")
        work = plan(space, segments_sample=1, seed=args.seed, extra=pick.configs)  # the stem (reference) + picks
        bar = Progress(len(work.items))
        result = run(work, backend, store, harness=harness, session=args.session, progress=bar.update,
                     drift_tolerance=args.drift_tolerance, should_stop=should_stop)
        bar.close()
        print(result.summary())
        if result.stopped_by != "done":
            return


def cmd_calibrate(args) -> None:
    from pynas.predictor import bundle
    from pynas.predictor.train import load_dataset, train
    from pynas.space import get_space

    bundle.check_writable(args.output, args.force)  # before minutes of training, not after
    with _existing_store(args) as store:
        data = load_dataset(store, backend=args.backend, threads=args.threads, device_id=args.device_id)
    print(f"series: device {data.device_id}, {data.backend} ({data.backend_version}), {data.threads} thread(s): "
          f"{len(data.segments)} segments, {len(data.networks)} networks"
          + (f"; ratio-timed ({data.ignored} older raw-timed measurements left out)" if data.timing == "ratio" else ""))
    for kind, r in sorted(data.repeatability.items()):
        print(f"repeatability of the measurements: {r['n']} {kind} timed twice, relative difference median "
              f"{100 * r['median']:.1f}%, p90 {100 * r['p90']:.1f}%")
    trained = train(data, seed=args.seed)
    space = get_space(args.space, resolution=args.resolution) if args.space else None
    folder = bundle.save(args.output, trained, data, space=space, source=f"{args.db} {data.device_id}",
                         overwrite=args.force)
    for name in ("heldout_segments", "heldout_networks"):
        if name in trained.report:
            r = trained.report[name]
            print(f"{name:<18} n={r['n']:<5} RMSPE {r['rmspe']:.2f}%  within 5% {r['within5']:.1f}%  "
                  f"within 10% {r['within10']:.1f}%  Spearman {r['spearman']:.4f}")
    print(f"network = {trained.scale:.4f} x sum(segments) + {trained.weight_ms_per_mb:.4f} ms/MB x weights + "
          f"{trained.overhead_ms:.4f} ms; bundle {folder}")


def cmd_fewshot(args) -> None:
    from pynas.predictor import bundle, fewshot

    bundle.check_writable(args.output, args.force)
    base = bundle.load(args.base)
    names, ms = fewshot.read_measured(args.measured)
    archs = []
    for line, name in enumerate(names, start=2):  # line 1 is the header
        try:
            archs.append(resolve(name))
        except ValueError as error:
            raise ValueError(f"{args.measured}: line {line}: arch: {error}") from error
    folder = fewshot.calibrated_bundle(base, archs, ms, args.output, method=args.method, name=args.name,
                                       device={"name": args.name or os.path.basename(os.path.normpath(args.output))},
                                       overwrite=args.force)
    report = bundle.load(folder).manifest.extra["report"]
    cal, fit = report["calibration"], report["fit"]
    print(f"calibrated {base.name} on {len(archs)} networks ({cal['method']}): global scale {cal['scale']:.4f}, "
          f"overhead {cal['overhead_ms']:.4f} ms, per segment {cal['segment_ms']:.4f} ms")
    if cal["method"] == "groups":
        print("group scales: " + ", ".join(f"{g} {v:.3f}" for g, v in sorted(cal["scales"].items())))
    print(f"on the {fit['n']} calibration networks: RMSPE {fit['rmspe']:.2f}%, within 10% {fit['within10']:.1f}%; "
          f"bundle {folder}")


def cmd_predict(args) -> None:
    from pynas.predictor import bundle

    p = bundle.load(args.predictor)
    arch = _arch_from_args(args)
    if args.breakdown:
        rows = [[r["segment"], r["kind"], f"{r['ms']:.4f}", r["key"]] for r in p.explain(arch)]
        print(format_table(["segment", "kind", "ms", "key"], rows, {2}))
    threads = f"{p.manifest.threads} thread(s)" if p.manifest.threads else "threads not stated by its source"
    print(f"{p.predict(arch):.4f} ms  ({p.name}: {p.manifest.backend}, {threads})")


def cmd_predictors(args) -> None:
    from pynas.predictor import bundle

    rows = []
    for name, folder, manifest in bundle.list_bundles():
        if isinstance(manifest, Exception):
            rows.append([name, "unreadable", "", "", str(manifest)[:60]])
        else:
            space = f"{manifest.space['name']}@{manifest.space['resolution']}" if manifest.space else "-"
            rows.append([name, manifest.kind, manifest.backend, space, str(folder)])
    print(format_table(["name", "kind", "backend", "space", "folder"], rows, set()) if rows else
          "no bundles on the search path: " + ", ".join(str(p) for p in bundle.search_path()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pynas", description="Hardware-aware neural architecture search.")
    commands = parser.add_subparsers(dest="command", required=True)

    describe = commands.add_parser("describe", help="per-op table of an architecture: shapes, MACs, params",
                                   description=f"ARCH is a preset ({', '.join(PRESETS)}, mobilenetv2-<width>) "
                                               "or an architecture string.")
    describe.add_argument("arch", metavar="ARCH")
    describe.add_argument("--kernels", choices=("ops", "fused", "blocks"), default="ops",
                          help="ops: lowered ops; fused: conv+act(+add) kernels; blocks: whole MBConv/DS blocks")
    describe.add_argument("--resolution", type=int, help="override the input resolution")
    describe.set_defaults(run=cmd_describe)

    sample = commands.add_parser("sample", help="sample architectures uniformly from a search space")
    sample.add_argument("--space", default="mnasnet", help="mnasnet or fbnet (default mnasnet)")
    sample.add_argument("--setting", help="fbnet: imagenet (default) or cifar100")
    sample.add_argument("-n", type=int, default=5, help="how many (default 5)")
    sample.add_argument("--seed", type=int, default=None)
    sample.add_argument("--resolution", type=int, help="input resolution (default: the space's, 224 for mnasnet)")
    sample.add_argument("--tokens", action="store_true", help="also print each architecture's tokens")
    sample.add_argument("--describe", action="store_true", help="print the space's decisions and size instead")
    sample.set_defaults(run=cmd_sample)

    run = commands.add_parser("run", help="time an architecture with the native kernels (random weights)")
    run.add_argument("arch", metavar="ARCH")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--runs", type=int, default=200)
    run.add_argument("--resolution", type=int, help="override the input resolution")
    run.add_argument("--kernels", action="store_true", help="list the kernel variant of every step")
    run.add_argument("--per-op", action="store_true",
                     help="one step per op instead of fused row-banded MBConv/DS block steps")
    run.set_defaults(run=cmd_run)

    info = commands.add_parser("info", help="versions, build and detected CPU features")
    info.set_defaults(run=cmd_info)

    profile = commands.add_parser("profile", help="measure a search space's segments and networks on this device")
    profile.add_argument("--space", default="mnasnet", help="search space: mnasnet or fbnet (default mnasnet)")
    profile.add_argument("--setting", help="fbnet: imagenet (default) or cifar100")
    profile.add_argument("--resolution", type=int, help="input resolution (default: the space's, 224 for mnasnet)")
    profile.add_argument("--backend", default="native", help="native, torch, torch_cl, onnxruntime or litert")
    profile.add_argument("--threads", type=int, default=1)
    profile.add_argument("--budget-minutes", type=float, default=0,
                         help="stop after this long (between items); rerun to resume (0: no limit)")
    profile.add_argument("--db", metavar="PATH", help="the store file (default: $PYNAS_DB or the cache path)")
    profile.add_argument("--neighbours", type=int, default=300,
                         help="segments just outside the space (other channels and sizes), for generalisation")
    profile.add_argument("--networks", type=int, default=120, help="whole networks sampled from the space")
    profile.add_argument("--seed", type=int, default=0)
    profile.add_argument("--limit", type=int, help="only the first N items of the (seeded, shuffled) plan")
    profile.add_argument("--pin", type=int, metavar="CPU", help="pin timing to this core")
    profile.add_argument("--target-ci", type=float, default=0.04,
                         help="stop timing a segment once the 95%% CI of its median ratio to the reference is "
                              "within this (default 4%%)")
    profile.add_argument("--item-budget-seconds", type=float, default=0.15,
                         help="timing budget per segment, its reference's samples included (default 0.15)")
    profile.add_argument("--network-target-ci", type=float, default=0.015,
                         help="as --target-ci, for whole networks (default 1.5%%)")
    profile.add_argument("--network-budget-seconds", type=float, default=2.0,
                         help="timing budget per whole network (default 2)")
    profile.add_argument("--drift-tolerance", type=float, default=0.5,
                         help="time an item again at the end of the run when its reference, timed interleaved "
                              "with it, was more than this much slower than its fast state (an extreme state; "
                              "default 0.5: 1.5 times as slow); every item is timed as a ratio to the reference, so "
                              "milder spells cancel")
    profile.add_argument("--wall-clock", action="store_true",
                         help="time by the wall clock; by default one-thread runs are timed by the profiling "
                              "thread's CPU time, so time other processes take on its core is not counted")
    profile.add_argument("--repeat", type=int, default=30, metavar="N",
                         help="at the end, time a seeded sample of N of the run's items again (half networks) "
                              "and report the relative differences: the run's repeatability (default 30; 0: none)")
    profile.add_argument("--session", help="tag stored with every measurement (default: host and time)")
    profile.add_argument("--segments", type=int, metavar="N",
                         help="measure a seeded random N of the space's segments (the stem always), not all: "
                              "a learned predictor prices the rest (for slow backends such as litert)")
    profile.add_argument("--prepare-only", action="store_true",
                         help="only convert (onnxruntime, litert) what the plan will time, into the cache; "
                              "needs no quiet machine and runs --jobs processes; then profile as usual")
    profile.add_argument("--jobs", type=int, default=1, help="processes for --prepare-only (default 1)")
    profile.add_argument("--again", action="store_true",
                         help="measure the plan's items even if the store has them: another pass at another time "
                              "(each key counts with its median; e.g. --segments 1 --networks N --again); with "
                              "--session NAME, a rerun with the same NAME resumes the pass")
    profile.add_argument("--adaptive", type=int, default=0, metavar="ROUNDS",
                         help="then up to ROUNDS rounds of: train, measure --round-size segments where the "
                              "predictor is least sure; stop once held-out networks meet the targets")
    profile.add_argument("--round-size", type=int, default=100, help="segments per adaptive round (default 100)")
    profile.set_defaults(run=cmd_profile)

    calibrate = commands.add_parser("calibrate", help="train a latency predictor bundle from a measurement store")
    calibrate.add_argument("db", metavar="DB", help="the measurement store")
    calibrate.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle folder, e.g. predictors/NAME")
    calibrate.add_argument("--backend", default="native")
    calibrate.add_argument("--threads", type=int, default=1)
    calibrate.add_argument("--device-id", help="the device (default: the one with most measurements)")
    calibrate.add_argument("--space", help="compile the table of this space into the bundle (e.g. mnasnet)")
    calibrate.add_argument("--resolution", type=int, help="the space's resolution")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--force", action="store_true", help="replace a bundle already in the output folder")
    calibrate.set_defaults(run=cmd_calibrate)

    predict = commands.add_parser("predict", help="predicted latency of an architecture")
    predict.add_argument("arch", metavar="ARCH")
    predict.add_argument("--predictor", required=True, help="bundle name or folder (see `pynas predictors`)")
    predict.add_argument("--breakdown", action="store_true", help="per segment")
    predict.add_argument("--resolution", type=int, help="override the input resolution")
    predict.set_defaults(run=cmd_predict)

    fewshot = commands.add_parser("fewshot", help="adapt a predictor bundle to a new device from k measured networks",
                                  description="MEASURED is a CSV with header 'arch,ms': architectures (strings or "
                                              "presets) timed end to end on the new device, k <= 20 is enough.")
    fewshot.add_argument("base", metavar="BASE", help="bundle to start from (name or folder)")
    fewshot.add_argument("measured", metavar="MEASURED")
    fewshot.add_argument("-o", "--output", required=True, metavar="DIR", help="new bundle folder")
    fewshot.add_argument("--method", default="groups", choices=("scale", "groups"),
                         help="scale: one factor; groups: a factor per op type pulled towards it (default)")
    fewshot.add_argument("--name", help="bundle name (default: the folder's)")
    fewshot.add_argument("--force", action="store_true", help="replace a bundle already in the output folder")
    fewshot.set_defaults(run=cmd_fewshot)

    predictors = commands.add_parser("predictors", help="list the predictor bundles on the search path")
    predictors.set_defaults(run=cmd_predictors)

    db = commands.add_parser("db", help="the measurement store: summary, export, import",
                             description="The SQLite store of latency measurements: $PYNAS_DB if set, else "
                                         "$XDG_CACHE_HOME/pynas/measurements.sqlite (~/.cache by default).")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--db", metavar="PATH", help="the store file (default: $PYNAS_DB or the cache path)")
    summary = db_commands.add_parser("summary", parents=[store_option],
                                     help="counts per device, backend, threads and kind; time span")
    summary.set_defaults(run=cmd_db_summary)
    export = db_commands.add_parser("export", parents=[store_option],
                                    help="write measurements to a portable JSON Lines file (.gz: compressed)")
    export.add_argument("output", metavar="FILE")
    export.add_argument("--device-id", help="only this device's measurements")
    export.add_argument("--backend", help="only this backend's")
    export.add_argument("--threads", type=int, help="only those taken with this many threads")
    export.add_argument("--session", help="only this session's")
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    export.set_defaults(run=cmd_db_export)
    load = db_commands.add_parser("import", parents=[store_option],
                                  help="add portable files' measurements; ones already stored are skipped")
    load.add_argument("files", metavar="FILE", nargs="+")
    load.set_defaults(run=cmd_db_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 0:
        parser.error("-n must be >= 0")
    for option in ("threads", "runs"):
        if getattr(args, option, None) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be >= 1")
    try:
        args.run(args)
    except ValueError as error:
        print(f"pynas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into e.g. `head`, which closed early: not an error. Point stdout at devnull
        # so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
