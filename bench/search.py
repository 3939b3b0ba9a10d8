"""Search benchmark on NAS-Bench-201's ground truth: regret, hypervolume, where the pick lands, overhead.

    python bench/search.py [--seeds 20] [--budgets 100,200,500] [--jobs 2]
        [--devices pixel3,raspi4,eyeriss,fpga] [--datasets cifar10,cifar100,imagenet16] [--quantiles 0.25,0.5]
        [--strategies evolution,rl,random,random-feasible] [--peers optuna-nsga2,optuna-tpe] [--peer-cells targets]
        [--soft evolution] [--json results.json] [--merge part1.json ...]

Every run is a real `pynas.search.run` (its SQLite log in a temporary folder): space nb201, latency
from the `nb201-<device>` bundle, accuracy from `nb201:<dataset>` at fidelity 12 (the 12-epoch
validation accuracy: what the search sees), budget max(--budgets) evaluations; the smaller budgets
are the same run's first evaluations (no strategy here knows its budget). Scored on the 200-epoch
test accuracy (`pynas.search.groundtruth.NB201Truth`):

* regret: the best test accuracy of any architecture with latency <= T, minus that of the run's
  pick (its best by its own accuracy signal among the evaluated architectures under T);
* floor: the regret of a run that evaluated every architecture under T (the proxy is noisy);
* HV: hypervolume of the run's evaluated architectures (test accuracy, latency) over the true
  front's, reference point (latency T, the space's worst test accuracy): the share of the
  trade-off under the target that the run found;
* lat/T of the pick (median) and the share of runs whose pick is in [0.9, 1.0] x T;
* overhead per sample (strategy, reward, log) and the latency model's rows/s inside the loop.

T is the latency at the given quantile of all 15,625 architectures on the device. `random` is
uniform; `random-feasible` uniform among architectures the latency model puts under T. Peers (Optuna)
run on the cells of the issue's targets only unless --peer-cells all.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TARGET_CELLS = [("pixel3", "imagenet16", 0.25), ("fpga", "imagenet16", 0.25)]


def one_run(task: dict) -> dict:
    """Run one search and score it at every budget."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import warnings

    from pynas import search
    from pynas.search.groundtruth import NB201Truth, hypervolume
    from pynas.search.log import SearchLog
    from pynas.space import get_space

    warnings.simplefilter("ignore")
    space = get_space("nb201")
    truth = NB201Truth(task["dataset"], task["device"])
    target = float(truth.quantiles([task["quantile"]])[0])
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        start = time.perf_counter()
        run = search.run("nb201", f"nb201-{task['device']}", target, f"nb201:{task['dataset']}", max(task["budgets"]),
                         Path(tmp) / "run", strategy=task["strategy"], reward=task["reward"], seed=task["seed"])
        seconds = time.perf_counter() - start
        with SearchLog.open(Path(tmp) / "run", search.loop._version()) as log:
            rows = log.samples("WHERE cached = 0 AND status != 'pending'")
    index = space.index_of(np.array([r.tokens for r in rows], dtype=np.int64))
    proxy = np.array([np.nan if r.accuracy is None else r.accuracy for r in rows])
    latency = np.array([r.latency_ms for r in rows])
    worst = float(truth.accuracy.min())
    front = truth.pareto_front()
    true_hv = hypervolume(truth.latency_ms[front], truth.accuracy[front], target, worst)
    best = truth.best_accuracy_under(target)
    out = {**task, "target_ms": target, "seconds": seconds, "evaluated": len(rows), "asked": run.asked,
           "overhead_ms": 1000 * run.overhead_s / max(run.asked, 1),
           "latency_rows_per_s": run.latency_rows / run.latency_seconds if run.latency_seconds else float("nan"),
           "floor": best - truth.floor_under(target), "by_budget": {}}
    for budget in task["budgets"]:
        n = min(budget, len(rows))
        under = np.flatnonzero((latency[:n] <= target) & np.isfinite(proxy[:n]))
        if len(under):
            # Its best by its own signal; ties to the faster, then the earlier (as pynas.search.report).
            pick = under[np.lexsort((under, latency[under], -proxy[under]))[0]]
            regret = best - float(truth.accuracy[index[pick]])
            ratio = float(latency[pick] / target)
        else:
            regret, ratio = float("nan"), float("nan")
        hv = hypervolume(truth.latency_ms[index[:n]], truth.accuracy[index[:n]], target, worst) / true_hv
        out["by_budget"][str(budget)] = {"regret": regret, "lat_over_t": ratio, "hv": hv}
    return out


def tasks(args) -> list[dict]:
    out = []
    cells = [(d, s, q) for d in args.devices for s in args.datasets for q in args.quantiles]
    plans = [(s, "absolute") for s in args.strategies] + [(s, "soft") for s in args.soft]
    peer_cells = cells if args.peer_cells == "all" else [c for c in cells if c in TARGET_CELLS]
    plans_by_cell = {c: list(plans) for c in cells}
    for c in peer_cells:
        plans_by_cell[c] += [(p, "absolute") for p in args.peers]
    for (device, dataset, quantile), plans_here in plans_by_cell.items():
        for strategy, reward in plans_here:
            for seed in range(args.seeds):
                out.append(dict(device=device, dataset=dataset, quantile=quantile, strategy=strategy, reward=reward,
                                seed=seed, budgets=args.budgets))
    return out


