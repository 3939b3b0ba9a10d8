"""`pynas supernet train`: a weight-sharing supernet of a space, trained once on a dataset, for the
`supernet:FILE` evaluator of `pynas search`."""
from __future__ import annotations

import math
import time
from pathlib import Path

from pynas.cli import flags

# pynas.train.supernet.SAMPLINGS, spelled here so that building the parser imports no torch (a test
# checks that the two agree).
SAMPLINGS = ("sandwich", "fair", "progressive")


def cmd_train(args) -> None:
    import torch

    from pynas import ui
    from pynas.data import load_dataset
    from pynas.space import get_space
    from pynas.train.supernet import train_supernet

    if args.space != "mnasnet":
        raise ValueError(f"--space: expected mnasnet (the only space with a supernet), got {args.space}")
    if args.distill and args.sampling == "fair":
        raise ValueError("--distill: expected only with --sampling sandwich or progressive (their largest sub-network "
                         "is the teacher), got --sampling fair")
    data = load_dataset(args.dataset, seed=args.data_seed)
    # The classes and input channels are the data's; the resolution the data's unless given.
    space = get_space(args.space, resolution=args.resolution or data.resolution[0], num_classes=data.num_classes,
                      in_channels=data.channels)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    images = args.train_images or len(data.x_train)
    if images > len(data.x_train):
        raise ValueError(f"--train-images: expected at most {len(data.x_train)} (the training split of {data.name}), "
                         f"got {images}")
    if Path(args.out).is_dir():
        raise ValueError(f"--out: expected a file path, got the folder {args.out}")
    steps = math.ceil(images / args.batch_size) * args.epochs
    with ui.Progress(steps, description=f"supernet {space.options()} on {data.name}") as bar:
        def progress(step, steps, loss):
            bar.update(step, f"loss {loss:.3f}")

        _, meta = train_supernet(space, data, args.epochs, data_seed=args.data_seed, out=args.out, seed=args.seed,
                                 batch_size=args.batch_size, lr=args.lr, train_images=args.train_images,
                                 sampling=args.sampling, distill=args.distill, progress=progress)
    print(f"wrote {args.out}: {meta['steps']} steps on {meta['train_images']} images of {data.name}, final loss "
          f"{meta['final_loss']:.3f}, {time.perf_counter() - start:.0f} s; search with --evaluator supernet:{args.out}")


def add_parsers(commands) -> None:
    p = commands.add_parser("supernet", help="weight-sharing supernets (train once, evaluate sub-networks in seconds)")
    sub = p.add_subparsers(dest="supernet_command", required=True)
    t = sub.add_parser("train", help="train a space's supernet on a dataset (the sandwich rule or fair op sampling)",
                       description="Writes FILE for `pynas search --evaluator supernet:FILE`; the space's classes and "
                                   "input channels are the dataset's.")
    t.add_argument("--space", default="mnasnet", help="mnasnet (the default; the only space with a supernet)")
    t.add_argument("--dataset", required=True, help="fashion-mnist, digits, a folder of class folders or a file.npz")
    t.add_argument("--data-seed", type=flags.integer(0), default=0, help="the dataset's train/validation split seed")
    t.add_argument("--resolution", type=flags.integer(8, 4096), help="input resolution (default: the images')")
    t.add_argument("--epochs", type=flags.integer(1, 10_000), required=True)
    t.add_argument("--train-images", type=flags.integer(1), help="a seeded subset of the training split (default all)")
    t.add_argument("--batch-size", type=flags.integer(1, 100_000), default=128)
    t.add_argument("--lr", type=flags.number(0, 10, low_open=True), default=0.05, help="SGD learning rate (cosine)")
    t.add_argument("--sampling", choices=SAMPLINGS, default=SAMPLINGS[0],
                   help="sub-networks per step: sandwich (largest, smallest, 2 random; the default), fair "
                        "(each op once per block, FairNAS) or progressive (the sandwich rule over kernel/SE/width, "
                        "then + skip, + op, + depth: OFA's progressive shrinking)")
    t.add_argument("--distill", action="store_true",
                   help="sandwich/progressive: the other sub-networks learn from the largest's soft labels")
    t.add_argument("--seed", type=flags.integer(0, 2**32 - 1), default=0)
    t.add_argument("--threads", type=flags.threads, default=1, help="torch threads (results depend on it)")
    t.add_argument("--out", metavar="FILE", required=True)
    t.set_defaults(run=cmd_train)
