"""Depthwise conv: every runnable pynas variant against PyTorch, batch 1, one thread, fp32.

    cd <repo> && bash scripts/dev-build.sh && \
      GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
      PYTHONPATH=$PWD taskset -c 1 python3 -P bench/dwconv.py [--passes 15] [--calls 40]

Everything compared is interleaved: each pass times every (shape, runtime) pair once, in a
rotated order, so slow / fast spells of the machine hit all runtimes alike; the table reports the
median over passes of each pass's median call time. Every batch starts with 3 ms of untimed
warm-up calls. Inputs rotate over enough buffers to exceed the L2 cache, as a network's
activations would; they and the outputs start on 64-byte boundaries (--offset to misalign the
inputs). pynas variants are timed in a C++ loop (_core.time_dwconv: no Python call overhead);
"pynas (py call)" is the default variant through _core.dwconv, to show that overhead (its output
allocation included). torch runs with one thread, inference mode, NCHW ("eager") and
channels_last tensors, timed per call from Python.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pynas import _core

# (name, H, W, C, k, stride, target ms or None)
SHAPES = [
    ("dw3x3 s1 56x56x144", 56, 56, 144, 3, 1, 0.146),
    ("dw5x5 s2 28x28x240", 28, 28, 240, 5, 2, 0.063),
    ("dw3x3 s2 28x28x192", 28, 28, 192, 3, 2, None),
    ("dw7x7 s1 28x28x192", 28, 28, 192, 7, 1, None),
]
ROTATE_BYTES = 4 << 20  # input bytes in rotation per shape: above the L2
# Untimed calls before each timed batch: on the reference VM the first few hundred microseconds of
# calls after switching runtimes (notably after torch) run 2-5x slower.
WARMUP_S = 0.003


def aligned(a: np.ndarray, align: int = 64, offset: int = 0) -> np.ndarray:
    """A copy of `a` whose data starts `offset` bytes past an `align`-byte boundary."""
    raw = np.empty(a.nbytes + align + offset, np.uint8)
    start = (-raw.ctypes.data) % align + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def out_size(n, k, s):
    return (n + 2 * (k // 2) - k) // s + 1


def make_runners(shape, variants, torch, offset):
    _, h, w, c, k, s, _ = shape
    rng = np.random.default_rng(0)
    nbuf = max(2, -(-ROTATE_BYTES // (h * w * c * 4)))
    xs = [aligned(rng.standard_normal((h, w, c)).astype(np.float32), 64, offset) for _ in range(nbuf)]
    wt = rng.standard_normal((k, k, c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    runners = {}
    for v in variants:
        runners[v] = lambda calls, v=v: _core.time_dwconv(xs, wt, b, s, "none", v, calls, WARMUP_S)

    def py_call(calls):
        warm_end, i = time.perf_counter() + WARMUP_S, 0
        while time.perf_counter() < warm_end:
            _core.dwconv(xs[i % nbuf], wt, b, s)
            i += 1
        out = []
        for i in range(i, i + calls):
            x = xs[i % nbuf]
            t0 = time.perf_counter()
            _core.dwconv(x, wt, b, s)
            out.append(time.perf_counter() - t0)
        return out
    runners["pynas (py call)"] = py_call
    if torch is not None:
        tw = torch.from_numpy(np.ascontiguousarray(wt.transpose(2, 0, 1)[:, None]))
        tb = torch.from_numpy(b)
        for name, fmt in (("torch eager", torch.contiguous_format), ("torch channels_last", torch.channels_last)):
            txs = [torch.from_numpy(x).permute(2, 0, 1)[None].contiguous(memory_format=fmt) for x in xs]
            tww = tw.contiguous(memory_format=fmt)

            def torch_call(calls, txs=txs, tww=tww):
                out = []
                with torch.inference_mode():
                    warm_end, i = time.perf_counter() + WARMUP_S, 0
                    while time.perf_counter() < warm_end:
                        torch.nn.functional.conv2d(txs[i % nbuf], tww, tb, s, k // 2, 1, c)
                        i += 1
                    for i in range(i, i + calls):
                        x = txs[i % nbuf]
                        t0 = time.perf_counter()
                        torch.nn.functional.conv2d(x, tww, tb, s, k // 2, 1, c)
                        out.append(time.perf_counter() - t0)
                return out
            runners[name] = torch_call
        # Same numbers as pynas? (catches a benchmark that times the wrong thing)
        ref = torch.nn.functional.conv2d(torch.from_numpy(xs[0]).permute(2, 0, 1)[None], tw, tb, s, k // 2, 1, c)
        for v in variants:
            got = _core.dwconv(xs[0], wt, b, s, "none", v)
            np.testing.assert_allclose(got, ref[0].permute(1, 2, 0).numpy(), rtol=1e-4, atol=1e-4 * k)
    return runners


def python_overhead_us(reps=20000):
    x, wt, b = np.zeros((1, 1, 1), np.float32), np.zeros((3, 3, 1), np.float32), np.zeros(1, np.float32)
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            _core.dwconv(x, wt, b)
        best.append((time.perf_counter() - t0) / reps * 1e6)
    return statistics.median(best)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=15)
    ap.add_argument("--calls", type=int, default=40, help="timed calls per runtime per pass")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--offset", type=int, default=0,
                    help="pynas inputs start this many bytes past a 64-byte boundary (default 0; numpy's own "
                         "arrays are only 16-byte aligned)")
    args = ap.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            print("torch not installed: pynas only")
    variants = [v["name"] for v in _core.kernel_variants() if v["op"] == "dwconv" and v["runnable"]]
    runners = {shape: make_runners(shape, variants, torch, args.offset) for shape in SHAPES}
    samples = {(shape, name): [] for shape in SHAPES for name in runners[shape]}
    keys = list(samples)
    for p in range(args.passes):
        rot = p * 7 % len(keys)
        for key in keys[rot:] + keys[:rot]:
            shape, name = key
            samples[key].append(statistics.median(runners[shape][name](args.calls)))

    peak = _core.peak_gflops()
    print(f"pynas {_core.build_info()['version']}, torch {torch.__version__ if torch else '-'}, "
          f"selected {_core.selected_kernels()['dwconv']}; {args.passes} passes x {args.calls} calls; "
          f"input offset from 64 B: {args.offset}; "
          f"_core.dwconv Python call overhead (1x1x1 input): {python_overhead_us():.2f} us")
    hdr = (f"{'shape':20} {'runtime':22} {'median ms':>9} {'best ms':>8} {'GFLOP/s':>8} {'%peak':>6} "
           f"{'vs torch_cl':>11} {'vs target':>9}")
    print(hdr)
    print("-" * len(hdr))
    for shape in SHAPES:
        name_s, h, w, c, k, s, target = shape
        flops = 2 * k * k * c * out_size(h, k, s) * out_size(w, k, s)
        ref = samples.get((shape, "torch channels_last"))
        ref_ms = statistics.median(ref) * 1e3 if ref else None
        for name in runners[shape]:
            vals = samples[(shape, name)]
            ms = statistics.median(vals) * 1e3
            gf = flops / (ms * 1e-3) / 1e9
            vs_cl = f"{ref_ms / ms:10.2f}x" if ref_ms else "-"
            vs_t = f"{target / ms:8.2f}x" if target else "-"
            print(f"{name_s:20} {name:22} {ms:9.4f} {min(vals) * 1e3:8.4f} {gf:8.1f} {gf / peak * 100:5.1f}% "
                  f"{vs_cl:>11} {vs_t:>9}")
    print("median ms: median over passes of each pass's median call; best ms: the fastest pass's median; "
          f"GFLOP/s and %peak from the median (2*k*k*C*OH*OW flops, this core's measured FMA peak "
          f"{peak:.0f} GFLOP/s); "
          "vs torch_cl / vs target: "
          "torch channels_last median / this median, target ms / this median (> 1: faster)")


if __name__ == "__main__":
    main()
