"""Training a MnasNet-space supernet once per dataset, its file, and scoring its sub-networks.

    supernet, meta = train_supernet(space, "fashion-mnist", epochs=2, out="sn.pt")
    supernet, meta = load_supernet("sn.pt", space)            # refuses another space / options
    net = supernet.extract(tokens)                              # build_torch(arch) with its weights
    recalibrate(net, images); accuracy(net, x_val, y_val)       # what SupernetEvaluator does

Each training step runs several sub-networks on the same batch, sums their gradients and steps
once (`train_step`). `sampling` picks them: `sandwich` (the default; BigNAS) runs the largest, the
smallest and `random_subnets` uniform samples, the others optionally learning from the largest's
soft labels (in-place distillation, `distill`); `fair` (FairNAS) runs four sub-networks in which
every block runs each op once, every other choice uniform; `progressive` (OFA's progressive
shrinking) is the sandwich rule over the choices set free so far (`PHASES`). None ranks uniform
samples of the space yet at the budgets measured (bench/evaluators_supernet.py, README): from
scratch, sub-networks that differ in op and depth in all seven blocks at once keep the loss at
chance for hundreds of steps, while the same variation in one block, or widths, kernels and SE
everywhere, train about as fast as a fixed network. SGD with Nesterov momentum and a cosine schedule
to 0, weight decay on conv and linear weights only. Seeded: the same seed, data and thread count
give the same weights bit for bit.

The file is `torch.save` of a dict of primitives and tensors (no pickled objects) read back with
`torch.load(weights_only=True)`: ``format`` / ``version``, ``meta`` (space name and options, dataset
name and sha256, epochs, seed, normalisation, pynas version, ...) and ``state_dict``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pynas.data import load_dataset
from pynas.space.mnasnet import FILTER_MULTIPLIERS, KERNELS, LAYER_DELTAS, OPS, SE_RATIOS, SKIPS, MnasNetSpace
from pynas.train.supernet_layers import DynamicConv, Supernet

FORMAT = "pynas-supernet"
VERSION = 1
_BLOCK_FIELDS = 6  # op, kernel, se, skip, filters, layers (pynas.space.mnasnet)
CLIP_NORM = 20.0  # of the summed gradient: a guard against the first steps of four networks' sum
WARMUP = 0.05  # of the steps, a linear warm-up before the cosine


def largest_tokens(space: MnasNetSpace) -> tuple[int, ...]:
    """mbconv6, kernel 5, SE, identity residuals, 1.25x filters, base + 1 layers in every block."""
    block = (OPS.index("mbconv6"), KERNELS.index(5), SE_RATIOS.index(0.25), SKIPS.index("identity"),
             FILTER_MULTIPLIERS.index(1.25), LAYER_DELTAS.index(1))
    return block * (len(space.decisions) // _BLOCK_FIELDS)


def smallest_tokens(space: MnasNetSpace) -> tuple[int, ...]:
    """dsconv, kernel 3, no SE, no shortcut, 0.75x filters, base - 1 layers in every block."""
    block = (OPS.index("dsconv"), KERNELS.index(3), SE_RATIOS.index(0.0), SKIPS.index("none"),
             FILTER_MULTIPLIERS.index(0.75), LAYER_DELTAS.index(-1))
    return block * (len(space.decisions) // _BLOCK_FIELDS)


def normalisation(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of images (N, C, H, W) scaled to [0, 1] if uint8."""
    x = _unit(x)
    return x.mean((0, 2, 3)).tolist(), [max(s, 1e-6) for s in x.std((0, 2, 3)).tolist()]


