"""Proxy training: an architecture trained for a few epochs on a dataset, scored by top-1 on its
validation split (MnasNet's "5 epochs on a proxy task", on CPU).

    from pynas.train.trainer import train_and_score
    score = train_and_score(arch, load_dataset("digits"), epochs=3, seed=0)
    score.accuracy_percent, score.seconds

The recipe (defaults chosen for short CPU runs of mobile CNNs; all in `RECIPE` and the keywords):

* SGD, momentum 0.9, Nesterov: the MnasNet/MobileNet family's optimiser, stable from He init.
* lr 0.05 at batch 128 (torchvision's MobileNetV2 recipe is 0.045 at 256 for 300 epochs; a
  proxy of a few epochs can afford twice that per image), linear warm-up over the first 10% of
  the steps (He-initialised nets without it can diverge in the first steps), then cosine to 0 at
  the last step: each epoch count is its own schedule, so a 1-epoch score is a finished run,
  not the first epoch of a longer one. A small subset (a few thousand images) wants more steps
  than batches of 128 give: pass batch_size=64 (the Fashion-MNIST bench does).
* Weight decay 4e-5 (MnasNet's) on conv/linear weights only, none on BN and biases.
* Label smoothing 0.1 (MnasNet's), which also keeps early losses finite.
* BatchNorm statistics recomputed after training, as exact averages over 2,000 training images
  (a short run's running averages still remember the initial weights: scores near chance).
* No augmentation: a few epochs are too short for it to pay, and none keeps a score a pure
  function of (architecture, data, seed).
* Inputs: images resized once per (dataset, resolution, subset) with torch's `area`
  interpolation (downsampling) or `bilinear` (upsampling), scaled to [0, 1] and normalised per
  channel with the training split's `channel_stats()`; the result is cached.

Determinism: everything random (initial weights, batch order) comes from one seed derived from
(seed, architecture string) by sha256, never Python's hash() or a worker's counter, so a pool or
Ray worker computes the same number as a serial run. On CPU, for a fixed thread count, two runs
give the same bits (the thread count changes the order of float sums: it is part of a score's
identity). A NaN/inf loss stops the run with a `TrainingError` ("loss diverged at epoch e, step s"):
it is a failed evaluation, never a score.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pynas.arch import Arch
from pynas.data import Dataset, check_feeds
from pynas.torch_builder import build_torch

RECIPE = {  # what else decides a score (kept in evaluators' fingerprints)
    "optimizer": "sgd-nesterov", "momentum": 0.9, "weight_decay": 4e-5, "label_smoothing": 0.1,
    "warmup_fraction": 0.1, "schedule": "cosine", "augmentation": "none", "normalisation": "per-channel",
    "bn_recalibration_images": 2000,
}
DEFAULT_LR = 0.05
DEFAULT_BATCH_SIZE = 128
EVAL_BATCH_SIZE = 500
BN_IMAGES = RECIPE["bn_recalibration_images"]  # training images that set BatchNorm's statistics after training (see _recalibrate_batchnorm)
_CACHE_ENTRIES = 4  # resized splits kept (a search uses one; a benchmark may alternate a few)


class TrainingError(RuntimeError):
    """A training run that produced no score (diverged loss, non-finite outputs): one line, why."""


@dataclass(frozen=True)
class Score:
    accuracy_percent: float  # top-1 on the validation images, in percent
    seconds: float  # wall time of this call (resizing included when it was not cached)
    epochs: int
    train_images: int
    val_images: int
    steps: int
    final_loss: float  # mean training loss over the last epoch
    seed: int  # the derived per-evaluation seed


def evaluation_seed(seed: int, arch_text: str) -> int:
    """The seed of one evaluation: sha256 of (seed, architecture string), 63 bits."""
    digest = hashlib.sha256(f"{int(seed)}:{arch_text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def subset(count: int, wanted: int | None, seed: int, name: str, low: int = 1) -> np.ndarray | None:
    """Sorted indices of a seeded `wanted` of `count` images (None: all of them)."""
    if wanted is None:
        return None
    wanted = check_int(name, wanted, low)
    if wanted > count:
        raise ValueError(f"{name}: expected at most {count} (the split's images), got {wanted}")
    if wanted == count:
        return None
    return np.sort(np.random.default_rng([int(seed), wanted]).permutation(count)[:wanted])


_stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_inputs: "OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]]" = OrderedDict()


def _channel_stats(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    key = data.sha256 or str(id(data))
    if key not in _stats:
        _stats[key] = data.channel_stats()
    return _stats[key]


def _resized(x: np.ndarray, resolution: int, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """N x C x H x W images -> float32 N x C x R x R, in [0, 1] (uint8) then normalised per channel."""
    out = torch.empty((len(x), x.shape[1], resolution, resolution), dtype=torch.float32)
    mean_t = torch.from_numpy(mean).view(1, -1, 1, 1)
    std_t = torch.from_numpy(std).view(1, -1, 1, 1)
    for start in range(0, len(x), 2048):  # chunks: a 224 px copy of a big split would not fit at once
        chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + 2048])).float()
        if x.dtype == np.uint8:
            chunk /= 255.0
        h, w = chunk.shape[2:]
        if (h, w) != (resolution, resolution):
            down = resolution <= h and resolution <= w
            chunk = F.interpolate(chunk, size=(resolution, resolution), mode="area" if down else "bilinear",
                                  **({} if down else {"align_corners": False}))
        out[start:start + len(chunk)] = (chunk - mean_t) / std_t
    return out


def prepared(data: Dataset, split: str, resolution: int, indices: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of `split` ("train"/"val") at `resolution`, the `indices` subset, cached."""
    key = (data.sha256 or id(data), split, resolution,
           None if indices is None else hashlib.sha256(indices.tobytes()).hexdigest())
    if key in _inputs:
        _inputs.move_to_end(key)
        return _inputs[key]
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_val, data.y_val)
    if indices is not None:
        x, y = x[indices], y[indices]
    mean, std = _channel_stats(data)
    value = _resized(x, resolution, mean, std), torch.from_numpy(np.asarray(y, np.int64))
    _inputs[key] = value
    while len(_inputs) > _CACHE_ENTRIES:
        _inputs.popitem(last=False)
    return value


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]  # conv and linear weights
    rest = [p for p in model.parameters() if p.ndim <= 1]  # BN scales/shifts, biases
    return torch.optim.SGD([{"params": decay, "weight_decay": RECIPE["weight_decay"]},
                            {"params": rest, "weight_decay": 0.0}],
                           lr=lr, momentum=RECIPE["momentum"], nesterov=True)


