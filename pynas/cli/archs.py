"""`pynas describe | sample | run | info`: architectures, spaces, the native runner, this build."""
from __future__ import annotations

import importlib.metadata
import platform
import sys

from pynas import ui
from pynas.cli import flags
from pynas.cli.common import MAX_RESOLUTION, arch_from_args, human, space_from_args
from pynas.presets import PRESETS

SAMPLE_LINES = 256  # `pynas sample` writes (and flushes) this many lines at a time

def network_from_args(args):
    """ARCH as a network pynas lowers and runs: a block network (`arch_from_args`), or a cell network
    from its ``cellnet_...`` string or from a NAS-Bench-201 string (the benchmark's network of that
    cell); --resolution overrides the resolution."""
    from pynas.cell import is_cellnet_string, parse as parse_cellnet

    if is_cellnet_string(args.arch):
        net = parse_cellnet(args.arch)
    elif args.arch.startswith("|"):
        from pynas.space.nb201 import Cell

        net = Cell.parse(args.arch).network()
    else:
        return arch_from_args(args)
    return net if args.resolution is None else net.replace(resolution=args.resolution)


def cmd_describe(args) -> None:
    from pynas.ir import fuse, lower

    arch = network_from_args(args)
    graph = lower(arch)
    print(arch)
    print()
    if args.kernels == "ops":
        rows = [[op.id, op.name, op.kind, f"{op.cin}x{op.hin}x{op.win}", f"{op.cout}x{op.hout}x{op.wout}",
                 op.kernel, op.stride, op.groups, op.act or "", f"{op.macs:,}", f"{op.params:,}"]
                for op in graph.ops]
        print(ui.table(["#", "op", "kind", "in CxHxW", "out CxHxW", "k", "s", "g", "act", "MACs", "params"],
                       rows, right={0, 5, 6, 7, 9, 10}))
    else:
        kernels = fuse(graph, blocks=args.kernels == "blocks")
        rows = [[i, k.name, k.kind, f"{k.macs:,}", f"{k.params:,}", human(k.bytes_in + k.bytes_out + k.weight_bytes),
                 k.key] for i, k in enumerate(kernels)]
        print(ui.table(["#", "kernel", "kind", "MACs", "params", "bytes", "key"], rows, right={0, 3, 4, 5}))
        print(f"\n{len(kernels)} kernels from {len(graph.ops)} ops")
    print(f"\ntotal: params {graph.params:,} ({human(graph.params)})  MACs {graph.macs:,} ({human(graph.macs)})"
          f"  at {arch.resolution}x{arch.resolution}, batch 1")
    print("counting: MACs of convs and FCs (SE included); params include BatchNorm's gamma and beta")


def cmd_sample(args) -> None:
    space = space_from_args(args)
    if args.describe:
        print(space.describe())
        return
    for rows in space.iter_tokens(args.n, seed=args.seed):  # streamed: any -n in bounded memory
        for start in range(0, len(rows), SAMPLE_LINES):  # and printed as decoded: the first lines at once
            lines = []
            for row in rows[start:start + SAMPLE_LINES]:
                arch = space.decode(row)
                lines.append(" ".join(map(str, row)) + "\t" + str(arch) if args.tokens else str(arch))
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()


