"""DARTS on NAS-Bench-201 with a latency loss, judged on the benchmark; against evolution at equal wall time.

    taskset -c 0 python bench/differentiable.py [--seeds 5] [--epochs 6] [--images 512] [--channels 8]
        [--resolution 16] [--quantile 0.25] [--configs plain,latency,latency+darts-minus] [--second-order]
        [--no-evolution] [--evolution-seeds 3] [--json out.json]

Every DARTS run is a real `pynas search --strategy darts` (`pynas.search.run`, its log in a
temporary folder): space nb201, latency model `nb201-pixel3` (HW-NAS-Bench's Pixel 3 latencies,
one per network, the prices of the latency term re-taken from it every epoch), T the latency at
`--quantile` of the space. The supernet trains on Fashion-MNIST, not CIFAR-10 (CIFAR is not on this
machine): a reduced skeleton (`--channels` wide, 1 cell per stage, images resized to
`--resolution`), `--images` training images for the weights and as many other training images for
the alphas, batch 64, `--epochs` epochs, alphas' Adam at 3e-3 (DARTS's 3e-4 moves them by ~0.015 in
the ~50 alpha steps of such a run: too short a search to leave its initial noise). The loop's
evaluator is the benchmark's 12-epoch CIFAR-10 validation table (logged only: DARTS does not learn
from it). The derived cell is DARTS's last epoch's (not best.txt's, which picks among the epochs'
cells by the evaluator's accuracy), looked up in the benchmark: its CIFAR-10 test accuracy after
200 epochs, its Pixel 3 latency, the best test accuracy of any cell at or under that latency
("best@lat") and the gap ("regret"), its skip edges.

Configs: `plain` (DARTS, no latency term), `latency` (lambda 0.05, the absolute form |E/T - 1|,
target T), `additive` (lambda 0.1 (E/T - 1): the issue's form), `latency-no-none` (the latency term
with `none` left out of the search, DARTS's own rule: with it in, the latency term disconnects
the cell, whose per-network price then no longer changes with its other edges), and
`latency+darts-minus` (plus DARTS-'s decaying auxiliary skip); `--second-order` adds second-order
DARTS with the latency term. Evolution at equal wall time (the mean wall time of the `latency`
runs, per seed): `pynas search --strategy evolution` with reward absolute at T, stopped by the wall
clock (started once the evaluator is built: NASWOT's calibration on 32 cells is a one-off cost per
space, left out), (a) with the NASWOT zero-cost proxy (no training, no benchmark accuracy) and (b) with the
benchmark's 12-epoch CIFAR-10 validation accuracies (the earlier issue's search: it reads what
NAS-Bench-201 paid thousands of GPU-hours for, so an upper bound, not a peer). Its pick is its best
under T by its own signal. Timings are on a shared core: noisy.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pynas import search  # noqa: E402
from pynas.space import get_space  # noqa: E402
from pynas.space.nb201 import benchmark  # noqa: E402

DEVICE, BUNDLE = "pixel3", "nb201-pixel3"
CONFIGS = {
    "plain": dict(latency_weight=0.0),
    "latency": dict(latency_weight=0.05),
    "latency+darts-minus": dict(latency_weight=0.05, remedy="darts-minus"),
    "latency+2nd-order": dict(latency_weight=0.05, order=2),
    "additive": dict(latency_weight=0.1, latency_form="additive"),
    "latency-no-none": dict(latency_weight=0.05, exclude_none=True),
    "latency-no-none+darts-minus": dict(latency_weight=0.05, exclude_none=True, remedy="darts-minus"),
}


class WallTime(Exception):
    """The evolution run's wall-clock budget is spent."""


def truth():
    b = benchmark()
    return b, b.accuracy("cifar10", 200), b.latency(DEVICE)


def judged(tokens, space, columns) -> dict:
    _, acc, lat = columns
    i = int(space.index_of(np.array([tokens]))[0])
    under = lat <= lat[i]
    best = float(np.nanmax(acc[under]))
    return {"cell": str(space.decode(tokens)), "accuracy": float(acc[i]), "latency_ms": float(lat[i]),
            "best_at_latency": best, "regret": best - float(acc[i]), "skips": sum(t == 1 for t in tokens)}


