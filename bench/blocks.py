#!/usr/bin/env python3
"""Where a network's time goes, block by block: the native runner's step profile (`pynas run
--profile`) against ONNX Runtime's own per-node profile, one thread, one pinned core.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
        python bench/blocks.py [--arch mnasnet-a1] [--runs 200] [--cpu 1]

Per block of the architecture (the stem, each block, the head with the classifier): its MACs, the
native steps' median ms inside whole runs (`NativeNetwork.profile`), ONNX Runtime's nodes' median
ms (SessionOptions.enable_profiling; a block's layout reorders count with it), their ratio, and
the native GFLOP/s and share of the measured FMA peak. Then both runtimes' whole runs, ONNX
Runtime's without profiling. Its profiler reads a clock around every node, so its per-node sum
runs some 10% over its whole run: per-block ratios are indicative (which blocks to work on), the
whole-network ratio is bench/kernels.py's. Needs ONNX Runtime and onnx (pip install
'pynas[onnx]'); without them it exits 2 before any work. --hide-avx512 compares both runtimes'
AVX2 kernels on an AVX-512 machine (as bench/kernels.py --hide-avx512).
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import statistics
import sys
import tempfile

import numpy as np


def ort_block_ms(path, image: np.ndarray, runs: int) -> tuple[dict[str, float], float]:
    """ONNX Runtime's per-block median ms over the last four fifths of `runs` profiled runs (block
    keys "stem", "b<N>" for the builder's blocks.N, "head"), and its whole-run median without the
    profiler."""
    from pynas.runtimes import onnx_session
    from pynas.timing import time_calls

    plain = onnx_session(path, 1)
    name = plain.get_inputs()[0].name
    whole = statistics.median(time_calls(lambda x: plain.run(None, {name: x}), [image], 0.0, runs)) * 1e3
    with tempfile.TemporaryDirectory() as folder:
        profiled = onnx_session(path, 1, os.path.join(folder, "ort"))
        for _ in range(runs):
            profiled.run(None, {name: image})
        with open(profiled.end_profiling()) as trace:
            events = json.load(trace)
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session"
                   and e["name"] == "model_run")[runs // 5:]
    nodes, block = [], "stem"
    for e in sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")),
                    key=lambda e: e["ts"]):
        found = re.search(r"blocks\.(\d+)", e["name"])
        if found:
            block = f"b{found.group(1)}"
        elif e["name"].startswith("/stem"):
            block = "stem"
        elif e["name"].startswith("/"):  # a named node after the blocks: the head (reorders keep the last block)
            block = "head"
        nodes.append((e["ts"], block, e["dur"] / 1e3))
    starts = [ts for ts, _, _ in nodes]  # in time order
    per_run = collections.defaultdict(list)
    for start, end in spans:
        totals = collections.defaultdict(float)
        for _, key, ms in nodes[bisect.bisect_left(starts, start):bisect.bisect_right(starts, end)]:
            totals[key] += ms
        for key, ms in totals.items():
            per_run[key].append(ms)
    return {key: statistics.median(values) for key, values in per_run.items()}, whole


def native_block_ms(net, image: np.ndarray, runs: int) -> tuple[collections.OrderedDict, float]:
    """The native steps' median ms and MACs per block, in network order ("stem", the blocks by name,
    "head": head.conv, head.pool and the classifier), and the whole-run median."""
    blocks = collections.OrderedDict()
    for step in net.profile(image, runs):
        name = step["kernel"]
        key = "stem" if name == "stem" else "head" if name.startswith("head") or name == "classifier" else name
        ms, macs = blocks.get(key, (0.0, 0))
        blocks[key] = (ms + step["ms"], macs + step["macs"])
    whole = statistics.median(net.time_runs(image, runs)) * 1e3
    return blocks, whole


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mnasnet-a1", help="a preset name or an architecture string")
    parser.add_argument("--runs", type=int, default=200, help="whole runs timed per runtime (default 200)")
    parser.add_argument("--cpu", type=int, help="the CPU to pin to (default: the highest this process may use)")
    parser.add_argument("--hide-avx512", action="store_true",
                        help="hide AVX-512 from CPUID first, so both runtimes run their AVX2 kernels")
    args = parser.parse_args(argv)
    from pynas.presets import resolve
    from pynas.runtimes import hide_avx512, unavailable

    try:
        arch = resolve(args.arch)
    except ValueError as error:
        parser.error(f"--arch: {' '.join(str(error).split())}")
    if args.runs < 5:
        parser.error(f"--runs: expected an integer >= 5, got {args.runs}")
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if args.cpu is None else args.cpu
    if cpu not in allowed:
        parser.error(f"--cpu: expected a CPU this process may use ({', '.join(map(str, allowed))}), got {args.cpu}")
    if args.hide_avx512:
        try:
            hide_avx512()
        except (ValueError, RuntimeError) as e:
            parser.exit(2, f"bench/blocks.py: error: --hide-avx512: {e}\n")
    missing = unavailable("onnxruntime")
    if missing:
        parser.exit(2, f"bench/blocks.py: error: ONNX Runtime: {missing}\n")
    os.sched_setaffinity(0, [cpu])

    from pynas import _core
    from pynas.native.runner import NativeNetwork
    from pynas.runtimes import converted_path
    from pynas.torch_builder import build_torch, fold_batchnorm

    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 3, arch.resolution, arch.resolution)).astype(np.float32)
    module = fold_batchnorm(build_torch(arch)).eval()
    path = converted_path("onnxruntime", module, image, "network:" + str(arch))
    net = NativeNetwork(arch, threads=1)
    hwc = np.ascontiguousarray(image[0].transpose(1, 2, 0))
    native, native_whole = native_block_ms(net, hwc, args.runs)
    ort_ms, ort_whole = ort_block_ms(path, image, args.runs)
    keys = list(native)
    ort_keys = ["stem"] + [f"b{i}" for i in range(len(keys) - 2)] + ["head"]
    if keys[0] != "stem" or keys[-1] != "head" or set(ort_ms) - set(ort_keys):
        sys.exit(f"bench/blocks.py: the blocks do not line up: native {keys}, ONNX Runtime {sorted(ort_ms)}")
    peak = _core.peak_gflops()
    print(f"{arch.resolution} px, 1 thread on CPU {cpu}, {args.runs} runs; measured FMA peak {peak:.0f} GFLOP/s "
          f"({_core.supported_isas()[0]})")
    print("| block | MMACs | native ms | ONNX Runtime ms (profiled) | native / ORT | native GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|")
    for key, ort_key in zip(keys, ort_keys):
        ms, macs = native[key]
        other = ort_ms.get(ort_key, float("nan"))
        print(f"| {key} | {macs / 1e6:.1f} | {ms:.3f} | {other:.3f} | {ms / other:.2f} | {2 * macs / ms / 1e6:.0f} | "
              f"{2 * macs / ms / 1e6 / peak:.0%} |")
    native_sum, ort_sum = sum(ms for ms, _ in native.values()), sum(ort_ms.values())
    print(f"| sum of blocks | | {native_sum:.3f} | {ort_sum:.3f} | {native_sum / ort_sum:.2f} | | |")
    print(f"whole runs: native {native_whole:.3f} ms, ONNX Runtime {ort_whole:.3f} ms (not profiled): "
          f"{native_whole / ort_whole:.2f}; ONNX Runtime's profiled node sum is {ort_sum / ort_whole:.2f} x its "
          "whole run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
