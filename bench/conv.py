"""Per-op timing of the native conv / SE / pool / FC kernels against PyTorch, side by side.

Every runnable variant of each op and torch (eager NCHW and channels_last, one thread) run in one
process, interleaved: each pass runs every runner on the op in a rotated order, each call on the next
of several buffer sets (inputs, weights, so no runner times a cache-hot single buffer), and the table
reports the median over all passes. Run it pinned, with glibc keeping freed memory (no page faults
from fresh mmaps on either side):

  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
    PYTHONPATH=$PWD taskset -c 1 python3 -P bench/conv.py [--passes 9] [--ops stem,se960] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from pynas import _core

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is optional: then only the native variants are timed
    torch = None

ROTATE = 4           # buffer sets per runner
TARGET_S = 0.02      # time per runner per pass


def _variants(op):
    return [v["name"] for v in _core.kernel_variants() if v["op"] == op and v["runnable"]]


def _nchw(x, channels_last):
    t = torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def conv_op(name, h, cin, cout, k, stride, act):
    rng = np.random.default_rng(0)
    pad = k // 2
    oh = (h + 2 * pad - k) // stride + 1
    flops = 2.0 * oh * oh * cout * cin * k * k
    sets = []
    for _ in range(ROTATE):
        x = rng.standard_normal((h, h, cin)).astype(np.float32)
        w = (rng.standard_normal((cout, k, k, cin)) / np.sqrt(k * k * cin)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        sets.append((x, w, b))
    runners = {}
    for v in _variants("conv"):
        packed = [(x, _core.conv_pack(w), b) for x, w, b in sets]
        runners[v] = (lambda p, v=v: lambda i: _core.conv2d(p[i][0], p[i][1], p[i][2], stride, act, None, v))(packed)
    if torch is not None:
        tact = {"re": F.relu, "hs": F.hardswish, "none": lambda t: t}[act]
        for label, cl in (("torch", False), ("torch_cl", True)):
            ts = []
            for x, w, b in sets:
                wt = torch.from_numpy(w).permute(0, 3, 1, 2).contiguous()
                if cl:
                    wt = wt.contiguous(memory_format=torch.channels_last)
                ts.append((_nchw(x, cl), wt, torch.from_numpy(b)))
            runners[label] = (lambda ts: lambda i: tact(F.conv2d(ts[i][0], ts[i][1], ts[i][2], stride, pad)))(ts)
    nbytes = 4 * (h * h * cin + oh * oh * cout + cout * k * k * cin)
    return name, f"{h}x{h}x{cin}->{oh}x{oh}x{cout} k{k} s{stride} {act}", flops, nbytes, runners


def se_op(name, c, hw, r):
    rng = np.random.default_rng(1)
    flops = 2.0 * hw * hw * c + 4.0 * c * r  # pool + scale, two FCs
    sets = []
    for _ in range(ROTATE):
        sets.append((rng.standard_normal((hw, hw, c)).astype(np.float32),
                     (rng.standard_normal((r, c)) / np.sqrt(c)).astype(np.float32), rng.standard_normal(r).astype(np.float32),
                     (rng.standard_normal((c, r)) / np.sqrt(r)).astype(np.float32), rng.standard_normal(c).astype(np.float32)))
    runners = {}
    for v in _variants("se"):
        packed = [(x, _core.fc_pack(wr), br, _core.fc_pack(we), be) for x, wr, br, we, be in sets]
        runners[v] = (lambda p, v=v: lambda i: _core.squeeze_excite(*p[i], "re", "sigmoid", variant=v))(packed)
    if torch is not None:
        for label, cl in (("torch", False), ("torch_cl", True)):
            ts = [(_nchw(x, cl),) + tuple(torch.from_numpy(a) for a in rest) for x, *rest in sets]

            def run(i, ts=ts):
                x, wr, br, we, be = ts[i]
                s = F.relu(F.linear(x.mean((2, 3)), wr, br))
                return x * torch.sigmoid(F.linear(s, we, be))[:, :, None, None]
            runners[label] = run
    nbytes = 4 * (2 * hw * hw * c + 2 * c * r)
    return name, f"SE {c}x{hw}x{hw} reduce {r}, relu, sigmoid", flops, nbytes, runners


def gap_op(name, c, hw):
    rng = np.random.default_rng(2)
    sets = [rng.standard_normal((hw, hw, c)).astype(np.float32) for _ in range(ROTATE)]
    runners = {v: (lambda v=v: lambda i: _core.global_avg_pool(sets[i], v))() for v in _variants("gap")}
    if torch is not None:
        for label, cl in (("torch", False), ("torch_cl", True)):
            ts = [_nchw(x, cl) for x in sets]
            runners[label] = (lambda ts: lambda i: F.adaptive_avg_pool2d(ts[i], 1))(ts)
    return name, f"GAP {c}x{hw}x{hw}", float(hw * hw * c), 4 * hw * hw * c, runners


def fc_op(name, cin, cout):
    rng = np.random.default_rng(3)
    sets = [(rng.standard_normal(cin).astype(np.float32), (rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32),
             rng.standard_normal(cout).astype(np.float32)) for _ in range(ROTATE)]
    runners = {}
    for v in _variants("fc"):
        packed = [(x, _core.fc_pack(w), b) for x, w, b in sets]
        runners[v] = (lambda p, v=v: lambda i: _core.fully_connected(*p[i], "none", v))(packed)
    if torch is not None:
        ts = [tuple(torch.from_numpy(a) for a in s) for s in sets]
        runners["torch"] = lambda i: F.linear(ts[i][0][None], ts[i][1], ts[i][2])
    return name, f"FC {cin}->{cout}", 2.0 * cin * cout, 4 * cin * cout, runners


OPS = {
    "stem": lambda: conv_op("stem", 224, 3, 32, 3, 2, "hs"),
    "cn3": lambda: conv_op("cn3", 56, 24, 24, 3, 1, "re"),
    "cn5": lambda: conv_op("cn5", 28, 40, 80, 5, 2, "re"),
    "se112": lambda: se_op("se112", 112, 14, 28),
    "se960": lambda: se_op("se960", 960, 7, 240),
    "gap": lambda: gap_op("gap", 1280, 7),
    "fc": lambda: fc_op("fc", 1280, 1000),
}


def time_runners(runners, passes):
    names = list(runners)
    calls = {}
    for n in names:  # warm up and size the per-pass call count
        for i in range(ROTATE):
            runners[n](i)
        t = time.perf_counter()
        for i in range(ROTATE):
            runners[n](i)
        per = (time.perf_counter() - t) / ROTATE
        calls[n] = max(ROTATE, min(2000, int(TARGET_S / max(per, 1e-7))))
    samples = {n: [] for n in names}
    for p in range(passes):
        order = names[p % len(names):] + names[:p % len(names)]
        for n in order:
            fn, count = runners[n], calls[n]
            for c in range(count):
                t = time.perf_counter_ns()
                fn(c % ROTATE)
                samples[n].append(time.perf_counter_ns() - t)
    return {n: float(np.median(samples[n])) * 1e-6 for n in names}  # ms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=9)
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of " + ",".join(OPS))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(1)
    if "glibc.malloc.mmap_threshold" not in os.environ.get("GLIBC_TUNABLES", ""):
        print("note: GLIBC_TUNABLES not set (see the docstring); fresh-mmap page faults may add noise", file=sys.stderr)
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) != 1:
        print("note: not pinned to one core (taskset -c 1)", file=sys.stderr)
    results = []
    print("| op | shape | runner | median ms | GFLOP/s | GB/s | x fastest torch |")
    print("|---|---|---|---:|---:|---:|---:|")
    for key in args.ops.split(","):
        name, shape, flops, nbytes, runners = OPS[key]()
        ms = time_runners(runners, args.passes)
        torch_best = min((t for n, t in ms.items() if n.startswith("torch")), default=None)
        for n, t in ms.items():
            ratio = f"{t / torch_best:.2f}" if torch_best else "-"
            print(f"| {name} | {shape} | {n} | {t:.4f} | {flops / t / 1e6:.1f} | {nbytes / t / 1e6:.1f} | {ratio} |")
            results.append({"op": name, "shape": shape, "runner": n, "ms": t, "gflops": flops / t / 1e6,
                            "gbytes": nbytes / t / 1e6, "vs_torch": t / torch_best if torch_best else None})
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
