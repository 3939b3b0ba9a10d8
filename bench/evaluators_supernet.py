"""Supernet evaluator benchmark: train a MnasNet supernet on Fashion-MNIST once, then score a fixed
sample of architectures by it (seconds each), optionally next to stand-alone training for a tau.

    nice taskset -c 1 python bench/evaluators_supernet.py [--train-images 10000] [--epochs 2]
        [--resolution 28] [--archs 30] [--supernet FILE (reuse; else trained into --out)]
        [--standalone 6 --standalone-epochs 2] [--json results.json]

The space is `get_space("mnasnet", resolution=R, num_classes=10, in_channels=1)`; the archs are
`bench_archs(space)`: `space.sample_tokens(30, seed=BENCH_SEED)`, what other sections (stand-alone
10-epoch training, zero-cost proxies) score too, so their Kendall tau can be taken against these.
Every figure is at one torch thread; times on a shared machine are inflated by its other load.

First figures (2026-12-03, `nice taskset -c 1`, a 2-core machine shared with 4 other sessions: times
inflated 2-4x): 8,000 images, 2 epochs, batch 128 = 126 sandwich steps in 1,635 s (8-18 s/step);
the largest's loss 2.3 -> 0.8. Largest and smallest sub-networks (the two trained every step): 74.4%
and 75.8% on 1,000 validation images after recalibration (73.4 / 75.9 with batch statistics, so the
recalibration is right). The 30 `bench_archs`: 5.8..14.3% (chance), 1.0..19.8 s per evaluation
(median 3.4 s, 2,000 validation + 500 calibration images). A uniform sub-network mixes candidates
(conv ops, kernel 3 in inverted residuals, widths) that 2 random samples per step train ~60 times
in 126 steps: far too few. Stand-alone, 2 epochs on the same 8,000 images, archs 0-5: 80.2, 74.5,
76.5, 71.8, 81.1, 80.4% (38-180 s each): the supernet's numbers do not rank them (tau meaningless).
Needed: many more steps (OFA: hundreds of epochs), or OFA's progressive shrinking.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

BENCH_SEED = 13  # the same 30 architectures as bench/evaluators_train.py's bench_archs() (its seed)
BENCH_ARCHS = 30


def bench_space(resolution: int = 28):
    from pynas.space import get_space

    return get_space("mnasnet", resolution=resolution, num_classes=10, in_channels=1)


def bench_archs(space, n: int = BENCH_ARCHS, seed: int = BENCH_SEED) -> list[tuple[int, ...]]:
    """The benchmark's architectures: `n` uniform token vectors of `space` (seeded)."""
    return [tuple(int(v) for v in t) for t in space.sample_tokens(n, seed=seed)]


def standalone_accuracy(arch, data, mean, std, train_images: int, epochs: int, seed: int,
                        batch_size: int = 128, lr: float = 0.05) -> tuple[float, float]:
    """Top-1 (percent) on the validation split of `build_torch(arch)` trained alone (SGD, cosine,
    the supernet's first `train_images`), and its training seconds."""
    import torch
    import torch.nn.functional as F

    from pynas.torch_builder import build_torch
    from pynas.train.supernet import accuracy, images

    rng = np.random.default_rng(seed)
    subset = np.sort(rng.permutation(len(data.x_train))[:train_images])
    x, y = images(data.x_train[subset], mean, std, arch.resolution), torch.from_numpy(data.y_train[subset])
    torch.manual_seed(seed)
    net = build_torch(arch).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
    steps = math.ceil(len(x) / batch_size) * epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), batch_size):
            batch = order[i:i + batch_size]
            opt.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    net.eval()
    x_val = images(data.x_val, mean, std, arch.resolution)
    return accuracy(net, x_val, torch.from_numpy(data.y_val)), seconds


