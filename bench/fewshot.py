"""Few-shot calibration benchmark: several bases at once (`pynas.predictor.multibase`) against the
single-base methods of `pynas.predictor.fewshot`.

    python3 bench/fewshot.py [--draws 30] [--heldout 2000]
        [--ks 5,10,20] [--seed 0] [--sections fbnet,litert] [--loo] [--native DIR --litert DIR]

Sections (each prints a table; all draws seeded, the same draws for every method):

* fbnet: leave-one-device-out on HW-NAS-Bench's FBNet tables (ImageNet setting): each of the five
  devices (pixel3, raspi4, edgegpu measured; eyeriss, fpga simulated) is the target, calibrated
  from k = 5, 10, 20 networks priced by its table, with the other four as bases. The k networks
  are drawn `--draws` times from a pool sampled uniformly from the space; accuracy on `--heldout`
  other networks sampled uniformly (disjoint from the pool). Methods: ``scale`` and ``groups``
  (`fewshot.fit`, the current single-base methods) with each single base; ``multibase`` (the four
  device bases and the analytic ones: kernels, MACs, bytes; Bayesian model averaging by
  evidence), ``multibase, devices+kernels`` (no MACs/bytes bases), with ``--loo`` also
  ``multibase, select=loo`` (the one model of lowest leave-one-out error instead of the
  average); ``oracle``: the best
  non-negative linear fit on all held-out networks with the features of the method's levels
  (total, op group, position per base; per-op kernel costs): what no calibration with those
  features can beat (needs scipy; per-cell weights, the finest level, would fit any table
  exactly, so they are left out of it).
* litert: pynas's native kernels -> LiteRT on one x86 CPU (MnasNet space): base = the native
  bundle's compiled table (never the LiteRT bundle's own model), target = the LiteRT bundle's
  measured networks (``measurements.jsonl.gz``), k drawn from them, the rest held out; the oracle
  also 5-fold cross-validated (160 networks for ~100 features: in-sample it interpolates).

Columns: held-out n, share within 10 %, RMSPE %, Spearman's rho: medians over the draws, rho's
10th and 90th percentiles in brackets. A summary checks the target (rho >= 0.93 at k = 10 on every
device) and that multibase is never worse than the best single-base ``groups`` (picked in
hindsight, per device and k). It also reports, over every multibase fit, the smallest cell price
and the smallest network of the whole space (exact, `multibase.min_network`). Defaults run in
~3 CPU minutes (~5 wall minutes on a shared 2-core machine); the LiteRT section needs the shipped
x86 bundles with their measurements (default: the repository's predictors/).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pynas import ui
from pynas.predictor import fewshot, hwnasbench
from pynas.predictor import multibase as mb
from pynas.predictor.features import segment_group
from pynas.predictor.metrics import accuracy

DEVICES = ("pixel3", "raspi4", "edgegpu", "eyeriss", "fpga")
MAIN = Path(__file__).resolve().parent.parent / "predictors"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(scores: list[dict]) -> dict:
    rho = np.array([s["spearman"] for s in scores])
    return {"n": scores[0]["n"], "within10": float(np.median([s["within10"] for s in scores])),
            "rmspe": float(np.median([s["rmspe"] for s in scores])), "rho": float(np.median(rho)),
            "p10": float(np.percentile(rho, 10)), "p90": float(np.percentile(rho, 90))}


def row(device, method, k, s) -> list:
    return [device, method, k, s["n"], f"{s['within10']:.1f}", f"{s['rmspe']:.2f}",
            f"{s['rho']:.4f} [{s['p10']:.3f}..{s['p90']:.3f}]"]


HEADER = ["target", "method", "k", "held out", "within 10 %", "RMSPE %", "Spearman median [p10..p90]"]


def old_breakdown(cells: mb.Cells, table, reads) -> fewshot.Breakdown:
    """fewshot.breakdown of a table base, from the cells: per op-type group (fewshot.segment_group)
    the ms of the cells each network reads, kernels = cells with a segment. Checked against
    fewshot.breakdown itself on a few networks (`check_breakdown`)."""
    groups = old_groups(cells)
    names = sorted(set(groups))
    part = np.array([names.index(g) for g in groups])
    matrix = cells.part_sums(reads, cells.prices_of(table), part, len(names))
    counts = cells.sums(reads, (np.array(groups) != fewshot.IDENTITY).astype(float))
    return fewshot.Breakdown(names, matrix, np.full(len(matrix), table.overhead_ms), counts)


_OLD_GROUPS: dict = {}


def old_groups(cells: mb.Cells) -> list[str]:
    if id(cells) not in _OLD_GROUPS:
        from pynas.space.catalogue import segment_by_id

        spec = cells.space.table_layout()
        by_index = {}
        last, segs = None, {}
        for cell in spec.cells:
            if cell.arch is not last:
                last, segs = cell.arch, segment_by_id(cell.arch)
            seg = segs.get(cell.segment) if cell.segment else None
            group = fewshot.IDENTITY if seg is None else segment_group(seg.kind, seg.features())
            index = ("stem", -1, -1, -1) if cell.table == "constant" else (
                cell.table, -1 if cell.block is None else cell.block, -1 if cell.state is None else cell.state,
                -1 if cell.chunk is None else cell.chunk)
            by_index[index] = group
        _OLD_GROUPS[id(cells)] = [by_index[(t, b, s, c)] for t, b, s, c in
                                  zip(cells.table, cells.block, cells.state, cells.chunk)]
    return _OLD_GROUPS[id(cells)]


def check_breakdown(cells, table, space, tokens) -> None:
    from types import SimpleNamespace

    fast = old_breakdown(cells, table, cells.reads(tokens))
    slow = fewshot.breakdown(SimpleNamespace(table=table, model=None), [space.decode(t) for t in tokens])
    cols = [fast.groups.index(g) for g in slow.groups]
    assert np.allclose(fast.matrix[:, cols], slow.matrix, rtol=1e-5, atol=1e-6), "breakdown mismatch"
    assert np.allclose(fast.matrix.sum(1), slow.matrix.sum(1), rtol=1e-5), "breakdown totals mismatch"
    assert np.array_equal(fast.counts, slow.counts), "kernel counts mismatch"


def oracle(cells, bases, reads, y, folds: int = 0) -> dict | None:
    """Best non-negative fit on all of (reads, y) with the method's features but per cell: per
    base its total, op-group and position part sums (the kernels base: total and op), and a
    constant, least squares on relative error (scipy's NNLS). With `folds`, each network is
    predicted by a fit without its fold instead (cross-validated)."""
    try:
        from scipy.optimize import nnls
    except ImportError:
        return None
    cols = []
    for b in bases:
        for level in (("total", "op") if b.name == "kernels" else ("total", "op", "pos")):
            part, names = cells.parts(level)
            cols.append(cells.part_sums(reads, b.prices, part, len(names)))
    X = np.hstack(cols + [np.ones((len(y), 1))])
    X = X / np.maximum(np.abs(X).max(0), 1e-12)
    pred = np.empty(len(y))
    order = np.random.default_rng(0).permutation(len(y))
    for f in range(max(folds, 1)):
        test = order[f::folds] if folds else order
        train = np.setdiff1d(order, test) if folds else order
        coef, _ = nnls(X[train] / y[train, None], np.ones(len(train)), maxiter=50 * X.shape[1])
        pred[test] = X[test] @ coef
    s = accuracy(pred, y)
    return {"n": s["n"], "within10": s["within10"], "rmspe": s["rmspe"], "rho": s["spearman"], "p10": s["spearman"],
            "p90": s["spearman"]}


def multibase_methods(device_bases, analytic, loo: bool):
    kernels = [b for b in analytic if b.name == "kernels"]
    methods = {"multibase": (device_bases + analytic, "bma"),
               "multibase, devices+kernels": (device_bases + kernels, "bma")}
    if loo:
        methods["multibase, select=loo"] = (device_bases + analytic, "loo")
    return methods


def run_fbnet(args, rows, checks) -> None:
    from pynas.space import get_space

    space = get_space("fbnet")
    cells = mb.space_cells(space)
    log("fbnet: compiling the five devices' tables")
    tables = {d: hwnasbench.compile_device_table(d, latency_model=False) for d in DEVICES}
    bases = {d: mb.table_base(d, cells, tables[d]) for d in DEVICES}
    analytic = mb.analytic_bases(cells)
    held = np.unique(space.sample_tokens(args.heldout, seed=args.seed), axis=0)
    pool = space.sample_tokens(args.pool, seed=args.seed + 1)
    seen = {tuple(t) for t in held}
    pool = np.array([t for t in pool if tuple(t) not in seen])  # disjoint from the held-out set
    check_breakdown(cells, tables["pixel3"], space, pool[:20])
    r_held, r_pool = cells.reads(held), cells.reads(pool)
    views = {d: (old_breakdown(cells, tables[d], r_pool), old_breakdown(cells, tables[d], r_held)) for d in DEVICES}
    for target in DEVICES:
        t0 = time.time()
        y_held, y_pool = cells.sums(r_held, bases[target].prices), cells.sums(r_pool, bases[target].prices)
        others = [d for d in DEVICES if d != target]
        methods = multibase_methods([bases[d] for d in others], analytic, args.loo)
        results: dict[str, dict[int, dict]] = {}
        for k in args.ks:
            rng = np.random.default_rng([args.seed, DEVICES.index(target), k])
            scores: dict[str, list] = {}
            for _ in range(args.draws):
                chosen = rng.choice(len(pool), k, replace=False)
                for d in others:
                    calib, test = views[d]
                    for method in ("scale", "groups"):
                        cal = fewshot.fit(calib.take(chosen), y_pool[chosen], method)
                        scores.setdefault(f"{method} ({d})", []).append(accuracy(cal.apply(test), y_held))
                for name, (bs, select) in methods.items():
                    f = mb.fit(cells, bs, pool[chosen], y_pool[chosen], select=select)
                    checks["fits"] += 1
                    checks["min_cell"] = min(checks["min_cell"], float(f.prices.min()))
                    checks["min_network"] = min(checks["min_network"], f.info["min_network_ms"])
                    scores.setdefault(name, []).append(accuracy(f.predict(held), y_held))
            for name, s in scores.items():
                results.setdefault(name, {})[k] = summary(s)
        order = [f"scale ({d})" for d in others] + [f"groups ({d})" for d in others] + list(methods)
        for name in order:
            for k in args.ks:
                rows.append(row(target, name, k, results[name][k]))
        o = oracle(cells, [bases[d] for d in others] + analytic, r_held, y_held)
        if o is not None:
            rows.append(row(target, "oracle (all held-out, same features)", "all", o))
        rows.append([""] * len(HEADER))
        checks["fbnet"][target] = results
        log(f"fbnet: {target} done in {time.time() - t0:.0f} s")


def run_litert(args, rows, checks) -> None:
    from pynas.predictor import bundle
    from pynas.presets import resolve
    from pynas.space import get_space

    try:
        native, litert = bundle.load(args.native), bundle.load(args.litert)
    except bundle.BundleError as error:
        log(f"litert: bundles not available ({error})")
        return
    data = litert.training_data()
    if data is None or native.table is None:
        log("litert: the LiteRT bundle ships no measurements, or the native one no table")
        return
    space = get_space("mnasnet")
    cells = mb.space_cells(space)
    names = sorted(data.networks)
    archs = [resolve(a) for a in names]
    tokens = np.array([space.encode(a) for a in archs])
    y = np.array([data.networks[a][1] for a in names])
    base = mb.table_base("native", cells, native.table)
    analytic = mb.analytic_bases(cells)
    reads = cells.reads(tokens)
    view = fewshot.breakdown(native, archs)  # the XGBoost base, per segment, as `pynas fewshot` sees it
    label = "native -> LiteRT"
    methods = {"multibase (native + analytic)": ([base] + analytic, "bma"),
               "multibase (native + kernels)": ([base, analytic[0]], "bma")}
    if args.loo:
        methods["multibase (native + analytic), select=loo"] = ([base] + analytic, "loo")
    results: dict[str, dict] = {}
    for k in args.ks:
        rng = np.random.default_rng([args.seed, 99, k])
        scores: dict[str, list] = {}
        for _ in range(args.draws):
            chosen = rng.choice(len(y), k, replace=False)
            rest = np.setdiff1d(np.arange(len(y)), chosen)
            for method in fewshot.METHODS:
                cal = fewshot.fit(view.take(chosen), y[chosen], method)
                scores.setdefault(f"{method} (native)", []).append(accuracy(cal.apply(view.take(rest)), y[rest]))
            for name, (bs, select) in methods.items():
                f = mb.fit(cells, bs, tokens[chosen], y[chosen], select=select)
                checks["fits"] += 1
                checks["min_cell"] = min(checks["min_cell"], float(f.prices.min()))
                checks["min_network"] = min(checks["min_network"], f.info["min_network_ms"])
                scores.setdefault(name, []).append(accuracy(f.predict(tokens[rest]), y[rest]))
        for name, s in scores.items():
            results.setdefault(name, {})[k] = summary(s)
    for name in results:
        for k in (args.ks[:1] if name.startswith("base") else args.ks):
            rows.append(row(label, name, "-" if name.startswith("base") else k, results[name][k]))
    o = oracle(cells, [base] + analytic, reads, y)
    if o is not None:
        rows.append(row(label, "oracle (all networks, same features)", "all", o))
        rows.append(row(label, "same, 5-fold cross-validated", "128", oracle(cells, [base] + analytic, reads, y, 5)))
    checks["litert"] = results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--heldout", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=1000, help="networks the k calibration ones are drawn from")
    parser.add_argument("--ks", default="5,10,20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sections", default="fbnet,litert")
    parser.add_argument("--loo", action="store_true", help="also multibase with select='loo'")
    parser.add_argument("--native", default=str(MAIN / "x86-avx512-native"))
    parser.add_argument("--litert", default=str(MAIN / "x86-avx512-litert"))
    args = parser.parse_args()
    args.ks = [int(k) for k in args.ks.split(",")]
    sections = args.sections.split(",")
    rows: list = []
    checks = {"fits": 0, "min_cell": np.inf, "min_network": np.inf, "fbnet": {}}
    t0 = time.time()
    if "fbnet" in sections:
        run_fbnet(args, rows, checks)
    if "litert" in sections:
        run_litert(args, rows, checks)
    print(f"\n## Few-shot calibration, held-out accuracy (median of {args.draws} draws of the k networks; "
          f"seed {args.seed})\n")
    print(ui.table(HEADER, rows, {2, 3, 4, 5}))
    if checks["fbnet"]:
        print("\n## Target: Spearman >= 0.93 at k = 10 on every device; never worse than the best single base\n")
        srows = []
        for target, res in checks["fbnet"].items():
            for k in args.ks:
                singles = {n: r[k]["rho"] for n, r in res.items() if n.startswith("groups")}
                best = max(singles, key=singles.get)
                ours = res["multibase"][k]["rho"]
                diff = ours - singles[best]
                srows.append([target, k, f"{ours:.4f}", f"{best[8:-1]} {singles[best]:.4f}", f"{diff:+.4f}",
                              "better" if diff >= 0.001 else "same (within 0.001)" if diff > -0.001 else "WORSE",
                              ("yes" if ours >= 0.93 else "NO") if k == 10 else ""])
        print(ui.table(["target", "k", "multibase rho", "best groups (base) rho", "difference", "verdict",
                            "rho >= 0.93"], srows, {1, 2, 4}))
    print(f"\nmultibase fits: {checks['fits']}, smallest cell price {checks['min_cell']:.4g} ms, smallest network "
          f"of the space (exact, per fit) {checks['min_network']:.4g} ms; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
