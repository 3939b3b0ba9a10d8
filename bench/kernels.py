#!/usr/bin/env python3
"""Native kernels vs PyTorch (eager, channels_last), ONNX Runtime and LiteRT, side by side.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
        python bench/kernels.py [--cases dw3x3,pw] [--passes 7] [--threads 1,2] [--cores 1,0]

Batch 1, fp32. Each case is timed for every runtime and every native variant this CPU runs, in
interleaved passes with rotating inputs (pynas.timing), at each thread count of --threads (at more
than one thread a single-op case runs as the native runner runs it, a one-step network splitting
rows over its threads with the kernel it selects: a kernel call alone uses one thread); the
table gives the median, GFLOP/s, the share of the measured FMA peak of the cores it ran on (one
core's peak x threads; pynas._core.peak_gflops) and the ratio to the fastest other runtime at the
same thread count (below 1.0: native is faster). The bench pins itself: n threads run on the first
n cores of --cores (default: the CPUs it may use, highest first, so one thread runs on core 1, the
timing core of these 2-core VMs, and two on cores 1 and 0). ONNX Runtime's workers spin at more
than one thread (its default). Native runs flush denormals; ONNX Runtime and LiteRT do not (ORT
with session.set_denormal_as_zero measured the same on MnasNet-A1 here, and it leaves the process
flushing: pynas.runtimes). A runtime not installed is a row saying which extra installs it
(pip install 'pynas[onnx,litert]'); --require-all makes that an error (exit 2) before any timing.
BatchNorm is folded for PyTorch, as the others fold it.

--hide-avx512 times the AVX2 code of every runtime on an AVX-512 machine: before anything loads, the
bench hides AVX-512 from CPUID (Linux CPUID faulting, pynas.runtimes.hide_avx512), so ONNX
Runtime (MLAS), LiteRT (XNNPACK) and PyTorch, which pick their kernels by CPUID, run their AVX2
kernels, and pynas runs its own (PYNAS_ISA=avx2); the share of peak is then of the AVX2 FMA peak.
It is this core running AVX2 code (its caches, clock and ports), not an AVX2-only CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pynas import _core, ui
from pynas.runtimes import RUNTIMES, hide_avx512, make_runner, unavailable
from pynas.timing import interleaved


@dataclass
class Case:
    name: str
    shape: tuple[int, int, int]  # C, H, W of the input
    build: Callable  # () -> torch module (eval, BN folded)
    flops: float
    native: Callable  # (module) -> {variant name: callable on an H x W x C array}


def _variants(op: str) -> list[str]:
    return [v["name"] for v in _core.kernel_variants() if v["op"] == op and v["runnable"]]


def _dw_case(c: int, hw: int, k: int, stride: int) -> Case:
    from torch import nn

    out = (hw + 2 * (k // 2) - k) // stride + 1

    def native(module):
        w = np.ascontiguousarray(module.weight.detach().numpy()[:, 0].transpose(1, 2, 0))
        b = module.bias.detach().numpy().copy()
        if THREADS > 1:
            return _one_op_network((hw, hw, c), lambda net, x: net.dwconv(x, w, b, stride, "none"))
        return {v: (lambda x, v=v: _core.dwconv(x, w, b, stride, "none", v)) for v in _variants("dwconv")}

    return Case(f"dw{k}x{k} s{stride} {c}x{hw}x{hw}", (c, hw, hw),
                lambda: nn.Conv2d(c, c, k, stride, k // 2, groups=c).eval(), 2.0 * c * out * out * k * k, native)


def _pw_case(cin: int, cout: int, hw: int) -> Case:
    from torch import nn

    def native(module):
        if not hasattr(_core, "PackedPointwise"):
            return {}
        w = np.ascontiguousarray(module.weight.detach().numpy()[:, :, 0, 0])
        b = module.bias.detach().numpy().copy()
        if THREADS > 1:
            return _one_op_network((hw, hw, cin), lambda net, x: net.pointwise(x, w, b, "none"))
        return {v: _core.PackedPointwise(w, b, variant=v).run for v in _variants("gemm")}

    return Case(f"pw {cin}->{cout} {hw}x{hw}", (cin, hw, hw), lambda: nn.Conv2d(cin, cout, 1).eval(),
                2.0 * cin * cout * hw * hw, native)


def _one_op_network(hwc: tuple[int, int, int], add_op: Callable) -> dict:
    """A single op at THREADS threads as the native runner runs it: a one-step `_core.Network`, rows
    split over its thread pool, with the kernel it selects (the best this CPU runs, or PYNAS_ISA's);
    the kernel functions alone run on the calling thread only. Keyed by that kernel."""
    net = _core.Network(THREADS)
    net.finalize(add_op(net, net.input(*hwc)))
    (step,) = net.describe()
    return {f"{step.split()[0]} ({THREADS} threads)": net.run}


def _block_case(name: str, stage: str, cin: int, hw: int) -> Case:
    """One MBConv block (from a block string) built by the PyTorch builder, BN folded."""
    from pynas.arch import parse
    from pynas.ir import lower
    from pynas.torch_builder import Block, fold_batchnorm

    arch = parse(f"net_res{hw}_cls10:stem_k3_s1_c{cin}:{stage}:head_c8")
    graph = lower(arch)
    flops = 2.0 * sum(op.macs for op in graph.ops if op.block == "s0.0")
    return Case(name, (cin, hw, hw), lambda: fold_batchnorm(Block(arch, arch.stages[0], cin, arch.stages[0].stride)),
                flops, lambda module: _native_network(arch, segment="s0.0"))


def _network_case(name: str) -> Case:
    from pynas.ir import lower
    from pynas.presets import preset
    from pynas.torch_builder import build_torch, fold_batchnorm

    arch = preset(name)
    return Case(f"{name} {arch.resolution}", (3, arch.resolution, arch.resolution),
                lambda: fold_batchnorm(build_torch(arch)), 2.0 * lower(arch).macs,
                lambda module: _native_network(arch))


def _native_network(arch, segment=None) -> dict:
    """The native runner with the best kernels (random weights: timing does not depend on them), with
    fused row-banded block steps (the default) and with one step per op (what fusion saves)."""
    from pynas.native.runner import NativeNetwork

    fused = NativeNetwork(arch, threads=THREADS, segment=segment)
    per_op = NativeNetwork(arch, threads=THREADS, segment=segment, fused=False)
    return {"fused blocks": fused.network.run, "op steps": per_op.network.run}


CASES = {
    "dw3x3": lambda: _dw_case(144, 56, 3, 1),
    "dw5x5": lambda: _dw_case(240, 28, 5, 2),
    "pw": lambda: _pw_case(144, 24, 56),
    "mbconv": lambda: _block_case("MBConv e6 k3 24->24 56x56 r6", "ir_r1_k3_s1_e6_c24_nr6", 24, 56),
    "mbconv_se": lambda: _block_case("MBConv e6 k3 SE 112->112 14x14", "ir_r1_k3_s1_e6_c112_se0.25", 112, 14),
    "mnasnet-a1": lambda: _network_case("mnasnet-a1"),
    "mobilenetv2": lambda: _network_case("mobilenetv2-1.0"),
}


THREADS = 1


def run_case(case: Case, passes: int, threads: int, peak: float) -> list[list[str]]:
    """The rows of one case at `threads` threads; `peak` is the FMA peak of the cores it runs on."""
    import torch

    torch.manual_seed(0)
    module = case.build()
    rng = np.random.default_rng(0)
    nchw = [rng.standard_normal((1, *case.shape)).astype(np.float32) for _ in range(4)]
    nhwc = [np.ascontiguousarray(x[0].transpose(1, 2, 0)) for x in nchw]
    others, notes = {}, []
    for runtime in RUNTIMES:
        reason = unavailable(runtime)
        if reason:
            notes.append(f"{runtime}: unavailable ({reason})")
            continue
        others[runtime] = make_runner(runtime, module, nchw[0], threads, key=f"bench:{case.name}")
    native = {f"native {v}": fn for v, fn in case.native(module).items()}
    # Native and other runtimes take different layouts: time each on its own inputs, same passes.
    fns = {**{k: (lambda i, f=f: f(nchw[i])) for k, f in others.items()},
           **{k: (lambda i, f=f: f(nhwc[i])) for k, f in native.items()}}
    timings = interleaved(fns, inputs=list(range(len(nchw))), passes=passes)
    fastest_other = min((timings[k].median_ms for k in others), default=float("nan"))
    rows = []
    for name, t in timings.items():
        gflops = case.flops / t.median_ms / 1e6
        rows.append([case.name, str(threads), name, f"{t.median_ms:.4f}", f"{gflops:.1f}",
                     f"{100 * gflops / peak:.0f}%", f"{t.median_ms / fastest_other:.2f}"])
    if not native:
        rows.append([case.name, str(threads), "native", "n/a", "", "", "not built yet"])
    return rows + [[case.name, str(threads), note, "", "", "", ""] for note in notes]


def _int_list(parser, flag: str, text: str, low: int, high: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(not low <= v <= high for v in values):
        parser.error(f"{flag}: expected comma-separated integers in {low}..{high}, got {text!r}")
    return values


def _pin(cores: list[int], threads: int) -> list[int]:
    """Pins this process to the first `threads` of `cores` (so are the threads it starts)."""
    chosen = cores[:threads]
    os.sched_setaffinity(0, chosen)
    return chosen


def _hide_avx512(parser) -> None:
    """--hide-avx512, before any runtime has looked at the CPU (they keep what they saw)."""
    try:
        torch_sees = hide_avx512()
    except (ValueError, RuntimeError) as e:
        parser.exit(2, f"bench/kernels.py: error: --hide-avx512: {e}\n")
    print("AVX-512 hidden from CPUID: every runtime runs its AVX2 kernels"
          + (f" (PyTorch reports {torch_sees})" if torch_sees else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    parser.add_argument("--cores", help="CPUs to pin to, in order of use (default: those allowed, highest first)")
    parser.add_argument("--require-all", action="store_true", help="exit 2 if any other runtime is not installed")
    parser.add_argument("--hide-avx512", action="store_true",
                        help="hide AVX-512 from CPUID first, so every runtime runs its AVX2 kernels")
    args = parser.parse_args()
    global THREADS
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown {', '.join(sorted(unknown))}; expected {', '.join(CASES)}")
    if args.passes < 1:
        parser.error(f"--passes: expected an integer >= 1, got {args.passes}")
    allowed = sorted(os.sched_getaffinity(0), reverse=True)
    thread_counts = _int_list(parser, "--threads", args.threads, 1, 256)
    cores = _int_list(parser, "--cores", args.cores, 0, max(allowed)) if args.cores else allowed
    if set(cores) - set(allowed):
        parser.error(f"--cores: expected CPUs this process may use ({', '.join(map(str, sorted(allowed)))}), "
                     f"got {args.cores}")
    if max(thread_counts) > len(cores):
        parser.error(f"--threads: expected at most {len(cores)} (one per core of --cores {','.join(map(str, cores))}),"
                     f" got {max(thread_counts)}")
    if args.hide_avx512:
        _hide_avx512(parser)
    missing = {r: unavailable(r) for r in RUNTIMES if unavailable(r)}
    if missing and args.require_all:
        parser.exit(2, f"bench/kernels.py: error: --require-all: {'; '.join(missing.values())}\n")
    if "GLIBC_TUNABLES" not in os.environ:
        print("note: set GLIBC_TUNABLES (see the docstring) or torch eager timings swing with page faults",
              file=sys.stderr)
    header = ["case", "threads", "runtime", "median ms", "GFLOP/s", "of peak", "vs fastest other"]
    rows = []
    for threads in thread_counts:
        THREADS = threads
        on = _pin(cores, threads)
        peak = _core.peak_gflops()  # of one core, measured on the core this process now runs on
        print(f"{threads} thread(s) on core(s) {','.join(map(str, on))}; measured FMA peak {peak:.0f} GFLOP/s per "
              f"core ({_core.supported_isas()[0]}); kernels: {_core.selected_kernels()}")
        rows += [row for name in args.cases.split(",")
                 for row in run_case(CASES[name](), args.passes, threads, peak * threads)]
    print(ui.table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