def cmd_run(args) -> None:
    import statistics

    import numpy as np

    from pynas.native.runner import NativeNetwork

    from pynas.cell import CellNet

    arch = network_from_args(args)
    if isinstance(arch, CellNet) and args.predict is not False:
        raise ValueError("--predict: expected a block network (its bundles price segments of those), got the cell "
                         f"network {str(arch)[:60]}...: time it without --predict")
    net = NativeNetwork(arch, threads=args.threads, seed=0, fused=not args.per_op)
    shape = (arch.resolution, arch.resolution, arch.in_channels)
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net.time_runs(image, max(1, args.runs // 10))  # warm-up: caches, page faults, CPU clock
    seconds = sorted(net.time_runs(image, args.runs))
    median = 1e3 * statistics.median(seconds)
    p10, p90 = 1e3 * seconds[len(seconds) // 10], 1e3 * seconds[(9 * len(seconds)) // 10]
    if args.kernels:
        print("\n".join(net.describe()) + "\n")
    if args.profile:
        print(profile_table(net, image, args.runs, median) + "\n")
    print(f"{arch}\n{args.threads} thread(s), {args.runs} runs: median {median:.3f} ms (p10 {p10:.3f}, "
          f"p90 {p90:.3f}), {2 * net.graph.macs / median / 1e6:.1f} GFLOP/s, {len(net.describe())} kernels")
    if args.predict is not False:
        print_prediction_beside(arch, median, args.predict, args.threads)


def profile_table(net, image, runs: int, whole_ms: float) -> str:
    """Where a run's time goes: every native step timed inside whole runs (`NativeNetwork.profile`),
    its share, its GFLOP/s and its share of this core's measured FMA peak (`_core.peak_gflops`, one
    core: with threads the share is of one core's peak, so it can pass 100%)."""
    from pynas import _core

    steps = net.profile(image, runs)
    total = sum(s["ms"] for s in steps)
    peak = _core.peak_gflops()
    rows = [[s["step"], f"{s['ms']:.3f}", f"{100 * s['ms'] / total:.1f}%", f"{s['macs'] / 1e6:.1f}",
             f"{2 * s['macs'] / s['ms'] / 1e6:.1f}" if s["macs"] else "", f"{200 * s['macs'] / s['ms'] / 1e6 / peak:.0f}%"
             if s["macs"] else ""] for s in steps]
    return (ui.table(["step", "median ms", "share", "MMACs", "GFLOP/s", "of peak"], rows) +
            f"\nsteps' medians sum to {total:.3f} ms (whole runs' median {whole_ms:.3f}); FMA peak {peak:.0f} GFLOP/s")


def print_prediction_beside(arch, measured_ms: float, name: str | None, threads: int) -> None:
    """The predicted latency next to the one just measured, saying which machine the bundle
    describes (a bundle of another machine predicts that machine, not this one)."""
    import warnings

    from pynas.cli.common import load_for_prediction
    from pynas.predictor.device import describe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said below, in the line itself
        p = load_for_prediction(name, "native", threads, flag="--predict")
        predicted = p.predict(arch)
    diffs = p.device_differences()
    where = "this machine" if not diffs else f"ANOTHER machine ({describe(p.manifest)}: {'; '.join(diffs)})"
    print(f"predicted {predicted:.3f} ms by {p.name} ({where}): {100 * (predicted / measured_ms - 1):+.1f}% vs "
          f"measured")


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


def add_space_options(parser, what: str = "search space") -> None:
    parser.add_argument("--space", default="mnasnet",
                        help=f"{what}: mnasnet, fbnet, nb201, darts, nasnet or enas (default mnasnet)")
    parser.add_argument("--setting", help="fbnet: imagenet (default) or cifar100")
    parser.add_argument("--resolution", type=flags.integer(1, MAX_RESOLUTION),
                        help="input resolution (default: the space's, 224 for mnasnet)")


def add_parsers(commands) -> None:
    describe = commands.add_parser("describe", help="per-op table of an architecture: shapes, MACs, params",
                                   description=f"ARCH is a preset ({', '.join(PRESETS)}, mobilenetv2-<width>), "
                                               "an architecture string, a cell network (cellnet_...) or a "
                                               "NAS-Bench-201 cell (its benchmark network).")
    describe.add_argument("arch", metavar="ARCH")
    describe.add_argument("--kernels", choices=("ops", "fused", "blocks"), default="ops",
                          help="ops: lowered ops; fused: conv+act(+add) kernels; blocks: whole MBConv/DS block")
    describe.add_argument("--resolution", type=flags.integer(1, MAX_RESOLUTION), help="override the input resolution")
    describe.set_defaults(run=cmd_describe)

    sample = commands.add_parser("sample", help="sample architectures uniformly from a search space")
    add_space_options(sample)
    sample.add_argument("-n", type=flags.integer(0), default=5, help="how many (default 5; streamed)")
    sample.add_argument("--seed", type=flags.integer(0), default=None)
    sample.add_argument("--tokens", action="store_true", help="also print each architecture's tokens")
    sample.add_argument("--describe", action="store_true", help="print the space's decisions and size instead")
    sample.set_defaults(run=cmd_sample)

    run = commands.add_parser("run", help="time an architecture with the native kernels (random weights)")
    run.add_argument("arch", metavar="ARCH")
    run.add_argument("--threads", type=flags.threads, default=1, help=f"1..{flags.MAX_THREADS} (default 1)")
    run.add_argument("--runs", type=flags.integer(1, 1_000_000), default=200)
    run.add_argument("--resolution", type=flags.integer(1, MAX_RESOLUTION), help="override the input resolution")
    run.add_argument("--kernels", action="store_true", help="list the kernel variant of every step")
    run.add_argument("--profile", action="store_true",
                     help="time every step inside --runs whole runs: ms, share, GFLOP/s, share of the FMA peak")
    run.add_argument("--per-op", action="store_true",
                     help="one step per op instead of fused row-banded MBConv/DS block steps")
    run.add_argument("--predict", nargs="?", const=None, default=False, metavar="BUNDLE",
                     help="also print the latency BUNDLE predicts (default: this machine's own, `pynas device init`)")
    run.set_defaults(run=cmd_run)

    info = commands.add_parser("info", help="versions, build and detected CPU features")
    info.set_defaults(run=cmd_info)
