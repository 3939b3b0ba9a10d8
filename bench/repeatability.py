"""Repeatability of whole-network timings between passes: the same networks timed in passes
minutes apart, two methods interleaved in time (A pass, B pass, A pass, B pass) so a slow spell
hits both.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \\
        python bench/repeatability.py --networks 60 --pin 1 \\
            --old "cd /tmp && python3 -P -m pynas.cli" --new "PYTHONPATH=$PWD python3 -P -m pynas.cli" --out /tmp/rep

Each method is a `pynas profile` command line prefix (e.g. an installed, older pynas for "old");
each pass is `profile --backend native --segments 1 --networks N --neighbours 0 --again --session
passK` (plus --new-extra for the second: --repeat 0) into the method's own store (OUT/old.sqlite, OUT/new.sqlite), run pinned
(`taskset -c PIN`). The figure per method: over the networks timed in both passes, the relative
difference |b - a| / a of their latencies (median and p90): for stores of raw timings the stored
median, for ratio-timed ones the ratio (what training uses, on the series' one scale). Also
prints the wall time of each pass.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def pass_command(prefix: str, db: str, session: str, networks: int, pin: int, extra: str) -> str:
    flags = (f"profile --backend native --pin {pin} --segments 1 --networks {networks} --neighbours 0 --again "
             f"--session {session} --db {db} {extra}")
    return f"{prefix} {flags}"


def latencies(db: str, session: str) -> dict[str, float]:
    """Network key -> its latency in that pass: the ratio where ratio-timed, else the median."""
    from pynas.store import Store

    out = {}
    with Store(db) as store:
        for m in store.measurements(session=session, kind="network"):
            if m.harness.get("repeat") or m.harness.get("retimed"):
                continue  # the pass's own timing of each network, not its re-timings
            out[m.op.key] = m.harness["ratio"] if m.harness.get("timing") == "ratio" else m.stats.median_ms
    return out


def repeatability(db: str) -> dict:
    a, b = latencies(db, "pass1"), latencies(db, "pass2")
    diffs = [abs(b[k] - a[k]) / a[k] for k in a if k in b]
    return {"n": len(diffs), "median": float(np.median(diffs)) if diffs else float("nan"),
            "p90": float(np.percentile(diffs, 90)) if diffs else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=60)
    parser.add_argument("--pin", type=int, default=1)
    parser.add_argument("--old", required=True, help="command prefix running the first method's pynas CLI")
    parser.add_argument("--new", required=True, help="command prefix running the second method's pynas CLI")
    parser.add_argument("--new-extra", default="--repeat 0", help="flags only the second method gets")
    parser.add_argument("--out", required=True, help="folder for the stores and logs")
    parser.add_argument("--analyse-only", action="store_true", help="only read the stores of an earlier run")
    args = parser.parse_args()
    if args.networks < 2:
        parser.error(f"--networks: expected an integer >= 2, got {args.networks}")
    os.makedirs(args.out, exist_ok=True)
    # Without this process's PYTHONPATH: each prefix says which pynas it runs (an installed one, or
    # a source tree with its own PYTHONPATH=...), never this one's by inheritance.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GLIBC_TUNABLES"] = TUNABLES
    methods = {"old": args.old, "new": args.new}
    walls: dict[str, list[float]] = {m: [] for m in methods}
    if not args.analyse_only:
        for k in (1, 2):
            for method, prefix in methods.items():
                db = os.path.abspath(os.path.join(args.out, f"{method}.sqlite"))
                log = os.path.join(args.out, f"{method}-pass{k}.log")
                cmd = pass_command(f"taskset -c {args.pin} sh -c '{prefix} \"$@\"' _", db, f"pass{k}",
                                   args.networks, args.pin, args.new_extra if method == "new" else "")
                t0 = time.monotonic()
                with open(log, "w") as f:
                    done = subprocess.run(cmd, shell=True, env=env, stdout=f, stderr=subprocess.STDOUT)
                walls[method].append(time.monotonic() - t0)
                print(f"{method} pass {k}: {walls[method][-1]:.0f} s (exit {done.returncode}, log {log})", flush=True)
                if done.returncode != 0:
                    return 1
    for method in methods:
        r = repeatability(os.path.join(args.out, f"{method}.sqlite"))
        wall = " + ".join(f"{w:.0f}" for w in walls[method])
        print(f"{method}: {r['n']} networks timed in both passes, relative difference median {100 * r['median']:.1f}%, "
              f"p90 {100 * r['p90']:.1f}%" + (f"; passes took {wall} s" if wall else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
