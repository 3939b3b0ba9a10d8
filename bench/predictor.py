"""Latency predictor benchmark: accuracy on held-out networks, few-shot calibration vs k, throughput.

    python bench/predictor.py [--cpu 1] [--measure 100] [--sections accuracy,fewshot,throughput,newdevice]
    python bench/predictor.py --sections cells --cells predictors/NAME [--measure 50 --cpu 1]   # nb201 here

Sections (each prints a table):

* accuracy: for each shipped bundle of this machine class (`pynas predictors`: kind xgboost with
  the measurements it was trained on), the held-out whole-network accuracy recomputed from those
  measurements (network term cross-validated: every network predicted by a term fitted without
  it; segments priced by the final model and, stricter, by a model that never saw 20% of the
  segments). With `--measure N` (on the machine the bundle was made on) also N networks sampled
  now with another seed, timed end to end with the bundle's backend and compared with its
  predictions: data the bundle has never seen.
* fewshot: a bundle calibrated to another device from k = 5, 10, 20 networks
  (`pynas.predictor.fewshot`), held-out accuracy (median over 30 draws of the k networks; p90 of
  RMSPE): HW-NAS-Bench phones on the FBNet space (the "measured" network is the per-block table
  sum, as HW-NAS-Bench defines it), and this machine's native bundle calibrated to LiteRT (real
  end-to-end measurements).
* throughput: architectures per second on one core: the compiled C++ table (int32/int64 token
  rows), the vectorised XGBoost path (`Predictor.batched`: distinct cells priced by the model at
  query time) at several batch sizes, the XGBoost path on Arch lists, and the plain-Python dict
  path (decode, lower, sum from a dict, as Once-for-All's table does) that the targets compare to.
  Best of several runs, thread CPU time (a shared machine does not inflate it) and wall time.
* cells (only when asked, with --cells BUNDLE): NAS-Bench-201 on this machine (`section_cells`):
  the nb201 bundle's held-out whole networks, its fitted ones, a least-squares baseline, and with
  --measure N cells it never saw, timed now.
* newdevice (only when asked: it profiles for ~10 minutes): a new device from nothing with the
  native backend on one core, profile (every segment of the space + networks) and calibrate, timed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from pynas import ui
from pynas.predictor import bundle, fewshot
from pynas.predictor.metrics import accuracy

THIS_MACHINE = ("x86-avx512-native", "x86-avx512-litert")
FEWSHOT_KS = (5, 10, 20)


def best(fn, runs: int) -> tuple[float, float]:
    """Best (wall, CPU) seconds of `runs` calls."""
    wall = cpu = float("inf")
    for _ in range(runs):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        cpu = min(cpu, time.thread_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return wall, cpu


def load_shipped(name: str):
    try:
        return bundle.load(name)
    except bundle.BundleError as error:
        print(f"  {name}: not available ({error})")
        return None


def row(name, n, r) -> list:
    return [name, n, f"{r['rmspe']:.2f}", f"{r['within5']:.1f}", f"{r['within10']:.1f}", f"{r['spearman']:.4f}"]


def section_accuracy(args) -> None:
    from pynas.predictor.train import train

    print("\n## Accuracy on held-out whole networks (MnasNet space, 224, one thread)\n")
    rows = []
    for name in THIS_MACHINE:
        p = load_shipped(name)
        if p is None:
            continue
        data = p.training_data()
        if data is None:
            print(f"  {name}: no {bundle.MEASUREMENTS} in the bundle")
            continue
        report = train(data, params={"rounds": args.rounds} if args.rounds else None).report
        networks = f"{report['heldout_networks']['n']} networks"
        rows += [row(f"{name} ({len(data.segments)} segments measured)", f"{report['heldout_segments']['n']} segments",
                     report["heldout_segments"]),
                 row("  scale,weights,overhead", networks, report["heldout_networks"]),
                 row("  same, segment model w/o 20%", networks, report["heldout_networks_segment_holdout_model"]),
                 row("  bare segment sum", networks, report["heldout_networks_bare_sum"])]
        if args.measure:
            fresh = measure_fresh(p, args)
            if fresh is not None:
                rows.append(row("  fresh networks, timed now", f"{fresh['n']} networks", fresh))
    if rows:
        print(ui.table(["bundle", "held out", "RMSPE %", "within 5 %", "within 10 %", "Spearman"], rows,
                           {2, 3, 4, 5}))
        print("\ntargets: >= 99% of networks within 10%, RMSPE < 4% (nn-Meter: 99.0% on a mobile CPU)")


def measure_fresh(p, args):
    from pynas.profiling.backends import Backend, unavailable
    from pynas.space import get_space
    from pynas.store import this_device

    here = this_device().device_id
    if p.manifest.device.get("device_id") != here:
        print(f"  {p.name}: made on device {p.manifest.device.get('device_id')}, this is {here}: not timed here")
        return None
    if unavailable(p.manifest.backend):
        print(f"  {p.name}: backend {p.manifest.backend} unavailable here: {unavailable(p.manifest.backend)}")
        return None
    backend = Backend(p.manifest.backend, threads=p.manifest.threads)
    space = get_space("mnasnet")
    archs = space.sample(args.measure, seed=12345)
    harness = {"budget_seconds": 2.0, "target_rel_ci": 0.01}
    if args.cpu is not None:
        harness["pin_cpu"] = args.cpu
    measured = []
    for i, arch in enumerate(archs):
        measured.append(backend.network(arch).measure(**harness)["median_ms"])
        print(f"\r  timing {p.name}: {i + 1}/{len(archs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return accuracy(p.predict_batch(archs), measured)


def section_fewshot(args) -> None:
    from pynas.predictor import hwnasbench
    from pynas.space import get_space

    print(f"\n## Few-shot calibration to another device: held-out accuracy vs k (median of {args.draws} draws)\n")
    cases = []
    space = get_space("fbnet")
    archs = space.sample(300, seed=1)
    for base_name, target in (("pixel3", "raspi4"), ("pixel3", "edgegpu"), ("raspi4", "pixel3")):
        base = load_shipped(base_name)
        if base is not None:
            cases.append((f"{base_name} -> {target} (FBNet, HW-NAS-Bench)", base, archs,
                          [hwnasbench.table_latency(a, target) for a in archs]))
    native, litert = load_shipped(THIS_MACHINE[0]), load_shipped(THIS_MACHINE[1])
    if native is not None and litert is not None:
        data = litert.training_data()
        if data is not None:
            from pynas.presets import resolve

            names = sorted(data.networks)
            cases.append(("x86 native -> LiteRT (MnasNet, measured)", native, [resolve(a) for a in names],
                          [data.networks[a] for a in names]))
    rows = []
    for label, base, case_archs, measured in cases:
        result = fewshot.evaluate(base, case_archs, measured, ks=FEWSHOT_KS, draws=args.draws)
        for method in fewshot.METHODS:
            for k in (FEWSHOT_KS if method != "base" else FEWSHOT_KS[:1]):
                r = result[method][k]
                rows.append([label, method, "-" if method == "base" else k, r["heldout"], f"{r['rmspe']:.2f}",
                             f"{r['rmspe_p90']:.2f}", f"{r['within10']:.1f}", f"{r['spearman']:.4f}"])
            label = ""
    if rows:
        print(ui.table(["base -> target", "method", "k", "held out", "RMSPE %", "p90 RMSPE %", "within 10 %",
                            "Spearman"], rows, {2, 3, 4, 5, 6, 7}))
        print("\nbase: the base bundle as is; scale: one factor; groups: a factor per op type (ridge towards the "
              "one factor, strength by leave-one-out) + per-network and per-kernel costs")


def section_throughput(args) -> None:
    from pynas.ir import lower
    from pynas.ir.segments import segments
    from pynas.predictor.table import python_predict

    print("\n## Throughput: architectures per second, one thread (MnasNet space, 224)\n")
    p = load_shipped(THIS_MACHINE[0])
    if p is None or p.table is None:
        print("  needs the shipped x86-avx512-native bundle (with its compiled table)")
        return
    space = p.table.space
    rows64 = space.sample_tokens(args.rows, seed=0)
    rows32 = rows64.astype(np.int32)
    tokens = space.sample_tokens(args.archs, seed=1)
    archs = [space.decode(t) for t in tokens]
    key_latency = dict(p.table.prices)
    overhead = p.table.overhead_ms
    # The paths agree before their speeds are compared.
    table_ms = p.table.predict_batch(tokens)
    dict_ms = python_predict(space, key_latency, tokens, overhead_ms=overhead)
    batched = p.batched(space)
    xgb_ms = batched.predict_batch(tokens)
    assert np.max(np.abs(table_ms - dict_ms) / dict_ms) < 1e-5
    assert np.max(np.abs(xgb_ms - dict_ms) / dict_ms) < 1e-4
    seg_keys = [[s.key for s in segments(lower(a))] for a in archs[:500]]
    results = [
        ("compiled table (C++), int32 tokens", args.rows, best(lambda: p.table.predict_batch(rows32), args.runs)),
        ("compiled table (C++), int64 tokens", args.rows, best(lambda: p.table.predict_batch(rows64), args.runs)),
    ]
    for n in (1_000, 10_000, 100_000):
        chunk = rows64[:n]
        results.append((f"XGBoost batched (numpy walk), batch {n:,}", n, best(lambda: batched.predict_batch(chunk),
                                                                               args.runs)))
    results.append(("XGBoost on Arch list (lower each)", 200, best(lambda: p.predict_batch(archs[:200]), 2)))
    results.append(("python dict path (decode+lower+sum)", args.archs,
                    best(lambda: python_predict(space, key_latency, tokens, overhead_ms=overhead), 2)))
    results.append(("python dict sum, segment keys known", 500,
                    best(lambda: [overhead + sum(key_latency[k] for k in keys) for keys in seg_keys], args.runs)))
    reference = args.archs / results[-2][2][1]
    out = [[name, f"{n:,}", f"{n / cpu:,.0f}", f"{n / wall:,.0f}", f"{n / cpu / reference:,.1f}x"]
           for name, n, (wall, cpu) in results]
    print(ui.table(["path", "archs", "archs/s (CPU)", "archs/s (wall)", "vs dict path"], out, {1, 2, 3, 4}))
    print("\ntargets: compiled table >= 10M archs/s and >= 1000x the dict path; XGBoost batched >= 200k archs/s")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def section_newdevice(args) -> None:
    """Profiling + calibration of a new device from nothing, native backend, one core: what
    `pynas profile --backend native` and `pynas calibrate --space mnasnet` do, timed."""
    import tempfile

    from pynas.predictor import bundle as bundles
    from pynas.predictor.train import load_dataset, train
    from pynas.profiling.backends import Backend
    from pynas.profiling.session import plan, run
    from pynas.space import get_space
    from pynas.store import Store

    print(f"\n## A new device: profile the MnasNet space with native on one core, then calibrate "
          f"({args.networks} networks)\n")
    space = get_space("mnasnet")
    harness = {}  # pynas profile's defaults per kind (pynas.profiling.steady)
    if args.cpu is not None:
        harness["pin_cpu"] = args.cpu
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        work = plan(space, networks=args.networks, seed=7)
        t_plan = time.monotonic() - t0
        with Store(Path(tmp) / "new.sqlite") as store:
            report = run(work, Backend("native"), store, harness=harness, repeat=30)
            t_profile = time.monotonic() - t0 - t_plan
            data = load_dataset(store, backend="native")
        t1 = time.monotonic()
        trained = train(data)
        bundles.save(Path(tmp) / "bundle", trained, data, space=space)
        t_calibrate = time.monotonic() - t1
    total = time.monotonic() - t0
    r = trained.report["heldout_networks"]
    rows = [["plan", f"{t_plan / 60:.1f}", f"{len(work.items)} items"],
            ["profile", f"{t_profile / 60:.1f}",
             f"{report.measured} measured; extreme states: {report.repaired} timed again, {report.slow_spells} "
             f"left flagged; state p90 {np.percentile(report.states, 90):.2f}; repeatability (networks) median "
             f"{100 * report.repeatability.get('networks', {}).get('median', float('nan')):.1f}%"],
            ["calibrate (train + compile table + save)", f"{t_calibrate / 60:.1f}",
             f"{len(data.segments)} segments, {len(data.networks)} networks"],
            ["total", f"{total / 60:.1f}", f"held-out networks: RMSPE {r['rmspe']:.2f}%, within 10% "
                                           f"{r['within10']:.1f}% (n={r['n']})"]]
    print(ui.table(["phase", "minutes", ""], rows, {1}))
    print("\ntarget: profiling + calibration of a new device with native on one core <= 15 min")


def section_cells(args) -> None:
    """NAS-Bench-201 on this machine (`pynas.predictor.cellnet`): the bundle's lookup against the
    networks it holds out (measured, never fitted on; re-read from the measurements it ships), the
    networks it was fitted on, and a least-squares additive model of the same features fitted on the
    same networks (what a per-edge price table reaches); with --measure N also N cells it never saw,
    timed now as `pynas verify` times them (ratios to the profiling reference, 3 passes)."""
    from pynas.predictor import cellnet
    from pynas.space import get_space
    from pynas.store import Store, import_jsonl

    print("\n## NAS-Bench-201 on this machine: whole networks held out (one thread)\n")
    if not args.cells:
        print("  no bundle: --cells BUNDLE (made by `pynas calibrate STORE --space nb201 -o BUNDLE`)")
        return
    import tempfile

    p, space = bundle.load(args.cells), get_space("nb201")
    report = p.manifest.extra["report"]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
        import_jsonl(store, p.folder / bundle.MEASUREMENTS)
        data = cellnet.load_cells(store, space, backend=p.manifest.backend, threads=p.manifest.threads)
    held = set(report["heldout_keys"])
    test = np.array([k in held for k in data.keys])
    predicted = p.predict_batch(data.tokens)
    form = report.get("form", "cells")  # the features of the bundle's model form
    x = cellnet.features(space, data.tokens, form)
    design = np.hstack([x, np.ones((len(x), 1))]) / data.ms[~test].mean()
    w = 1 / data.ms[~test]  # relative error, as RMSPE scores it
    coef, *_ = np.linalg.lstsq(design[~test] * w[:, None], data.ms[~test] * w, rcond=None)
    rows = [row(f"{p.name}: lookup (linear x XGBoost, form {form})", f"{int(test.sum())} held out", accuracy(predicted[test], data.ms[test])),
            row("  same, networks fitted on", f"{int((~test).sum())} fitted", accuracy(predicted[~test], data.ms[~test])),
            row("  least squares on the features", f"{int(test.sum())} held out",
                accuracy(np.maximum(design[test] @ coef, 1e-3), data.ms[test]))]
    if args.measure:
        from pynas.verify.measure import verify

        seen = {tuple(t) for t in data.tokens}
        fresh = [t for t in space.sample_tokens(4 * args.measure, seed=12345) if tuple(t) not in seen]
        fresh = [space.decode(t) for t in dict.fromkeys(map(tuple, fresh))][:args.measure]
        harness = {} if args.cpu is None else {"pin_cpu": args.cpu}
        results = verify([str(c) for c in fresh], p, passes=3, harness=harness)
        rows.append(row("  cells never seen, timed now", f"{len(results)} networks",
                        accuracy([v.predicted_ms for v in results], [v.measured_ms for v in results])))
    print(ui.table(["bundle", "networks", "RMSPE %", "within 5 %", "within 10 %", "Spearman"], rows, {2, 3, 4, 5}))
    print(f"\nmeasured {len(data.keys)} networks ({report['measured_ms']['min']:.2f}..{report['measured_ms']['max']:.2f} ms"
          f"); targets: >= 99% of networks within 10%, RMSPE < 4% (as the MnasNet bundles)")


SECTIONS = {"accuracy": section_accuracy, "fewshot": section_fewshot, "throughput": section_throughput,
            "newdevice": section_newdevice, "cells": section_cells}
DEFAULT_SECTIONS = ("accuracy", "fewshot", "throughput")  # newdevice profiles for ~10 min: ask for it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated, of {', '.join(SECTIONS)} (default {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--networks", type=int, default=120, help="newdevice: networks to measure")
    parser.add_argument("--cpu", type=int, help="pin to this core")
    parser.add_argument("--measure", type=int, default=0, help="also time N fresh networks per bundle (its device only)")
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, help="XGBoost rounds when retraining for the accuracy section")
    parser.add_argument("--cells", metavar="BUNDLE", help="cells: an nb201 bundle of this machine (pynas calibrate "
                                                          "--space nb201)")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    for name in args.sections.split(","):
        if name not in SECTIONS:
            parser.error(f"--sections: expected names from {', '.join(SECTIONS)}, got {name!r}")
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