def run_darts(config: str, seed: int, target: float, args, columns, space) -> dict:
    options = dict(dataset="fashion-mnist", epochs=args.epochs, train_images=args.images, val_images=args.images,
                   eval_images=1000, channels=args.channels, resolution=args.resolution, arch_lr=3e-3,
                   **CONFIGS[config])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = search.run("nb201", BUNDLE, target, "nb201:cifar10", 10_000, Path(folder) / "run", strategy="darts",
                         seed=seed, strategy_options=options)
        wall = time.perf_counter() - start
        from pynas import __version__
        from pynas.search.log import SearchLog

        with SearchLog.open(run.folder, __version__) as log:
            history = log.load_state()[1].values["history"]
    final = history[-1]
    row = {"method": f"darts {config}", "seed": seed, "wall_s": wall, **judged(final["tokens"], space, columns),
           "supernet_accuracy": final["supernet_accuracy"], "expected_ms": final["expected_ms"],
           "skips_per_epoch": [h["skips"] for h in history]}
    return row


def run_evolution(evaluator: str, label: str, seed: int, target: float, seconds: float, columns, space) -> dict:
    configured = search.configure("nb201", BUNDLE, target, evaluator, 15_625, strategy="evolution", seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()  # after the evaluator is built (NASWOT's calibration: a one-off per space)

        def clock(log, done):
            if time.perf_counter() - start > seconds:
                raise WallTime

        out = Path(folder) / "run"
        try:
            search.start(configured, out, progress=clock)
        except WallTime:
            pass
        from pynas import __version__
        from pynas.search.log import SearchLog
        from pynas.search.report import summarise

        with SearchLog.open(out, __version__) as log:
            summary, evaluated = summarise(log), log.evaluated()
    best = summary["best"] or summary["best_reward"]
    tokens = space.encode(best["arch"])
    return {"method": label, "seed": seed, "wall_s": time.perf_counter() - start, "evaluated": evaluated,
            **judged(tokens, space, columns)}


def table(rows: list[dict]) -> str:
    lines = [f"{'method':<34} {'seeds':>5} {'acc':>6} {'lat ms':>7} {'best@lat':>8} {'regret':>7} {'skips':>5} "
             f"{'wall s':>7}  cells (skip edges per seed)"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
        lines.append(f"{method:<34} {len(rs):>5} {mean('accuracy'):6.2f} {mean('latency_ms'):7.2f} "
                     f"{mean('best_at_latency'):8.2f} {mean('regret'):7.2f} {mean('skips'):5.1f} {mean('wall_s'):7.0f}  "
                     f"{' '.join(str(r['skips']) for r in rs)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--quantile", type=float, default=0.25)
    parser.add_argument("--configs", default="plain,latency,latency+darts-minus")
    parser.add_argument("--second-order", action="store_true")
    parser.add_argument("--no-evolution", action="store_true")
    parser.add_argument("--evolution-seeds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    configs = args.configs.split(",") + (["latency+2nd-order"] if args.second_order else [])
    for config in configs:
        if config not in CONFIGS:
            parser.error(f"--configs: expected names among {', '.join(CONFIGS)}, got {config!r}")
    import torch

    torch.set_num_threads(1)
    space = get_space("nb201")
    columns = truth()
    target = float(np.quantile(columns[2], args.quantile))
    print(f"T = {target:.3f} ms ({args.quantile:g} quantile of {DEVICE}); best CIFAR-10 test accuracy under T: "
          f"{np.nanmax(columns[1][columns[2] <= target]):.2f}", flush=True)
    rows = []
    for config in configs:
        for seed in range(args.seeds):
            rows.append(run_darts(config, seed, target, args, columns, space))
            r = rows[-1]
            print(f"  darts {config} seed {seed}: {r['cell']} acc {r['accuracy']:.2f} lat {r['latency_ms']:.2f} ms "
                  f"(best@lat {r['best_at_latency']:.2f}), skips per epoch {r['skips_per_epoch']}, supernet "
                  f"{r['supernet_accuracy']:.1f}% on Fashion-MNIST, {r['wall_s']:.0f} s", flush=True)
    if not args.no_evolution:
        reference = [r["wall_s"] for r in rows if r["method"] == "darts latency"] or [r["wall_s"] for r in rows]
        seconds = float(np.mean(reference))
        for evaluator, label in (("zero-cost:naswot", "evolution naswot (equal wall)"),
                                 ("nb201:cifar10", "evolution nb201 12-ep table (equal wall)")):
            for seed in range(args.evolution_seeds):
                rows.append(run_evolution(evaluator, label, seed, target, seconds, columns, space))
                r = rows[-1]
                print(f"  {label} seed {seed}: {r['cell']} acc {r['accuracy']:.2f} lat {r['latency_ms']:.2f} ms, "
                      f"{r['evaluated']} evaluated in {r['wall_s']:.0f} s", flush=True)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"target_ms": target, "args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