def learning_rate(step: int, total: int, base: float) -> float:
    """Linear warm-up over the first RECIPE warmup_fraction of `total` steps, then cosine to 0."""
    warmup = max(1, math.ceil(RECIPE["warmup_fraction"] * total))
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup + 1) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_and_score(arch: Arch, data: Dataset, epochs: int, *, seed: int = 0, threads: int = 1,
                    batch_size: int = DEFAULT_BATCH_SIZE, lr: float = DEFAULT_LR, train_images: int | None = None,
                    val_images: int | None = None) -> Score:
    """Train `arch` (its header must already fit `data`: see `pynas.train.proxy_task`) for `epochs`
    on the training split (or a seeded `train_images` of it) and score it on the validation split
    (or a seeded `val_images` of it). The subsets depend on `seed` only, so every architecture of a
    search sees the same images; weights and batch order depend on (seed, architecture)."""
    return fit(arch, data, epochs, seed=seed, threads=threads, batch_size=batch_size, lr=lr,
               train_images=train_images, val_images=val_images)[1]


def fit(arch: Arch, data: Dataset, epochs: int, *, seed: int = 0, threads: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE, lr: float = DEFAULT_LR, train_images: int | None = None,
        val_images: int | None = None, model: torch.nn.Module | None = None,
        after_backward: Callable[[torch.nn.Module], None] | None = None) -> tuple[torch.nn.Module, Score]:
    """`train_and_score` that also returns the trained model (eval mode, BN recalibrated). Two hooks
    for training that is not a plain proxy run (`pynas.ship.slimming`): `model` starts from given
    weights (built from `arch`, e.g. a pruned network to fine-tune) instead of a fresh build, and
    `after_backward(model)` runs after each backward pass, before the optimiser's step (e.g. to add
    a sparsity penalty's subgradient to the gradients)."""
    start = time.perf_counter()
    epochs = check_int("epochs", epochs, 1)
    seed = check_int("seed", seed, 0)
    threads = check_int("threads", threads, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = check_positive("lr", lr)
    check_feeds(data, arch)  # a DatasetError naming in_channels or num_classes
    train_idx = subset(len(data.x_train), train_images, seed, "train_images", low=2)
    val_idx = subset(len(data.x_val), val_images, seed + 1, "val_images")
    x_train, y_train = prepared(data, "train", arch.resolution, train_idx)
    x_val, y_val = prepared(data, "val", arch.resolution, val_idx)
    count = len(x_train)
    if count < 2:
        raise ValueError(f"train_images: expected at least 2 training images, got {count}")
    batch = min(batch_size, count)
    per_epoch = count // batch  # the incomplete last batch is dropped (a batch of 1 breaks BatchNorm)
    total = per_epoch * epochs
    run_seed = evaluation_seed(seed, str(arch))

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(run_seed)
                model = build_torch(arch)
        generator = torch.Generator().manual_seed(run_seed)
        optimizer = _optimizer(model, lr)
        model.train()
        step, last_losses = 0, []
        for epoch in range(epochs):
            order = torch.randperm(count, generator=generator)
            last_losses = []
            for s in range(per_epoch):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, total, lr)
                idx = order[s * batch:(s + 1) * batch]
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx], label_smoothing=RECIPE["label_smoothing"])
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingError(f"loss diverged at epoch {epoch + 1}, step {s + 1} (loss {value}, lr "
                                        f"{optimizer.param_groups[0]['lr']:.3g})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if after_backward is not None:
                    after_backward(model)
                optimizer.step()
                last_losses.append(value)
                step += 1
        _recalibrate_batchnorm(model, x_train, order, batch)
        correct = _correct(model, x_val, y_val)
    finally:
        torch.set_num_threads(previous_threads)
    return model, Score(accuracy_percent=100.0 * correct / len(y_val), seconds=time.perf_counter() - start,
                        epochs=epochs, train_images=count, val_images=len(y_val), steps=total,
                        final_loss=float(np.mean(last_losses)), seed=run_seed)


def evaluate(model: torch.nn.Module, arch: Arch, data: Dataset, *, seed: int = 0, threads: int = 1,
             val_images: int | None = None) -> float:
    """Top-1 in percent of a model (as is: no training, no BN recalibration) on the validation split
    (or the seeded `val_images` of it that `fit` with the same seed scores on)."""
    check_feeds(data, arch)
    x_val, y_val = prepared(data, "val", arch.resolution, subset(len(data.x_val), val_images, seed + 1, "val_images"))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(check_int("threads", threads, 1))
    try:
        return 100.0 * _correct(model, x_val, y_val) / len(y_val)
    finally:
        torch.set_num_threads(previous_threads)


def _recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, order: torch.Tensor, batch: int) -> None:
    """BatchNorm's statistics recomputed as exact averages over up to BN_IMAGES training images
    (the last epoch's order) with the final weights: after a few hundred steps, BN's running
    averages (momentum 0.1) still remember their initialisation and early weights, which alone
    can put a short proxy's validation accuracy at chance."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, min(BN_IMAGES, len(order)) - batch + 1, batch):
            model(x[order[start:start + batch]])


def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH_SIZE):
            logits = model(x[start:start + EVAL_BATCH_SIZE])
            if not torch.isfinite(logits).all():
                raise TrainingError("validation outputs are not finite (the trained weights or BN statistics "
                                    "overflowed)")
            correct += int((logits.argmax(1) == y[start:start + EVAL_BATCH_SIZE]).sum())
    return correct


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_LR", "RECIPE", "Score", "TrainingError", "evaluate", "evaluation_seed", "fit",
           "prepared", "subset", "train_and_score"]
