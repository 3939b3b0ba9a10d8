"""Supernet diagnosis: does training on uniformly sampled paths (SPOS) move off chance, and under
which optimiser? The question behind the supernet evaluator's failure to rank (README).

    nice taskset -c 1 python bench/supernet_paths.py [--steps 150] [--paths 4] [--optimizer sgd|adam]
        [--lr 0.05] [--clip 20] [--free all|op,layers,...] [--resolution 16] [--train-images 3000]
    nice taskset -c 1 python bench/supernet_paths.py --supernet FILE   # a trained file: which paths learned

Training mode: each step draws `--paths` sub-networks, the choices named by `--free` uniform and the
rest those of the first bench architecture (`all`: SPOS), and takes one step of their summed
gradients (`pynas.train.supernet.train_step`). Every 25 steps it prints the mean loss of the last 25
steps and the training-mode accuracy (batch statistics) of the first 8 bench architectures on 256
held-out training images. Chance is loss 2.30 and accuracy 10%.

`--supernet FILE`: the largest, the smallest and 4 uniform sub-networks of a trained file, each in
training mode on training images and after extraction + BN recalibration on validation images: a
learned path scores well in both, so the two columns separate "not learned" from "scored wrong".
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from evaluators_supernet import bench_archs, bench_space

FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")  # per block, pynas.space.mnasnet


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--paths", type=int, default=4, help="sub-networks per step")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=None, help="gradient-norm clip (the trainer's CLIP_NORM)")
    p.add_argument("--free", default="all", help="'all' or the choices drawn uniformly: op,kernel,se,skip,filters,layers")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--train-images", type=int, default=3000)
    p.add_argument("--supernet", help="a trained supernet file: report its paths instead of training")
    return p


def _batches(net, x, tokens, size=128):
    import torch

    with torch.no_grad():
        return torch.cat([net(x[i:i + size], tokens) if tokens is not None else net(x[i:i + size])
                          for i in range(0, len(x), size)])


def _accuracy(logits, y) -> float:
    return 100.0 * float((logits.argmax(1) == y).float().mean())


def report_file(path: str) -> None:
    import torch

    from pynas.data import load_dataset
    from pynas.train.supernet import accuracy, images, largest_tokens, load_supernet, recalibrate, smallest_tokens

    net, meta = load_supernet(path)
    space = net.space
    data = load_dataset(meta["dataset"], seed=meta["data_seed"])
    chosen = np.sort(np.random.default_rng(0).permutation(len(data.x_train))[:512])
    x = images(data.x_train[chosen], meta["mean"], meta["std"], space.resolution)
    y = torch.from_numpy(np.asarray(data.y_train[chosen], dtype=np.int64))
    xv = images(data.x_val[:1000], meta["mean"], meta["std"], space.resolution)
    yv = torch.from_numpy(np.asarray(data.y_val[:1000], dtype=np.int64))
    rng = np.random.default_rng(5)
    paths = [("largest", largest_tokens(space)), ("smallest", smallest_tokens(space))] + [
        (f"uniform {i}", tuple(int(rng.integers(d.cardinality)) for d in space.decisions)) for i in range(4)]
    print("| sub-network | training mode, training images | recalibrated, validation images |")
    print("|---|---|---|")
    for name, tokens in paths:
        net.train()
        trained = _accuracy(_batches(net, x, tokens), y)
        sub = recalibrate(net.extract(tokens), x)
        print(f"| {name} | {trained:.1f} | {accuracy(sub, xv, yv):.1f} |", flush=True)


def train_paths(args) -> None:
    import torch

    import pynas.train.supernet as trainer
    from pynas.data import load_dataset
    from pynas.train.supernet import Supernet, images, normalisation

    space = bench_space(args.resolution)
    data = load_dataset("fashion-mnist", seed=0)
    n = args.train_images
    mean, std = normalisation(data.x_train[:n])
    x = images(data.x_train[:n], mean, std, args.resolution)
    y = torch.from_numpy(data.y_train[:n].astype(np.int64))
    x_held = images(data.x_train[n:n + 256], mean, std, args.resolution)
    y_held = torch.from_numpy(data.y_train[n:n + 256].astype(np.int64))
    archs = bench_archs(space)
    free = None if args.free == "all" else set(args.free.split(","))
    torch.manual_seed(0)
    net = Supernet(space).train()
    optimizer = (torch.optim.Adam(net.parameters(), lr=args.lr) if args.optimizer == "adam"
                 else trainer._optimizer(net, args.lr, 0.9, 3e-5))
    if args.clip is not None:
        trainer.CLIP_NORM = args.clip
    rng = np.random.default_rng(0)

    def draw():
        return tuple(int(rng.integers(d.cardinality)) if free is None or d.name.split(".", 1)[1] in free
                     else archs[0][i] for i, d in enumerate(space.decisions))

    start, losses = time.perf_counter(), []
    print("| step | mean loss (last 25) | training-mode accuracy of bench archs 0-7 | s |")
    print("|---|---|---|---|")
    for step in range(1, args.steps + 1):
        batch = torch.from_numpy(rng.choice(n, 128, replace=False))
        losses.append(trainer.train_step(net, x[batch], y[batch], optimizer, [draw() for _ in range(args.paths)]))
        if step % 25 == 0:
            accs = " ".join(f"{_accuracy(_batches(net, x_held, a), y_held):.0f}" for a in archs[:8])
            print(f"| {step} | {np.mean(losses[-25:]):.3f} | {accs} | {time.perf_counter() - start:.0f} |", flush=True)


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for flag, value in (("--steps", args.steps), ("--paths", args.paths), ("--train-images", args.train_images),
                        ("--resolution", args.resolution)):
        if value < 1:
            p.error(f"{flag}: expected an integer >= 1, got {value}")
    if not args.lr > 0 or (args.clip is not None and not args.clip > 0):
        p.error(f"--lr / --clip: expected numbers > 0, got {args.lr} / {args.clip}")
    if args.free != "all" and not set(args.free.split(",")) <= set(FIELDS):
        p.error(f"--free: expected 'all' or a comma list of {','.join(FIELDS)}, got {args.free!r}")
    import torch

    torch.set_num_threads(1)
    if args.supernet:
        report_file(args.supernet)
    else:
        train_paths(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