def run(args) -> list[dict]:
    import torch

    from pynas.data import load_dataset
    from pynas.ir import lower
    from pynas.search.evaluators import Candidate
    from pynas.search.evaluators.supernet import SupernetEvaluator
    from pynas.train.supernet import load_supernet, normalisation, train_supernet

    torch.set_num_threads(1)
    space = bench_space(args.resolution)
    data = load_dataset("fashion-mnist", seed=0)
    archs = bench_archs(space, args.archs)
    rows = [{"index": i, "arch": str(space.decode(t)), "mmacs": lower(space.decode(t)).macs / 1e6}
            for i, t in enumerate(archs)]
    if not args.no_supernet:
        path = Path(args.supernet or args.out)
        if args.supernet:
            _, meta = load_supernet(path, space)
        else:
            def progress(step, steps, loss):
                if step % 10 == 0 or step == steps:
                    print(f"  step {step}/{steps} loss {loss:.3f}", file=sys.stderr, flush=True)

            _, meta = train_supernet(space, data, args.epochs, out=path, train_images=args.train_images,
                                     batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                     sampling=args.sampling, distill=args.distill, progress=progress)
        print(f"supernet {path}: {meta.get('sampling', 'sandwich')} sampling{' + distill' * meta['distill']}, "
              f"{meta['steps']} steps, "
              f"{meta['train_images']} images, {meta['epochs']} epochs, train {meta['train_seconds']:.0f} s, "
              f"final loss {meta['final_loss']:.3f}", file=sys.stderr)
        evaluator = SupernetEvaluator(path, space, data=data, val_images=args.val_images)
        for row, tokens in zip(rows, archs):
            arch = space.decode(tokens)
            outcome = evaluator.evaluate([Candidate(tokens, arch, str(arch))])[0]
            row.update(supernet_acc=outcome.accuracy, error=outcome.error, eval_seconds=outcome.seconds,
                       train_seconds=meta["train_seconds"], train_steps=meta["steps"],
                       sampling=meta.get("sampling", "sandwich"))
            print(f"  arch {row['index']}: {outcome.accuracy} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
    known = {}
    if args.standalone_from:
        known = {r["arch"]: r for r in json.loads(Path(args.standalone_from).read_text()) if "standalone_acc" in r}
    alone_images = args.standalone_images or args.train_images
    subset = np.sort(np.random.default_rng(args.seed).permutation(len(data.x_train))[:alone_images])
    mean, std = normalisation(data.x_train[subset])
    for row, tokens in list(zip(rows, archs))[:args.standalone]:
        if row["arch"] in known:
            for key in ("standalone_acc", "standalone_seconds", "standalone_epochs", "standalone_images"):
                row[key] = known[row["arch"]].get(key)
            continue
        row["standalone_acc"], row["standalone_seconds"] = standalone_accuracy(
            space.decode(tokens), data, mean, std, alone_images, args.standalone_epochs, args.seed)
        row["standalone_epochs"], row["standalone_images"] = args.standalone_epochs, alone_images
        print(f"  stand-alone {row['index']}: {row['standalone_acc']:.2f} ({row['standalone_seconds']:.0f} s)",
              file=sys.stderr, flush=True)
        if args.json:  # after each: a long run killed half-way keeps what it did (--standalone-from)
            Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archs", type=int, default=BENCH_ARCHS)
    parser.add_argument("--val-images", type=int, default=None, help="first N of the validation split (all)")
    parser.add_argument("--supernet", help="a trained supernet file to reuse (no training)")
    parser.add_argument("--out", default="supernet-fmnist.pt", help="where the trained supernet goes")
    parser.add_argument("--standalone", type=int, default=0, help="also train the first N archs alone")
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument("--standalone-images", type=int, help="stand-alone training images (--train-images)")
    parser.add_argument("--standalone-from", metavar="JSON", help="reuse the stand-alone rows of an earlier --json")
    parser.add_argument("--no-supernet", action="store_true", help="only the stand-alone training")
    parser.add_argument("--sampling", default="sandwich", help="the supernet's training: sandwich, fair or progressive")
    parser.add_argument("--distill", action="store_true", help="in-place distillation (sandwich, progressive)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    rows = run(args)
    from pynas import ui

    def cell(row, key):
        return "-" if row.get(key) is None else f"{row[key]:.2f}"

    print(ui.table(["#", "MMACs", "supernet %", "eval s", "alone %", "alone s"],
                   [[r["index"], f"{r['mmacs']:.2f}", cell(r, "supernet_acc"), cell(r, "eval_seconds"),
                     cell(r, "standalone_acc"), cell(r, "standalone_seconds")] for r in rows], right=(0, 1, 2, 3, 4, 5)))
    ok = [r for r in rows if r.get("supernet_acc") is not None]
    if ok:
        print(f"supernet ({ok[0]['sampling']}): trained {ok[0]['train_seconds']:.0f} s ({ok[0]['train_steps']} steps); "
              f"{len(ok)}/{len(rows)} scored, median {np.median([r['eval_seconds'] for r in ok]):.2f} s per "
              f"evaluation, accuracy {min(r['supernet_acc'] for r in ok):.2f}..{max(r['supernet_acc'] for r in ok):.2f}")
    paired = [r for r in ok if r.get("standalone_acc") is not None]
    if len(paired) >= 3:
        from scipy.stats import kendalltau

        tau = kendalltau([r["supernet_acc"] for r in paired], [r["standalone_acc"] for r in paired])[0]
        print(f"Kendall tau, supernet vs stand-alone ({paired[0]['standalone_epochs']} epochs on "
              f"{paired[0]['standalone_images']} images), {len(paired)} archs: {tau:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
