"""Bench section: the `train` evaluator (proxy training on Fashion-MNIST) on 30 MnasNet architectures.

    nice taskset -c 1 python bench/evaluators_train.py [--epochs 10,1,3] [--resolution 16] [--width-mult 0.25]
        [--train-images 1024] [--val-images 1000] [--batch-size 64] [--lr 0.05] [--json OUT]

The 30 architectures are `bench_archs()` (`get_space("mnasnet").sample(30, seed=13)`, ImageNet-
shaped; the supernet comparison uses the same ones). Each is trained by the real evaluator
(`make_evaluator("train:fashion-mnist:E", ...)`, header adapted to in1 cls10 at --resolution,
widths x --width-mult, a seeded --train-images subset) once per epoch count, each run with its own
warm-up + cosine schedule; scored on a seeded --val-images of the validation split. Reported per
epoch count: accuracy min / median / max, Kendall tau against the longest run's accuracies (the
proxy's rank agreement with more training), seconds per evaluation.

The defaults are sized so that 30 x (1 + 3 + 10) epochs fit 30 minutes on one shared core: at 28 px
and x0.5 widths an epoch of 10,000 images took 35-130 s here (2 cores, 4-5 sessions), and 1,200
images at 16 px projected 56 minutes at the worst contention seen, so the section trains a seeded
1,024 images at 16 px and x0.25 widths, batch 64 (16 steps an epoch), and scores on 1,000
validation images: 19.5 minutes of training measured (22 minutes in all, load average ~4.5 on 2
cores); `--train-images 640` took 11.6 minutes. A proxy that small is noisy (the 10-epoch ranks of
the 640- and 1,024-image runs agree only to Kendall tau 0.49): its figures bound what a very cheap
proxy can do, not what proxy training can. `bench/evaluators_train-results.json` holds that run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

DATASET = "fashion-mnist"


def bench_archs():
    """The 30 architectures of the accuracy-evaluator comparisons (MnasNet space, seed 13)."""
    from pynas.space import get_space

    return get_space("mnasnet").sample(30, seed=13)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", default="10,1,3",
                   help="epoch counts, run in this order (the longest first: a cut-short run keeps the reference); "
                        "the largest is the reference of Kendall's tau")
    p.add_argument("--archs", type=int, default=30, help="the first N of bench_archs()")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--train-images", type=int, default=1024)
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64, help="64: a small subset needs steps more than big batches")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the per-architecture accuracies here")
    return p


def _epochs(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"--epochs: expected comma-separated integers >= 1, got {text!r}")
    return values


def run(args) -> list[dict]:
    """One row per epoch count (per-architecture accuracies and seconds included)."""
    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from pynas.search.evaluators import Candidate, make_evaluator
    from pynas.space import get_space

    torch.set_num_threads(1)
    epochs = _epochs(args.epochs)
    space = get_space("mnasnet")
    archs = bench_archs()[:args.archs]
    candidates = [Candidate(space.encode(a), a, str(a)) for a in archs]
    options = {"resolution": args.resolution, "width_mult": args.width_mult, "train_images": args.train_images,
               "val_images": args.val_images, "seed": args.seed, "threads": 1, "batch_size": args.batch_size,
               "lr": args.lr}
    rows = []
    for e in epochs:
        evaluator = make_evaluator(f"train:{DATASET}:{e}", space, options=options)
        print(evaluator.describe(), file=sys.stderr, flush=True)
        start = time.perf_counter()
        outcomes = []
        for i, c in enumerate(candidates):
            outcomes.extend(evaluator.evaluate([c]))
            o = outcomes[-1]
            print(f"  {e} epochs, arch {i + 1}/{len(candidates)}: "
                  f"{o.accuracy if o.ok else o.error} ({o.seconds:.1f} s)", file=sys.stderr, flush=True)
        accuracy = [o.accuracy for o in outcomes]
        good = np.array([a for a in accuracy if a is not None])
        rows.append({"section": "train", "evaluator": evaluator.name, "epochs": e, "archs": len(candidates),
                     "failed": sum(a is None for a in accuracy),
                     "acc_min": float(good.min()) if len(good) else None,
                     "acc_median": float(np.median(good)) if len(good) else None,
                     "acc_max": float(good.max()) if len(good) else None,
                     "seconds_per_eval": float(np.mean([o.seconds for o in outcomes])),
                     "wall_s": time.perf_counter() - start,
                     "accuracies": accuracy, "seconds": [o.seconds for o in outcomes],
                     "errors": [o.error for o in outcomes], "describe": evaluator.describe(),
                     "fingerprint": evaluator.fingerprint()})
        if args.json:  # after each epoch count: a cut-short run keeps what it measured
            _save(args, archs, rows)
    rows.sort(key=lambda r: r["epochs"])
    longest = rows[-1]
    for row in rows:
        pairs = [(a, b) for a, b in zip(row["accuracies"], longest["accuracies"]) if a is not None and b is not None]
        tau = kendalltau(*zip(*pairs)).statistic if len(pairs) >= 3 and row is not longest else None
        row["tau_vs_longest"] = None if tau is None else float(tau)
    if args.json:
        _save(args, archs, rows)
    return rows


def _save(args, archs, rows) -> None:
    with open(args.json, "w") as f:
        json.dump({"dataset": DATASET, "archs": [str(a) for a in archs], "options": vars(args), "rows": rows}, f,
                  indent=1)


def table(rows: list[dict]) -> str:
    longest = rows[-1]["epochs"]
    lines = [f"{'evaluator':<24} {'archs':>5} {'failed':>6} {'acc min':>8} {'median':>8} {'max':>8} "
             f"{'tau vs ' + str(longest):>10} {'s/eval':>8}"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        lines.append(f"{r['evaluator']:<24} {r['archs']:>5} {r['failed']:>6} {fmt(r['acc_min'], '.2f'):>8} "
                     f"{fmt(r['acc_median'], '.2f'):>8} {fmt(r['acc_max'], '.2f'):>8} "
                     f"{fmt(r.get('tau_vs_longest'), '.3f'):>10} {r['seconds_per_eval']:>8.1f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    rows = run(args)
    print(rows[0]["describe"].split(": ", 1)[1].split(";")[0])
    print(table(rows))


if __name__ == "__main__":
    main()
