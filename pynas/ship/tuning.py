"""NetAdapt's scoring as the paper does it: carry the trained network's weights from step to step.

    from pynas.ship import netadapt, tuning
    scorer = tuning.FineTuneScorer(load_dataset("fashion-mnist"), pretrain_epochs=5, resolution=16,
                                   train_images=5000, holdout_images=1000, tune_images=2560)
    result = netadapt.adapt(arch, predictor, 8.0, scorer, delta_fraction=0.05)
    model, proxy = scorer.model, scorer.proxy        # the adapted network, weights carried
    pruned = tuning.transfer(model, proxy, other)    # any narrower architecture, weights by magnitude

NetAdapt (Yang et al. 2018, sec. 3.2) scores a proposal by removing channels from the *current*
trained network (those with the smallest filter L2 norms), fine-tuning it for a short while and
measuring its accuracy on a held-out set; the chosen proposal's network, with its fine-tuned
weights, is the next step's current network. Training every proposal from scratch instead (the
``netadapt.EvaluatorScorer`` path) makes the proposals' accuracy differences, a fraction of a
point, drown in seed noise of a point or more at a proxy budget; fine-tuning from shared weights
compares the proposals on the same network, so what differs is what the shrink removed.

`FineTuneScorer`:

* splits the training images (a seeded permutation) into `train_images` to train on and
  `holdout_images` to score proposals on: the choice of a step is never made on the validation
  split that reports the final accuracy;
* `start(arch)`: trains the seed architecture's proxy (`pynas.train.proxy_task.adapt`: the data's
  channels and classes, `resolution` px, the architecture's own widths, so that proxy channels
  are the real architecture's channels one for one) for `pretrain_epochs` by the proxy recipe;
* `score(archs)`: per proposal, `transfer` (the channels with the largest BN-folded filter norms of
  each tied group and each expansion, `pynas.ship.channels`), one short fine-tune of `tune_images`
  images (`tune_images / batch` steps at `tune_lr`, BN recalibrated), top-1 on the held-out images;
* `accept(index)`: the chosen proposal's fine-tuned network becomes the current one;
* `state()` / `restore(state)` (a `netadapt.adapt` checkpoint): the current network and the trained
  seed as proxy strings and state dicts, the optimiser steps counted, torch's RNG state.

`long_term(epochs)` is the final fine-tune of the current network (at the pretraining lr) and
`report(model, proxy)` its top-1 on the validation split (`val_images` of it, seeded).

The budget: NetAdapt fine-tunes each proposal for 40k ImageNet iterations and the final network for
far more; on one CPU core a proxy step of mnasnet-a1 at 16 px costs about half a second, so the
defaults fine-tune a proposal for 20 steps (2,560 images) and a step's 13 proposals cost minutes.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pynas.arch import Arch
from pynas.ship.channels import Layout, copy_kept
from pynas.ship.netadapt import Scorer

DEFAULT_TUNE_IMAGES = 2560  # 20 steps of 128
DEFAULT_TUNE_LR = 0.01  # a fifth of the proxy recipe's peak: the weights are trained, the step is short
DEFAULT_HOLDOUT = 1000
MEASURE = "filter"  # NetAdapt's: the largest filter norms stay


def transfer(model, arch: Arch, target: Arch, measure: str = MEASURE):
    """A `build_torch(target)` holding `model`'s weights (`model` built from `arch`) for the channels
    that stay: in each tied group of channels and each ir layer's expanded channels, the ones with
    the largest magnitude (`pynas.ship.channels.Layout.scores`: `measure` "filter" or "gamma"); in
    eval mode. `target` must be `arch` with narrower widths or expansions (a ValueError if not)."""
    from pynas.torch_builder import build_torch

    layout = Layout.of(arch)
    widths = layout.widths_of(target)
    kept = layout.kept(widths, layout.scores(model, measure=measure), model)
    pruned = build_torch(target)
    copy_kept(layout, model, pruned, kept)
    return pruned.eval()


def holdout_split(data, train_images: int | None, holdout_images: int, seed: int):
    """A `pynas.data.Dataset` whose training split is `train_images` (all the rest when None) of
    `data`'s training images and whose validation split is `holdout_images` others of them (a
    seeded permutation): proposals are scored on images the final validation never sees."""
    from pynas.data import Dataset
    from pynas.train.trainer import check_int

    count = len(data.x_train)
    holdout_images = check_int("holdout_images", holdout_images, 1)
    if train_images is None:
        train_images = count - holdout_images
    train_images = check_int("train_images", train_images, 2)
    if train_images + holdout_images > count:
        raise ValueError(f"train_images: expected train_images + holdout_images at most {count} (the "
                         f"{data.name} training split), got {train_images} + {holdout_images}")
    order = np.random.default_rng([int(seed), 14]).permutation(count)
    train, held = np.sort(order[:train_images]), np.sort(order[train_images:train_images + holdout_images])
    return Dataset(name=f"{data.name} (training split: {train_images} to train, {holdout_images} held out)",
                   x_train=data.x_train[train], y_train=data.y_train[train], x_val=data.x_train[held],
                   y_val=data.y_train[held], num_classes=data.num_classes,
                   sha256=f"{data.sha256 or id(data)}:holdout:{seed}:{train_images}:{holdout_images}")


class FineTuneScorer(Scorer):
    """NetAdapt's weight-carrying scorer (see the module docstring)."""

    name = "fine-tune"

    def __init__(self, data, *, pretrain_epochs: int = 5, resolution: int | None = 16, train_images: int | None = None,
                 holdout_images: int = DEFAULT_HOLDOUT, tune_images: int = DEFAULT_TUNE_IMAGES,
                 tune_lr: float = DEFAULT_TUNE_LR, lr: float | None = None, batch_size: int | None = None,
                 val_images: int | None = None, seed: int = 0, threads: int = 1, measure: str = MEASURE):
        from pynas.train import trainer

        self.data = data
        self.pretrain_epochs = trainer.check_int("pretrain_epochs", pretrain_epochs, 1)
        self.resolution = None if resolution is None else trainer.check_int("resolution", resolution, 1)
        self.seed = trainer.check_int("seed", seed, 0)
        self.tuning = holdout_split(data, train_images, holdout_images, self.seed)
        self.tune_images = trainer.check_int("tune_images", tune_images, 2)
        if self.tune_images > len(self.tuning.x_train):
            raise ValueError(f"tune_images: expected at most {len(self.tuning.x_train)} (the images trained on), "
                             f"got {tune_images}")
        self.tune_lr = trainer.check_positive("tune_lr", tune_lr)
        self.lr = trainer.DEFAULT_LR if lr is None else trainer.check_positive("lr", lr)
        self.batch_size = trainer.DEFAULT_BATCH_SIZE if batch_size is None else trainer.check_int("batch_size",
                                                                                                  batch_size, 1)
        self.val_images = None if val_images is None else trainer.check_int("val_images", val_images, 1)
        self.threads = trainer.check_int("threads", threads, 1)
        self.measure = measure
        self.model = None  # the current network (weights carried) and its proxy architecture
        self.proxy: Arch | None = None
        self.steps_trained = 0  # optimiser steps the current network has seen (pretraining included)
        self.pretrained: tuple | None = None  # (proxy, model) of the trained seed, never changed
        self._pending: list = []

    def describe(self) -> str:
        # Everything the numbers depend on (a checkpoint made with another description is refused).
        resolution = "the architecture's own resolution" if self.resolution is None else f"{self.resolution} px"
        return (f"fine-tune: {self.pretrain_epochs} pretraining epochs, then per proposal {self.tune_images} images "
                f"at lr {self.tune_lr:g} from the current weights ({self.measure} magnitude), scored on "
                f"{len(self.tuning.x_val)} held-out training images; {self.tuning.name}; proxy at {resolution}, "
                f"lr {self.lr:g}, batch {self.batch_size}, seed {self.seed}, data sha256 {self.data.sha256 or 'none'}")

    def proxy_of(self, arch: Arch) -> Arch:
        from pynas.train.proxy_task import adapt

        return adapt(arch, self.data, resolution=self.resolution)

    def _fit(self, proxy: Arch, epochs: int, *, model=None, lr: float, train_images: int | None = None, seed=None):
        from pynas.train.trainer import fit

        return fit(proxy, self.tuning, epochs, model=model, lr=lr, train_images=train_images,
                   seed=self.seed if seed is None else seed, threads=self.threads, batch_size=self.batch_size)

    def start(self, arch: Arch) -> float:
        self.proxy = self.proxy_of(arch)
        self.model, score = self._fit(self.proxy, self.pretrain_epochs, lr=self.lr)
        self.steps_trained = score.steps
        self.pretrained = (self.proxy, self.model)  # kept: a baseline pruned from the same weights
        return score.accuracy_percent

    def score(self, archs: Sequence[Arch]) -> list[tuple[float | None, str | None]]:
        from pynas.train.trainer import TrainingError

        if self.model is None:
            raise RuntimeError("FineTuneScorer.score: start(arch) first")
        results, self._pending = [], []
        for arch in archs:
            try:
                proxy = self.proxy_of(arch)
                pruned = transfer(self.model, self.proxy, proxy, self.measure)
                model, score = self._fit(proxy, 1, model=pruned, lr=self.tune_lr, train_images=self.tune_images)
                if not math.isfinite(score.accuracy_percent):
                    raise TrainingError(f"no finite accuracy ({score.accuracy_percent!r})")
                results.append((score.accuracy_percent, None))
                self._pending.append((proxy, model, score.steps))
            except (TrainingError, ValueError, RuntimeError) as error:
                results.append((None, f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]))
                self._pending.append(None)
        return results

    def accept(self, index: int) -> None:
        chosen = self._pending[index]
        if chosen is None:
            raise ValueError(f"accept: proposal {index} failed, it has no network")
        self.proxy, self.model, steps = chosen
        self.steps_trained += steps
        self._pending = []

    def state(self) -> dict:
        """What the scorer carries (for a checkpoint): the current network and the trained seed
        (proxy architecture strings and state dicts: plain tensors), the optimiser steps counted,
        and torch's global RNG state. Each fine-tune draws from its own generator seeded by
        (seed, architecture), so nothing else is random; the global state is kept so that a layer
        drawing from it (dropout) would still resume as the uninterrupted run."""
        import torch

        if self.model is None:
            raise RuntimeError("FineTuneScorer.state: start(arch) first")
        return {"proxy": str(self.proxy), "model": self.model.state_dict(), "pretrained_proxy": str(self.pretrained[0]),
                "pretrained": self.pretrained[1].state_dict(), "steps_trained": self.steps_trained,
                "torch_rng": torch.get_rng_state()}

    def restore(self, state: dict) -> None:
        """Put back what `state()` returned: the current network and the trained seed rebuilt from
        their proxy architectures and loaded (strictly: every tensor, no other)."""
        import torch

        from pynas.arch import parse
        from pynas.torch_builder import build_torch

        def network(proxy_key: str, weights_key: str):
            proxy = parse(state[proxy_key])
            model = build_torch(proxy)
            model.load_state_dict(state[weights_key], strict=True)
            return proxy, model.eval()

        steps = state["steps_trained"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps_trained: expected an integer >= 1, got {steps!r}")
        current, pretrained = network("proxy", "model"), network("pretrained_proxy", "pretrained")
        rng = state["torch_rng"]
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
            raise ValueError(f"torch_rng: expected a uint8 tensor, got {type(rng).__name__}")
        torch.set_rng_state(rng)
        (self.proxy, self.model), self.pretrained = current, pretrained
        self.steps_trained, self._pending = steps, []

    def long_term(self, epochs: int, *, model=None, proxy: Arch | None = None, seed: int | None = None):
        """(model, Score on the held-out images): `model` (default: a copy of the current network,
        which stays as it is) fine-tuned for `epochs` on the training images at the pretraining lr."""
        import copy

        model = copy.deepcopy(self.model) if model is None else model
        return self._fit(proxy or self.proxy, epochs, model=model, lr=self.lr, seed=seed)

    def from_scratch(self, arch: Arch, epochs: int | None = None, *, seed: int | None = None):
        """(model, Score): `arch`'s proxy trained from scratch as the seed was (`pretrain_epochs`)."""
        return self._fit(self.proxy_of(arch), epochs or self.pretrain_epochs, lr=self.lr, seed=seed)

    def report(self, model, proxy: Arch) -> float:
        """Top-1 (%) of `model` on the data's validation split (the seeded `val_images` of it)."""
        from pynas.train.trainer import evaluate

        return evaluate(model, proxy, self.data, seed=self.seed, threads=self.threads, val_images=self.val_images)


__all__ = ["DEFAULT_HOLDOUT", "DEFAULT_TUNE_IMAGES", "DEFAULT_TUNE_LR", "FineTuneScorer", "MEASURE", "holdout_split",
           "transfer"]
