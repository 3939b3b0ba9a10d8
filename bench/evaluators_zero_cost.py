"""Zero-cost proxies on NAS-Bench-201: Spearman rho with the 200-epoch test accuracy, and their cost.

    nice taskset -c 0 python bench/evaluators_zero_cost.py [--archs 1000] [--seed 0] [--data random,fmnist]
        [--batch 64] [--timed 20] [--json scores.json] [--shard I/N]
    python bench/evaluators_zero_cost.py --merge part0.json part1.json     # the table of all shards

`--shard I/N` scores every N-th cell of the sample from the I-th (one process per core), writing its
--json as it goes (every 25 cells: a stopped shard restarts where it was); `--merge` reads the
shards' files and prints the table over the whole sample.

A fixed seeded sample of --archs cells (uniform over the 15,625); each built with
`pynas.train.nb201.build_nb201` (PyTorch default init, seeded per cell) and scored by every proxy of
`pynas.train.proxies` on one batch: ``random`` (Gaussian inputs, uniform labels) and ``fmnist``
(CIFAR-like data from Fashion-MNIST: 28x28 grey resized to 32x32, three equal channels, normalised by
the training set's mean and std; the real labels; as `--evaluator-option data=fashion-mnist`). synflow, params and flops do not depend on the
data. Spearman rho against the benchmark's cifar10, cifar100 and imagenet16 test accuracy after 200
epochs; a proxy's non-finite scores (a cell whose input never reaches its output) rank last, and
their number is reported. Seconds per architecture per proxy: each proxy alone on the first
--timed cells (the rest share one forward per batch: `score_all`). One thread; on a shared machine
the seconds are inflated by contention.

Published (Abdelfattah et al. 2021, all of NB201, CIFAR-10 = the `cifar10-valid` runs' validation
accuracy, the table's "cifar10-valid" column; real CIFAR-10 batches of 64):
synflow 0.74, jacob_cov 0.73, snip 0.58, grad_norm 0.58; NASWOT (Mellor et al. v2) about 0.8.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PUBLISHED = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.58, "grad_norm": 0.58, "naswot": 0.80}
DATA_FREE = ("synflow", "params", "flops")  # scored once, whatever the batch
DATASETS = ("cifar10", "cifar100", "imagenet16")
# The published CIFAR-10 figures correlate with the `cifar10-valid` runs (trained on half the
# training set, Abdelfattah et al.'s nasbench2_pred.py: api.get_more_info(i, 'cifar10-valid')), a
# column pynas does not ship; read from the benchmark's CSV where it is at hand (--nb201-csv).
NB201_CSV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nb201" / "nb201.csv"


def cifar10_valid_accuracy(csv_path: Path) -> np.ndarray | None:
    """The 200-epoch `cifar10_valid_acc` column by benchmark index (None: no such file)."""
    if not csv_path.is_file():
        return None
    import csv

    with csv_path.open() as f:
        rows = {int(r["arch_index"]): float(r["cifar10_valid_acc"]) for r in csv.DictReader(f)}
    return np.array([rows[i] for i in range(len(rows))])


def fmnist_batch(batch: int, seed: int):
    """(x, y): `batch` seeded Fashion-MNIST training images as the zero-cost evaluator's
    `data=fashion-mnist` option makes them (normalised, 28 -> 32 bilinear, three equal channels)."""
    from pynas.search.evaluators.zero_cost import dataset_batch
    from pynas.space.nb201 import NB201Space

    return dataset_batch("fashion-mnist", NB201Space(), batch, seed)


def random_batch(batch: int, seed: int, num_classes: int = 10):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, num_classes, (batch,), generator=g)


def spearman(scores: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ranked = np.where(np.isfinite(scores), scores, -np.inf)  # no signal ranks last
    return float(spearmanr(ranked, truth).statistic)


def score_cells(args) -> dict:
    """{'indices', 'seconds': {proxy: s/arch}, 'scores': {data: {proxy: [...]}}} for the sample."""
    import torch

    from pynas.space.nb201 import NB201Space
    from pynas.train.nb201 import build_nb201
    from pynas.train.proxies import PROXIES, score_all

    torch.set_num_threads(1)
    space = NB201Space()
    tokens = space.sample_tokens(args.archs, seed=args.seed)
    part, parts = args.shard
    mine = list(range(part, len(tokens), parts))
    batches = {"random": random_batch(args.batch, args.seed)}
    if "fmnist" in args.data:
        batches["fmnist"] = fmnist_batch(args.batch, args.seed)
    batches = {k: v for k, v in batches.items() if k in args.data}
    names = list(PROXIES)
    scores = {d: {p: [] for p in names} for d in batches}
    spent = {p: 0.0 for p in names}
    done: list[int] = []
    if args.json and Path(args.json).is_file():  # a stopped shard: continue after what it saved
        saved = json.loads(Path(args.json).read_text())
        if saved.get("config") == _config(args):
            scores, spent, done = saved["scores"], saved["spent"], saved["positions"]
    start = time.perf_counter()
    for i in mine:
        if i in done:
            continue
        row = tokens[i]
        torch.manual_seed(args.seed * 100_003 + i)
        model = build_nb201(space.decode(row))
        free = {}
        for d, (x, y) in batches.items():
            if len(done) < args.timed:  # each proxy alone: its own cost
                got = {}
                for p in names:
                    if p in free:
                        got[p] = free[p]
                        continue
                    t = time.perf_counter()
                    got[p] = PROXIES[p](model, x, y)
                    spent[p] += time.perf_counter() - t
            else:
                got = free | score_all(model, x, y, [p for p in names if p not in free])
            free = {p: got[p] for p in DATA_FREE}
            for p in names:
                scores[d][p].append(float(got[p]))
        done.append(i)
        if len(done) % 25 == 0:
            _save(args, space, tokens, done, scores, spent)
            if args.progress:
                print(f"  {len(done)}/{len(mine)} cells, {time.perf_counter() - start:.0f} s", file=sys.stderr,
                      flush=True)
    return _save(args, space, tokens, done, scores, spent)


def _config(args) -> dict:
    return {"archs": args.archs, "seed": args.seed, "batch": args.batch, "data": list(args.data),
            "shard": list(args.shard), "timed": args.timed}


def _save(args, space, tokens, done, scores, spent) -> dict:
    timed = min(args.timed, len(done))
    # Data-free proxies ran once per cell, the others once per batch kind.
    seconds = {p: spent[p] / max(timed * (1 if p in DATA_FREE else len(scores)), 1) for p in spent}
    result = {"config": _config(args), "positions": done, "indices": space.index_of(tokens[done]).tolist(),
              "seconds": seconds, "spent": spent, "timed": timed, "scores": scores}
    if args.json:
        Path(args.json).write_text(json.dumps(result))
    return result


def merge(paths: list[str]) -> dict:
    """The shards' results as one (seconds: weighted by the cells each timed)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    scores = {d: {p: sum((part["scores"][d][p] for part in parts), []) for p in parts[0]["scores"][d]}
              for d in parts[0]["scores"]}
    timed = sum(part["timed"] for part in parts)
    seconds = {p: sum(part["seconds"][p] * part["timed"] for part in parts) / max(timed, 1) for p in parts[0]["seconds"]}
    return {"indices": sum((part["indices"] for part in parts), []), "seconds": seconds, "scores": scores}


