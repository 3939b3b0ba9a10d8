#!/usr/bin/env python3
"""Pointwise (1x1) conv: every runnable GEMM variant vs PyTorch (eager NCHW, channels_last), one thread.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \\
        PYTHONPATH=$PWD taskset -c 1 python3 -P bench/pointwise.py [--passes 9] [--shapes 144-24,24-144]

Batch 1, fp32, typical MnasNet / MobileNetV2 layers. Native layers are packed once
(pynas._core.PackedPointwise) and timed by a C++ loop (.timeit, no Python call overhead); torch is
timed by a Python loop, as it is used. All candidates of a shape run in interleaved passes (the VMs
have slow and fast spells of 5-8%), each on inputs rotated through enough buffers to overflow L2
(the input of a layer in a network was written by the previous layer, not read a moment ago);
each candidate's figure is the median of its per-pass medians. The output of each runtime is
checked against torch's before timing.

"of peak" is the share of this core's FMA peak measured at the start (pynas._core.peak_gflops(): the
widest FMAs this CPU runs; the machines differ from session to session, so the peak is measured,
never quoted).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from pynas import _core, ui

TARGET_MS = {("144-24", 56): 0.249}  # LiteRT/XNNPACK on this machine

# (Cin, Cout, H = W)
SHAPES = [(144, 24, 56), (24, 144, 56), (960, 160, 7), (320, 1280, 7), (16, 96, 112), (40, 240, 28)]


def _batch_seconds(fn, number: int) -> float:
    t0 = time.perf_counter()
    fn(number)
    return (time.perf_counter() - t0) / number


def _calibrate(fn, seconds: float) -> int:
    """Calls per sample so that one sample takes about `seconds`."""
    number = 1
    while True:
        t = _batch_seconds(fn, number) * number
        if t >= seconds or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * seconds / max(t, 1e-9) * 1.2))


def bench_shape(cin: int, cout: int, hw: int, passes: int, sample_s: float, samples: int,
                peak: float) -> list[list[str]]:
    import torch

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    nbuf = int(np.clip(np.ceil(8e6 / (4 * hw * hw * cin)), 2, 16))  # >= 8 MB of inputs: past L2
    nhwc = [rng.standard_normal((hw, hw, cin)).astype(np.float32) for _ in range(nbuf)]
    nchw = [torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None] for x in nhwc]
    chlast = [x.contiguous(memory_format=torch.channels_last) for x in nchw]

    conv = torch.nn.Conv2d(cin, cout, 1).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w)[:, :, None, None])
        conv.bias.copy_(torch.from_numpy(b))
    conv_cl = torch.nn.Conv2d(cin, cout, 1).eval().to(memory_format=torch.channels_last)
    conv_cl.load_state_dict(conv.state_dict())

    def torch_runner(module, inputs):
        def run(number):
            with torch.inference_mode():
                for i in range(number):
                    module(inputs[i % nbuf])
        return run

    candidates = {"torch eager": torch_runner(conv, nchw), "torch channels_last": torch_runner(conv_cl, chlast)}
    with torch.inference_mode():
        want = conv(nchw[0])[0].permute(1, 2, 0).numpy()
    for v in _core.kernel_variants():
        if v["op"] != "gemm" or not v["runnable"]:
            continue
        layer = _core.PackedPointwise(w, b, variant=v["name"])
        got = layer.run(nhwc[0])
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{v['name']}: output differs from torch by {np.abs(got - want).max():.3g}")
        candidates[v["name"]] = lambda number, layer=layer: layer.timeit(nhwc, number)

    numbers = {name: _calibrate(fn, sample_s) for name, fn in candidates.items()}
    per_pass = {name: [] for name in candidates}
    for p in range(passes):
        names = list(candidates) if p % 2 == 0 else list(reversed(candidates))  # no fixed order bias
        for name in names:
            fn = candidates[name]
            per_pass[name].append(statistics.median(_batch_seconds(fn, numbers[name]) for _ in range(samples)))
    ms = {name: 1e3 * statistics.median(t) for name, t in per_pass.items()}

    flops = 2.0 * hw * hw * cin * cout
    shape = f"pw {cin}->{cout} {hw}x{hw}"
    target = TARGET_MS.get((f"{cin}-{cout}", hw))
    rows = []
    for name, t in ms.items():
        gflops = flops / t / 1e6
        note = ""
        if target is not None and not name.startswith("torch"):
            note = f"{t / target:.2f} of target {target} ms"
        rows.append([shape, name, f"{t:.4f}", f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%",
                     f"{t / ms['torch channels_last']:.2f}", note])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=9)
    parser.add_argument("--samples", type=int, default=5, help="samples per candidate and pass")
    parser.add_argument("--sample-ms", type=float, default=4.0, help="length of one sample")
    parser.add_argument("--shapes", default="", help="comma-separated Cin-Cout (default: all): "
                        + ", ".join(f"{c}-{o}" for c, o, _ in SHAPES))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    shapes = SHAPES
    if args.shapes:
        wanted = args.shapes.split(",")
        shapes = [s for s in SHAPES if f"{s[0]}-{s[1]}" in wanted]
        unknown = set(wanted) - {f"{c}-{o}" for c, o, _ in SHAPES}
        if unknown:
            parser.error(f"--shapes: unknown {', '.join(sorted(unknown))}")
    if "GLIBC_TUNABLES" not in os.environ:
        print("note: set GLIBC_TUNABLES (see the docstring) or torch timings swing with page faults", file=sys.stderr)
    cpus = sorted(os.sched_getaffinity(0))
    peak = _core.peak_gflops()
    print(f"cpus {cpus}, torch {torch.__version__} ({torch.get_num_threads()} thread), ISAs {_core.supported_isas()}, "
          f"share of the measured FMA peak {peak:.0f} GFLOP/s, ratio to torch channels_last (below 1: faster)")
    header = ["shape", "runtime", "median ms", "GFLOP/s", "of peak", "vs torch cl", ""]
    rows = []
    for cin, cout, hw in shapes:
        rows += bench_shape(cin, cout, hw, args.passes, args.sample_ms / 1e3, args.samples, peak)
    print(ui.table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
