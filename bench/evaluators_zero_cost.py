"""Zero-cost proxies on NAS-Bench-201: Spearman rho with the 200-epoch test accuracy, and their cost.

    nice taskset -c 0 python bench/evaluators_zero_cost.py [--archs 1000] [--seed 0] [--data random,fmnist]
        [--batch 64] [--timed 20] [--json scores.json]

A fixed seeded sample of --archs cells (uniform over the 15,625); each built with
`pynas.train.nb201.build_nb201` (PyTorch default init, seeded per cell) and scored by every proxy of
`pynas.train.proxies` on one batch: ``random`` (Gaussian inputs, uniform labels) and ``fmnist``
(CIFAR-like data from Fashion-MNIST: 28x28 grey padded to 32x32, three equal channels, normalised by
the training set's mean and std; the real labels). synflow, params and flops do not depend on the
data. Spearman rho against the benchmark's cifar10, cifar100 and imagenet16 test accuracy after 200
epochs; a proxy's non-finite scores (a cell whose input never reaches its output) rank last, and
their number is reported. Seconds per architecture per proxy: each proxy alone on the first
--timed cells (the rest share one forward per batch: `score_all`). One thread; on a shared machine
the seconds are inflated by contention.

Published (Abdelfattah et al. 2021, all of NB201, CIFAR-10, real CIFAR-10 batches of 64):
synflow 0.74, jacob_cov 0.73, snip 0.58, grad_norm 0.58; NASWOT (Mellor et al. v2) about 0.8.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
PUBLISHED = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.58, "grad_norm": 0.58, "naswot": 0.80}
DATA_FREE = ("synflow", "params", "flops")  # scored once, whatever the batch
DATASETS = ("cifar10", "cifar100", "imagenet16")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip) as a uint8 array: magic 0x0000 08 <dims>, big-endian sizes, then the bytes."""
    raw = gzip.decompress(path.read_bytes())
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: expected an idx file of unsigned bytes (magic 0x0000 08 ..), got {raw[:4].hex()}")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, got {data.size}")
    return data.reshape(shape)


def fmnist_batch(batch: int, seed: int, folder: Path = FASHION_MNIST):
    """(x, y): `batch` seeded training images as N x 3 x 32 x 32 float32, normalised, and labels."""
    import torch

    images = read_idx(folder / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    mean, std = images.mean(), images.std()
    pick = np.random.default_rng(seed).choice(len(images), size=batch, replace=False)
    x = (np.pad(images[pick], ((0, 0), (2, 2), (2, 2))) - mean) / std  # a black border, as the digits' own
    x = np.repeat(x[:, None], 3, axis=1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels[pick])


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
    batches = {"random": random_batch(args.batch, args.seed)}
    if "fmnist" in args.data:
        batches["fmnist"] = fmnist_batch(args.batch, args.seed)
    batches = {k: v for k, v in batches.items() if k in args.data}
    names = list(PROXIES)
    scores = {d: {p: [] for p in names} for d in batches}
    spent = {p: 0.0 for p in names}
    start = time.perf_counter()
    for i, row in enumerate(tokens):
        torch.manual_seed(args.seed * 100_003 + i)
        model = build_nb201(space.decode(row))
        free = {}
        for d, (x, y) in batches.items():
            if i < args.timed:  # each proxy alone: its own cost
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
                scores[d][p].append(got[p])
        if args.progress and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(tokens)} cells, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    timed = min(args.timed, len(tokens))
    # Data-free proxies ran once per cell, the others once per batch kind.
    seconds = {p: spent[p] / max(timed * (1 if p in DATA_FREE else len(batches)), 1) for p in names}
    return {"indices": space.index_of(tokens).tolist(), "seconds": seconds, "scores": scores,
            "wall_s": time.perf_counter() - start}


def run(args) -> list[dict]:
    """One row per (data, proxy): rho with each dataset's 200-epoch test accuracy."""
    from pynas.space.nb201 import benchmark

    result = score_cells(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result))
    data = benchmark()
    index = np.array(result["indices"])
    rows = []
    for d, by_proxy in result["scores"].items():
        for p, values in by_proxy.items():
            values = np.array(values, dtype=np.float64)
            row = {"section": "evaluators_zero_cost", "data": d, "proxy": p, "archs": len(values),
                   "nonfinite": int((~np.isfinite(values)).sum()), "s_per_arch": result["seconds"][p],
                   "published_cifar10": PUBLISHED.get(p)}
            for name in DATASETS:
                row[f"rho_{name}"] = spearman(values, data.accuracy(name, 200)[index])
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| data | proxy | rho cifar10 | rho cifar100 | rho imagenet16 | published c10 | non-finite | s/arch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = "" if r["published_cifar10"] is None else f"{r['published_cifar10']:.2f}"
        lines.append(f"| {r['data']} | {r['proxy']} | {r['rho_cifar10']:.3f} | {r['rho_cifar100']:.3f} | "
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
    args = ap.parse_args(argv)
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
