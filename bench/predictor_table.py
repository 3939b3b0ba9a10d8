"""Latency table benchmark: architectures per second on one core, compiled table vs Python dict path.

    python bench/predictor_table.py [--rows 1000000] [--archs 2000] [--cpu 1]

Compiles the MnasNet table (224, synthetic latencies: a hash of each segment key, so no device is
needed; the table's speed does not depend on the values), then times

* the compiled table (`CompiledTable.predict_batch`, C++, one thread) on `--rows` random token
  rows, int64 (what `sample_tokens` gives) and int32;
* the plain-Python dict path (`python_predict`: decode, lower, segments, sum from a dict, as
  Once-for-All's table does) on `--archs` architectures;
* the least a Python loop can do: summing already-known segment keys from the dict.

Each is the best of several runs. "CPU" columns use the thread's CPU time, which a shared machine
does not inflate with other processes' turns on the core; "wall" is elapsed time. Ratios are to
the dict path's CPU rate. `--cpu` pins the process to one core (sched_setaffinity).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np

from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.predictor.table import compile_table, python_predict
from pynas.space import get_space

OVERHEAD_MS = 0.3


def hash_ms(key: str) -> float:
    return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2 ** 32 * 3


def best(fn, runs: int) -> tuple[float, float]:
    """Best (wall, CPU) seconds of `runs` calls."""
    wall = cpu = float("inf")
    for _ in range(runs):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        cpu = min(cpu, time.thread_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--archs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cpu", type=int, help="pin to this core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    space = get_space("mnasnet")
    t0 = time.perf_counter()
    table = compile_table(space, hash_ms, overhead_ms=OVERHEAD_MS)
    compile_s = time.perf_counter() - t0
    print(f"compiled {table.layout.space}: {len(table.prices)} distinct segments priced in {compile_s:.1f} s; "
          f"tables {sum(a.nbytes for a in (*table.first, *table.rest, table.head)) / 1024:.0f} KiB")

    rows64 = space.sample_tokens(args.rows, seed=0)
    rows32 = rows64.astype(np.int32)
    tokens = space.sample_tokens(args.archs, seed=1)
    archs = [space.decode(row) for row in tokens]
    key_latency = dict(table.prices)
    expected = python_predict(space, key_latency, tokens, overhead_ms=OVERHEAD_MS)
    got = table.predict_batch(tokens)
    error = float(np.max(np.abs(got - expected) / expected))
    assert error < 1e-6, error  # the two paths agree before their speeds are compared

    seg_keys = [[s.key for s in segments(lower(a))] for a in archs]

    def dict_sum_only():
        return [OVERHEAD_MS + sum(key_latency[k] for k in keys) for keys in seg_keys]

    results = [  # name, archs per call, (wall, cpu)
        ("compiled table, int64 tokens", args.rows, best(lambda: table.predict_batch(rows64), args.runs)),
        ("compiled table, int32 tokens", args.rows, best(lambda: table.predict_batch(rows32), args.runs)),
        ("python dict path (decode+lower+sum)", args.archs,
         best(lambda: python_predict(space, key_latency, tokens, overhead_ms=OVERHEAD_MS), max(1, args.runs // 3))),
        ("python dict sum, keys known", args.archs, best(dict_sum_only, args.runs)),
    ]
    reference = results[2][1] / results[2][2][1]
    print(f"\nMnasNet-224 latency prediction, one thread; max |table - dict| / dict = {error:.1e}\n")
    print(f"{'path':<38}{'archs':>10}{'archs/s (CPU)':>16}{'archs/s (wall)':>16}{'vs dict path':>14}")
    for name, n, (wall, cpu) in results:
        print(f"{name:<38}{n:>10,}{n / cpu:>16,.0f}{n / wall:>16,.0f}{n / cpu / reference:>13,.0f}x")
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} CPUs (wall rates drop when other processes share the core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
