"""Profiling benchmark: repeatability across processes, and the time to profile a space.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \\
        taskset -c 1 python bench/profiling.py [--backends native,litert] [--ops 50]

For each backend: the same `--ops` segments of the MnasNet space (seeded sample spread over the
kinds by the shuffled plan) are measured in one process, then again in a
second, fresh process (its own imports, allocations, converted-model cache already warm), both
with pynas's harness as `pynas profile` runs it. The table gives the relative difference of the two
processes' times per op (|b - a| / a), split at 50 us, and how long one item took in the first
process (build + conversion with a cold cache + timing), extrapolated to the whole space's plan.
Both processes measure as `pynas profile` does (`steady.RatioTimer`: each item timed as a ratio to
the stem, interleaved, with `steady.SEGMENT_HARNESS`): "raw" compares the items' own medians,
"ratio" their ratios to the reference (what a profile's latencies are made of).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from pynas import ui



def _items(ops: int, seed: int):
    from pynas.profiling.session import plan
    from pynas.space import get_space

    p = plan(get_space("mnasnet"), seed=seed)
    return p, [i for i in p.items if i.kind != "network"][:ops]


def child(backend: str, ops: int, seed: int, threads: int, pin: int | None) -> None:
    """Measure the items, print one JSON line per item (key, raw median, ratio, seconds)."""
    from pynas.profiling.backends import Backend
    from pynas.profiling.steady import SEGMENT_HARNESS, RatioTimer, Reference

    b = Backend(backend, threads=threads)
    _, items = _items(ops, seed)
    # As `pynas profile` times: CPU time with one thread (pynas.profiling.session.run).
    harness = dict(SEGMENT_HARNESS, cpu_time=threads == 1, **({} if pin is None else {"pin_cpu": pin}))
    # As `pynas profile` measures: each item a ratio to the plan's first item, the stem.
    stem = items[0]
    timer = RatioTimer({"segment": Reference(stem.key, b.segment(stem.arch, stem.segment, stem.key))})
    timer.calibrate({"segment": harness})
    for item in items:
        t0 = time.perf_counter()
        stats, record = timer.measure(b.segment(item.arch, item.segment, item.key), "segment", harness)
        print(json.dumps({"key": item.key, "kind": item.kind, "median_ms": record["raw_median_ms"],
                          "ratio": record["ratio"], "state": record["state"], "ci_rel": record["ratio_ci_rel"],
                          "seconds": time.perf_counter() - t0}), flush=True)


def _run_child(backend: str, args, cache: str) -> list[dict]:
    env = dict(os.environ, PYNAS_CACHE=cache)
    cmd = [sys.executable, "-P", os.path.abspath(__file__), "--child", backend, "--ops", str(args.ops),
           "--seed", str(args.seed), "--threads", str(args.threads)] + (
        [] if args.pin is None else ["--pin", str(args.pin)])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{100 * statistics.median(values):.2f}% / {100 * max(values):.2f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="native,litert,onnxruntime,torch")
    parser.add_argument("--ops", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pin", type=int, help="pin timing to this core")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.ops, args.seed, args.threads, args.pin)
        return 0
    from pynas.profiling.backends import unavailable

    plan_, _ = _items(args.ops, args.seed)
    full = len(plan_.items)
    print(f"{args.ops} segments of the MnasNet space at 224, {args.threads} thread(s), each backend measured in two "
          f"processes; the space has {full} distinct segments")
    header = ["backend", "ops >=50us", "raw |diff| median/max", "ratio", "ops <50us", "raw |diff| median/max",
              "ratio", "s per item (cold)", "all segments, est."]
    rows = []
    for backend in args.backends.split(","):
        reason = unavailable(backend)
        if reason:
            rows.append([backend, f"unavailable: {reason}"] + [""] * 7)
            continue
        with tempfile.TemporaryDirectory() as cache:  # first process converts from scratch
            first = _run_child(backend, args, cache)
            second = _run_child(backend, args, cache)
        b = {r["key"]: r for r in second}
        big, small, big_ref, small_ref = [], [], [], []
        for r in first:
            other = b[r["key"]]
            diff = abs(other["median_ms"] - r["median_ms"]) / r["median_ms"]
            ratio_a, ratio_b = r["ratio"], other["ratio"]
            (big if r["median_ms"] >= 0.05 else small).append(diff)
            (big_ref if r["median_ms"] >= 0.05 else small_ref).append(abs(ratio_b - ratio_a) / ratio_a)
        per_item = statistics.mean(r["seconds"] for r in first)
        rows.append([backend, str(len(big)), _fmt(big), _fmt(big_ref), str(len(small)), _fmt(small), _fmt(small_ref),
                     f"{per_item:.2f}", f"{per_item * full / 60:.0f} min"])
    print(ui.table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
