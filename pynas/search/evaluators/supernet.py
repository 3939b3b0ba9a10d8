"""`supernet:PATH`: accuracy of a candidate as a sub-network of a trained weight-sharing supernet.

    evaluator = make_evaluator("supernet:fmnist.pt", get_space("mnasnet", resolution=28, num_classes=10,
                               in_channels=1))
    evaluator.evaluate([Candidate(tokens, arch, text), ...])   # seconds each, no training

The file (`pynas supernet train`, `pynas.train.supernet`) says its space and options (another
space is refused) and its dataset (reloaded by name and seed, refused unless its sha256 is the one
trained on). Per candidate: the sub-network's weights copied into `build_torch(arch)`, its
BatchNorm statistics recalibrated on a fixed seeded subset of the training images (shared weights
leave no statistics that fit every sub-network, OFA), then top-1 accuracy on the validation split.
Deterministic for a fixed thread count. A non-finite output is a failed Outcome, never 0.

The proxy task, as the train evaluator's: a supernet trained on grey 28 px images (space
`mnasnet` with resolution 28, 10 classes, in_channels 1) scores the architectures of a search of
the ImageNet-shaped space (224 px, 1000 classes, RGB, whose latency the bundle predicts): the
candidate's tokens, which mean the same block choices in both, are decoded in the supernet's own
space. The spaces must be the same space (name and decisions); option `exact=True` also requires
the same options (resolution, classes, input channels).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

from pynas.predictor.manifest import sha256_of
from pynas.search.evaluators.base import Candidate, Evaluator, Outcome

PREFIX = "supernet"
CALIBRATION_IMAGES = 500
CALIBRATION_SEED = 0


class SupernetEvaluator(Evaluator):
    """Sub-network accuracy (percent) on the validation split of the supernet's dataset.
    `data`: the Dataset already in hand (checked against the file's sha256); `val_images`: the
    first N validation images only (all by default); `threads`: torch's thread count."""

    name = PREFIX

    def __init__(self, path: str | Path, space, *, data=None, calibration_images: int = CALIBRATION_IMAGES,
                 val_images: int | None = None, threads: int = 1, exact: bool = False):
        import numpy as np
        import torch

        from pynas.data import load_dataset
        from pynas.train.supernet import images, load_supernet

        for field, value in (("calibration_images", calibration_images), ("threads", threads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field}: expected an integer >= 1, got {value!r}")
        if val_images is not None and (not isinstance(val_images, int) or isinstance(val_images, bool)
                                       or val_images < 1):
            raise ValueError(f"val_images: expected an integer >= 1 or None (all), got {val_images!r}")
        if not isinstance(exact, bool):
            raise ValueError(f"exact: expected true or false, got {exact!r}")
        self.path = Path(path)
        # ValueError: missing, malformed, other space (or, with exact, other options)
        self.supernet, self.meta = load_supernet(self.path, space if exact else None)
        own = self.supernet.space
        if (own.name, own.cardinalities) != (space.name, space.cardinalities):
            raise ValueError(f"supernet file {self.path}: expected a supernet of space {space.name} (the search's), "
                             f"got one of {own.name}")
        self.proxy = own.options() != space.options()
        self.space, self.threads, self.exact = own, threads, exact
        self.file_sha256 = sha256_of(self.path)
        if data is None:
            data = load_dataset(self.meta["dataset"], seed=self.meta["data_seed"])
        if data.sha256 != self.meta["dataset_sha256"]:
            raise ValueError(f"supernet file {self.path}: dataset {self.meta['dataset']}: expected sha256 "
                             f"{self.meta['dataset_sha256'][:16]}... (what it was trained on), got {data.sha256[:16]}...")
        self.data = data
        mean, std, resolution = self.meta["mean"], self.meta["std"], own.resolution
        chosen = np.sort(np.random.default_rng(CALIBRATION_SEED).permutation(len(data.x_train))[:calibration_images])
        self.calibration = images(data.x_train[chosen], mean, std, resolution)
        count = len(data.x_val) if val_images is None else min(val_images, len(data.x_val))
        self.x_val = images(data.x_val[:count], mean, std, resolution)
        self.y_val = torch.from_numpy(np.asarray(data.y_val[:count], dtype=np.int64))
        self.calibration_images, self.val_images = len(chosen), count

    @classmethod
    def from_spec(cls, path: str, space, *, calibration_images: int = CALIBRATION_IMAGES,
                  val_images: int | None = None, threads: int = 1, exact: bool = False) -> "SupernetEvaluator":
        """From what follows `supernet:` (the registry's convention; options as keywords)."""
        if not isinstance(path, str) or not path:
            raise ValueError(f"evaluator: expected {PREFIX}:PATH (a file of `pynas supernet train`), got "
                             f"{PREFIX}:{path if isinstance(path, str) else ''}")
        return cls(path, space, calibration_images=calibration_images, val_images=val_images, threads=threads,
                   exact=exact)

    def subnetwork(self, arch):
        """(network, top-1 %): `arch` (of the supernet's own space) as this evaluator scores it, its
        weights extracted and its BatchNorm recalibrated; `pynas export` ships this network."""
        import torch

        from pynas.train.supernet import accuracy, recalibrate

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            net = recalibrate(self.supernet.extract(arch), self.calibration)
            return net, accuracy(net, self.x_val, self.y_val)
        finally:
            torch.set_num_threads(previous)

    def _one(self, candidate: Candidate) -> Outcome:
        start = time.perf_counter()
        try:
            arch = self.space.decode(candidate.tokens)
        except (ValueError, TypeError) as error:
            return Outcome(None, error=f"not an architecture of the supernet's space: {error}")
        _, value = self.subnetwork(arch)
        seconds = time.perf_counter() - start
        if not math.isfinite(value):
            return Outcome(None, error="the sub-network's outputs are not finite (NaN/inf) on the validation images",
                           seconds=seconds)
        return Outcome(value, seconds=seconds)

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        return [self._one(c) for c in candidates]

    def fingerprint(self) -> dict:
        return {"evaluator": PREFIX, "sha256": self.file_sha256, "dataset": self.meta["dataset"],
                "dataset_sha256": self.meta["dataset_sha256"], "calibration_images": self.calibration_images,
                "calibration_seed": CALIBRATION_SEED, "val_images": self.val_images,
                "proxy_space": self.space.options() if self.proxy else None}

    def describe(self) -> str:
        return (f"{PREFIX}:{self.path}, sub-network top-1 on {self.val_images} validation images of "
                f"{self.meta['dataset']} after BN recalibration on {self.calibration_images} training images "
                f"(supernet trained {self.meta['epochs']} epochs)"
                + (f"; proxy: each architecture's tokens in {self.space.name} {self.space.options()}" if self.proxy else ""))


__all__ = ["SupernetEvaluator"]