def _unit(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def to_tensor(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images (N, C, H, W), uint8 or float, as the normalised float tensor the networks take."""
    mean = np.asarray(mean, np.float32)[None, :, None, None]
    std = np.asarray(std, np.float32)[None, :, None, None]
    return torch.from_numpy(np.ascontiguousarray((_unit(x) - mean) / std))


def _check_data(space: MnasNetSpace, data) -> None:
    """The dataset feeds the space's networks: its channels and classes (any resolution: images are
    resized to the space's)."""
    if data.channels != space.in_channels or data.num_classes != space.num_classes:
        raise ValueError(f"dataset {data.name}: expected {space.in_channels}-channel images of "
                         f"{space.num_classes} classes (space {space.name} {space.options()}), got "
                         f"{data.channels} channels, {data.num_classes} classes")


def images(x: np.ndarray, mean: Sequence[float], std: Sequence[float], resolution: int) -> torch.Tensor:
    """`to_tensor`, resized (bilinear) to `resolution` where the images have another size."""
    tensor = to_tensor(x, mean, std)
    if tuple(tensor.shape[2:]) != (resolution, resolution):
        tensor = F.interpolate(tensor, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return tensor


SAMPLINGS = ("sandwich", "fair", "progressive")
# Progressive shrinking's phases (OFA, Cai et al. 2020), each an equal share of the steps: the choices
# each phase sets free, in order; a choice not yet free takes the largest sub-network's value. The
# choices that vary inside the same weights (kernel, SE, width) first; then those that switch
# modules in or out (skip, op, depth), which from scratch keep the loss at chance (see above).
PHASES = (("kernel", "se", "filters"), ("skip",), ("op",), ("layers",))


def sandwich_subnets(space: MnasNetSpace, rng: np.random.Generator, random_subnets: int = 2) -> list[tuple[int, ...]]:
    """The sandwich rule's sub-networks of a step: the largest, the smallest, `random_subnets` uniform."""
    return [largest_tokens(space), smallest_tokens(space)] + [
        tuple(int(rng.integers(d.cardinality)) for d in space.decisions) for _ in range(random_subnets)]


def fair_subnets(space: MnasNetSpace, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """FairNAS's strict fairness (Chu et al., ICCV 2021) for the op, the choice whose candidates share
    no weights: len(OPS) sub-networks in which every block runs each op once (a random permutation
    per block), so every candidate gets one gradient per step; every other choice uniform. Under
    the sandwich rule a conv candidate is trained only when a uniform sample picks it (1 in 4 of 2
    samples a step). Measured (16 px Fashion-MNIST, lr 0.05, batch 128): the four sub-networks' mean
    loss was still at chance (2.34) after 320 of 1,185 steps; see the module docstring."""
    order = {i: rng.permutation(len(OPS)) for i, d in enumerate(space.decisions) if d.name.endswith(".op")}
    return [tuple(int(order[i][j]) if i in order else int(rng.integers(d.cardinality))
                  for i, d in enumerate(space.decisions)) for j in range(len(OPS))]


def progressive_subnets(space: MnasNetSpace, rng: np.random.Generator, done: float,
                        random_subnets: int = 2) -> list[tuple[int, ...]]:
    """The sandwich rule within the part of the space free at `done` (the fraction of the steps
    taken, in [0, 1)): the largest, the smallest of the free choices (the rest at the largest's)
    and `random_subnets` uniform over the free choices."""
    if not 0.0 <= done < 1.0:
        raise ValueError(f"done: expected a fraction of the steps in [0, 1), got {done!r}")
    free = {name for phase in PHASES[:int(done * len(PHASES)) + 1] for name in phase}
    largest, smallest = largest_tokens(space), smallest_tokens(space)
    is_free = [d.name.split(".", 1)[1] in free for d in space.decisions]
    return [largest, tuple(s if f else b for s, b, f in zip(smallest, largest, is_free))] + [
        tuple(int(rng.integers(d.cardinality)) if f else b for d, b, f in zip(space.decisions, largest, is_free))
        for _ in range(random_subnets)]


def train_step(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               subnets: Sequence[Sequence[int]], distill: bool = False) -> float:
    """One step on a batch: the gradients of every sub-network in `subnets` summed, one update.
    With `distill`, all but the first learn from the first one's soft labels (in-place
    distillation: the first is then the largest). Returns the mean of the sub-networks' losses."""
    optimizer.zero_grad(set_to_none=True)
    target, losses = None, []
    for tokens in subnets:
        out = supernet(x, tuple(tokens))
        if target is not None:
            loss = -(target * F.log_softmax(out, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(out, y)
            if distill:
                target = F.softmax(out.detach(), 1)
        loss.backward()
        losses.append(float(loss.detach()))
    nn.utils.clip_grad_norm_(supernet.parameters(), CLIP_NORM)
    optimizer.step()
    return float(np.mean(losses))


def sandwich_step(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                  rng: np.random.Generator, random_subnets: int = 2, distill: bool = False) -> float:
    """One step of the sandwich rule (`sandwich_subnets`) on a batch."""
    return train_step(supernet, x, y, optimizer, sandwich_subnets(supernet.space, rng, random_subnets), distill)


def _optimizer(supernet: Supernet, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """Weight decay on conv and linear weights, none on BN and biases (OFA's setting)."""
    decayed, free = [], []
    for module in supernet.modules():
        for name, param in module.named_parameters(recurse=False):
            (decayed if name == "weight" and isinstance(module, (DynamicConv, nn.Linear)) else free).append(param)
    return torch.optim.SGD([{"params": decayed, "weight_decay": weight_decay}, {"params": free, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum, nesterov=True)


def train_supernet(space: MnasNetSpace, data, epochs: int, *, data_seed: int = 0, out: str | Path | None = None,
                   seed: int = 0, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                   weight_decay: float = 3e-5, train_images: int | None = None, sampling: str = "sandwich",
                   random_subnets: int = 2, distill: bool = False, max_steps: int | None = None,
                   progress: Callable[[int, int, float], None] | None = None) -> tuple[Supernet, dict]:
    """Train the supernet of `space` on `data` (a `pynas.data` spec, loaded with `data_seed`, or a
    Dataset: its name is the spec an evaluator reloads it by, its sha256 what it checks).
    `train_images`: the first N of a seeded permutation of the training split (all by default);
    `max_steps` stops early (tests). `progress(step, steps, loss)` after each step. Writes `out`.
    `sampling`: the sub-networks of each step, `sandwich` (`sandwich_subnets`), `fair`
    (`fair_subnets`) or `progressive` (`progressive_subnets`); `random_subnets` and `distill` for
    sandwich and progressive."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling: expected one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if distill and sampling == "fair":
        raise ValueError("distill: expected only with sampling sandwich or progressive (their first sub-network, the "
                         "largest, is the teacher), got sampling fair")
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("random_subnets", random_subnets, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    if out is not None and Path(out).is_dir():
        raise ValueError(f"out: expected a file path, got the folder {out}")
    if isinstance(data, str):
        data = load_dataset(data, seed=data_seed)
    _check_data(space, data)
    n = len(data.x_train)
    if train_images is not None and not (isinstance(train_images, int) and 1 <= train_images <= n):
        raise ValueError(f"train_images: expected an integer in [1, {n}] (the dataset's training images), "
                         f"got {train_images!r}")

    rng = np.random.default_rng(seed)
    subset = np.sort(rng.permutation(n)[:train_images or n])
    mean, std = normalisation(data.x_train[subset])
    x_all = images(data.x_train[subset], mean, std, space.resolution)
    y_all = torch.from_numpy(np.asarray(data.y_train[subset], dtype=np.int64))
    torch.manual_seed(seed)
    supernet = Supernet(space).train()
    optimizer = _optimizer(supernet, lr, momentum, weight_decay)
    per_epoch = math.ceil(len(subset) / batch_size)
    steps = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    warmup = max(1, round(WARMUP * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup + 1))))
    start, step, losses = time.perf_counter(), 0, []
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(subset)))
        for i in range(per_epoch):
            if step == steps:
                break
            batch = order[i * batch_size:(i + 1) * batch_size]
            if sampling == "fair":
                subnets = fair_subnets(space, rng)
            elif sampling == "progressive":
                subnets = progressive_subnets(space, rng, step / steps, random_subnets)
            else:
                subnets = sandwich_subnets(space, rng, random_subnets)
            loss = train_step(supernet, x_all[batch], y_all[batch], optimizer, subnets, distill)
            if not math.isfinite(loss):
                raise ValueError(f"training diverged at step {step}: loss {loss} (try a lower lr than {lr})")
            losses.append(loss)
            schedule.step()
            step += 1
            if progress is not None:
                progress(step, steps, loss)
    import pynas

    meta = {"space": space.name, "space_options": space.options(), "dataset": data.name,
            "data_seed": data_seed, "dataset_sha256": str(data.sha256), "train_images": int(len(subset)), "epochs": epochs, "steps": step,
            "seed": seed, "batch_size": batch_size, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
            "sampling": sampling, "random_subnets": random_subnets, "distill": distill, "mean": mean, "std": std,
            "final_loss": float(np.mean(losses[-max(1, per_epoch // 4):])), "train_seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads(), "pynas_version": pynas.__version__}
    if out is not None:
        save_supernet(out, supernet, meta)
    return supernet.eval(), meta


def save_supernet(path: str | Path, supernet: Supernet, meta: dict) -> None:
    torch.save({"format": FORMAT, "version": VERSION, "meta": dict(meta),
                "state_dict": {k: v.detach().clone() for k, v in supernet.state_dict().items()}}, str(path))


_META_KEYS = ("space", "space_options", "dataset", "data_seed", "dataset_sha256", "epochs", "seed", "mean", "std", "pynas_version")


def load_supernet(path: str | Path, space: MnasNetSpace | None = None) -> tuple[Supernet, dict]:
    """The supernet in `path` (eval mode) and its metadata. With `space`, a file of another space
    or other options is refused; without, the file's own space is built."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"supernet file {path}: expected a file written by `pynas supernet train`, got "
                         f"{'a folder' if path.exists() else 'nothing'}")
    try:
        blob = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001  any unreadable file is the same one-line error
        raise ValueError(f"supernet file {path}: expected a torch.save file of format {FORMAT}, got an unreadable "
                         f"file ({type(error).__name__})") from None
    got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
    if got != FORMAT or blob.get("version") != VERSION:
        raise ValueError(f"supernet file {path}: expected format {FORMAT} version {VERSION}, got {got} "
                         f"version {blob.get('version') if isinstance(blob, dict) else None}")
    meta, state = blob.get("meta"), blob.get("state_dict")
    missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing or not isinstance(state, dict):
        raise ValueError(f"supernet file {path}: expected meta with {', '.join(_META_KEYS)} and a state_dict, got "
                         f"{'no state_dict' if not isinstance(state, dict) else 'meta without ' + ', '.join(missing)}")
    if space is None:
        from pynas.space import get_space

        space = get_space(meta["space"], **meta["space_options"])
    elif (meta["space"], meta["space_options"]) != (space.name, space.options()):
        raise ValueError(f"supernet file {path}: expected space {space.name} {space.options()}, got "
                         f"{meta['space']} {meta['space_options']}")
    torch.manual_seed(0)  # the constructor's random init is overwritten; seeded so loading leaves no trace
    supernet = Supernet(space)
    try:
        supernet.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise ValueError(f"supernet file {path}: expected the state dict of space {space.name} "
                         f"{space.options()}, got other tensors: {first}") from None
    return supernet.eval(), meta


@torch.no_grad()
def recalibrate(net: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """Set every BatchNorm's running statistics to the mean over batches of `images` of its batch
    mean and variance (OFA's BN recalibration of a sub-network); returns `net` in eval mode."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
    net.train()
    for i in range(0, len(images), batch_size):
        net(images[i:i + batch_size])
    for bn in bns:
        bn.momentum = 0.1
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent (NaN if any logit is not finite: the caller reports a failure)."""
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = net(images[i:i + batch_size])
        if not torch.isfinite(logits).all():
            return math.nan
        correct += int((logits.argmax(1) == labels[i:i + batch_size]).sum())
    return 100.0 * correct / len(images)