def run(args) -> list[dict]:
    """One row per (data, proxy): rho with each dataset's 200-epoch test accuracy."""
    from pynas.space.nb201 import benchmark

    result = merge(args.merge) if args.merge else score_cells(args)
    data = benchmark()
    index = np.array(result["indices"])
    valid = cifar10_valid_accuracy(Path(args.nb201_csv))
    if valid is not None and not np.allclose(valid[index] > 0, True):
        raise SystemExit(f"{args.nb201_csv}: expected cifar10_valid_acc for every benchmark index")
    rows = []
    for d, by_proxy in result["scores"].items():
        for p, values in by_proxy.items():
            values = np.array(values, dtype=np.float64)
            row = {"section": "evaluators_zero_cost", "data": d, "proxy": p, "archs": len(values),
                   "nonfinite": int((~np.isfinite(values)).sum()), "s_per_arch": result["seconds"][p],
                   "published_cifar10": PUBLISHED.get(p)}
            for name in DATASETS:
                row[f"rho_{name}"] = spearman(values, data.accuracy(name, 200)[index])
            row["rho_cifar10_valid"] = None if valid is None else spearman(values, valid[index])
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| data | proxy | rho cifar10 | rho cifar10-valid | rho cifar100 | rho imagenet16 | published c10 | "
             "non-finite | s/arch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = "" if r["published_cifar10"] is None else f"{r['published_cifar10']:.2f}"
        valid = "-" if r["rho_cifar10_valid"] is None else f"{r['rho_cifar10_valid']:.3f}"
        lines.append(f"| {r['data']} | {r['proxy']} | {r['rho_cifar10']:.3f} | {valid} | {r['rho_cifar100']:.3f} | "
                     f"{r['rho_imagenet16']:.3f} | {published} | {r['nonfinite']}/{r['archs']} | "
                     f"{r['s_per_arch']:.3f} |")
    return "\n".join(lines)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="random,fmnist", help="comma-separated: random, fmnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--timed", type=int, default=20, help="cells on which each proxy is timed alone")
    ap.add_argument("--json", help="write the raw scores here")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--nb201-csv", default=str(NB201_CSV),
                    help="the benchmark's CSV, for the cifar10-valid column (skipped if missing)")
    ap.add_argument("--shard", default="0/1", help="I/N: score the cells at positions I, I+N, ... of the sample")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="print the table of these shards' --json files")
    args = ap.parse_args(argv)
    try:
        part, parts = (int(v) for v in args.shard.split("/"))
        assert 0 <= part < parts
    except (ValueError, AssertionError):
        ap.error(f"--shard: expected I/N with 0 <= I < N, got {args.shard!r}")
    args.shard = (part, parts)
    args.data = [d for d in args.data.split(",") if d]
    bad = [d for d in args.data if d not in ("random", "fmnist")]
    if bad or not args.data:
        ap.error(f"--data: expected a comma-separated subset of random, fmnist, got {bad or 'nothing'}")
    if args.archs < 3 or args.batch < 2 or args.timed < 0:
        ap.error("--archs: expected >= 3, --batch >= 2, --timed >= 0")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    rows = run(args)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