def aggregate(results: list[dict], budgets: list[int]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["device"], r["dataset"], r["quantile"], r["strategy"], r["reward"]), []).append(r)
    rows = []
    for key, runs in groups.items():
        row = dict(zip(("device", "dataset", "quantile", "strategy", "reward"), key), seeds=len(runs),
                   floor=float(np.mean([r["floor"] for r in runs])),
                   overhead_ms=float(np.median([r["overhead_ms"] for r in runs])),
                   latency_rows_per_s=float(np.median([r["latency_rows_per_s"] for r in runs])),
                   seconds=float(np.median([r["seconds"] for r in runs])))
        for b in budgets:
            per = [r["by_budget"][str(b)] for r in runs]
            regrets = np.array([p["regret"] for p in per])
            ratios = np.array([p["lat_over_t"] for p in per])
            row[f"regret@{b}"] = float(np.nanmean(regrets)) if np.isfinite(regrets).any() else float("nan")
            row[f"nopick@{b}"] = int(np.isnan(regrets).sum())
            row[f"hv@{b}"] = float(np.mean([p["hv"] for p in per]))
            row[f"lat/T@{b}"] = float(np.nanmedian(ratios)) if np.isfinite(ratios).any() else float("nan")
            row[f"in_band@{b}"] = float(np.mean((ratios >= 0.9) & (ratios <= 1.0)))
            row[f"under_T@{b}"] = float(np.mean(ratios <= 1.0))
        rows.append(row)
    return rows


def print_tables(rows: list[dict], budgets: list[int]) -> None:
    from pynas import ui

    last = budgets[-1]
    header = ["device", "dataset", "T q", "strategy", "reward"] + [f"regret@{b}" for b in budgets] + \
        ["floor", f"HV@{last}", f"lat/T@{last}", f"in [0.9,1]T@{last}", f"<=T@{last}", "ms/sample", "lat Marchs/s",
         "s/run"]
    table = []
    for r in sorted(rows, key=lambda r: (r["device"], r["dataset"], r["quantile"], r["reward"], r["strategy"])):
        table.append([r["device"], r["dataset"], f"{r['quantile']:g}", r["strategy"], r["reward"]] +
                     [f"{r[f'regret@{b}']:.2f}" + (f" ({r[f'nopick@{b}']} none)" if r[f"nopick@{b}"] else "")
                      for b in budgets] +
                     [f"{r['floor']:.2f}", f"{r[f'hv@{last}']:.3f}", f"{r[f'lat/T@{last}']:.3f}",
                      f"{100 * r[f'in_band@{last}']:.0f}%", f"{100 * r[f'under_T@{last}']:.0f}%",
                      f"{r['overhead_ms']:.3f}", f"{r['latency_rows_per_s'] / 1e6:.2f}", f"{r['seconds']:.2f}"])
    print(ui.table(header, table, right=set(range(5, len(header)))))


def print_targets(rows: list[dict], budgets: list[int]) -> None:
    """The issue's targets on their cells: ratios to random-feasible, distance to the floor."""
    from pynas import ui

    by = {(r["device"], r["dataset"], r["quantile"], r["strategy"], r["reward"]): r for r in rows}
    table = []
    for device, dataset, quantile in TARGET_CELLS:
        base = by.get((device, dataset, quantile, "random-feasible", "absolute"))
        for (d, s, q, strategy, reward), r in sorted(by.items()):
            if (d, s, q) != (device, dataset, quantile):
                continue
            cells = [device, f"{dataset} q{quantile:g}", strategy, reward]
            for b in budgets:
                ratio = r[f"regret@{b}"] / base[f"regret@{b}"] if base and base[f"regret@{b}"] > 0 else float("nan")
                cells.append(f"{r[f'regret@{b}']:.2f} ({ratio:.2f}x)")
            last = budgets[-1]
            cells += [f"{r[f'regret@{last}'] - r['floor']:+.2f}", f"{r[f'hv@{last}']:.3f}",
                      f"{100 * r[f'in_band@{last}']:.0f}%", f"{r['overhead_ms']:.3f}"]
            table.append(cells)
    print(ui.table(["device", "cell", "strategy", "reward"] + [f"regret@{b} (x random-feasible)" for b in budgets] +
                   [f"@{budgets[-1]} - floor", f"HV@{budgets[-1]}", "in [0.9,1]T", "ms/sample"], table,
                   right=set(range(4, 9 + len(budgets)))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    listed = lambda text: [x for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=lambda t: sorted(int(x) for x in listed(t)), default=[100, 200, 500])
    parser.add_argument("--devices", type=listed, default=["pixel3", "raspi4", "eyeriss", "fpga"])
    parser.add_argument("--datasets", type=listed, default=["cifar10", "cifar100", "imagenet16"])
    parser.add_argument("--quantiles", type=lambda t: [float(x) for x in listed(t)], default=[0.25, 0.5])
    parser.add_argument("--strategies", type=listed, default=["evolution", "rl", "random", "random-feasible"])
    parser.add_argument("--peers", type=listed, default=["optuna-nsga2", "optuna-tpe"])
    parser.add_argument("--peer-cells", choices=("targets", "all"), default="targets")
    parser.add_argument("--soft", type=listed, default=["evolution"], help="strategies also run with MnasNet's soft reward")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument("--merge", nargs="*", default=[], metavar="JSON",
                        help="also tabulate the runs of earlier --json files (a grid run in parts)")
    args = parser.parse_args(argv)
    todo = tasks(args) if args.seeds > 0 else []
    print(f"{len(todo)} runs ({args.seeds} seeds), budgets {args.budgets}, {args.jobs} processes", file=sys.stderr)
    start = time.time()
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, result in enumerate(pool.map(one_run, todo, chunksize=4)):
            results.append(result)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{len(todo)} runs, {time.time() - start:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results) + "\n")
    for path in args.merge:
        results += json.loads(Path(path).read_text())
    rows = aggregate(results, args.budgets)
    print_tables(rows, args.budgets)
    print()
    print_targets(rows, args.budgets)
    print(f"\n{len(results)} runs in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
