"""`Dataset` (arrays and what they hold), its seeded split and `check_feeds`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

VALIDATION_FRACTION = 0.2  # of the images given, where the source has no validation split of its own


class DatasetError(ValueError):
    """A dataset that cannot be read or used: names the path (or spec) and what was expected."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images N x C x H x W (uint8 0..255, or float32 as given) and int64 labels 0..num_classes-1."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    sha256: str = field(default="", repr=False)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def describe(self) -> str:
        h, w = self.resolution
        return (f"{self.name}: {len(self.x_train)} training + {len(self.x_val)} validation images, "
                f"{self.channels} x {h} x {w}, {self.num_classes} classes")

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images in [0, 1] (uint8) or as given (float)."""
        x = self.x_train.astype(np.float64)
        if self.x_train.dtype == np.uint8:
            x /= 255.0
        mean = x.mean(axis=(0, 2, 3))
        std = x.std(axis=(0, 2, 3))
        return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def check_feeds(data: Dataset, arch) -> None:
    """DatasetError unless `data` can feed `arch` (an `Arch`): the same input channels and classes.
    The resolution needs no match: evaluators resize images to the architecture's."""
    if arch.in_channels != data.channels:
        raise DatasetError(f"architecture {arch}: in_channels: expected {data.channels} (the images of {data.name} "
                           f"have {data.channels}; write in{data.channels} in the header), got {arch.in_channels}")
    if arch.num_classes != data.num_classes:
        raise DatasetError(f"architecture {arch}: num_classes: expected {data.num_classes} (the classes of "
                           f"{data.name}), got {arch.num_classes}")


def split(name: str, x: np.ndarray, y: np.ndarray, seed: int, *, validation: int | None = None,
          x_test=None, y_test=None) -> Dataset:
    """A seeded split of (x, y): `validation` images (default VALIDATION_FRACTION) held out."""
    count = len(x)
    held = int(round(count * VALIDATION_FRACTION)) if validation is None else validation
    if not 1 <= held < count:
        raise DatasetError(f"dataset {name}: expected at least 2 images to split into training and validation, "
                           f"got {count}")
    order = np.random.default_rng(seed).permutation(count)
    val, train = np.sort(order[:held]), np.sort(order[held:])
    return make(name, x[train], y[train], x[val], y[val], x_test=x_test, y_test=y_test)


def make(name: str, x_train, y_train, x_val, y_val, *, x_test=None, y_test=None) -> Dataset:
    """A Dataset from split arrays, its labels checked and its sha256 taken over what a score depends on."""
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    num_classes = int(max(y_train.max(), y_val.max())) + 1
    if y_train.min() < 0 or y_val.min() < 0:
        raise DatasetError(f"dataset {name}: y: expected labels 0..K-1, got {min(y_train.min(), y_val.min())}")
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_val, y_val):
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return Dataset(name, np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_val), y_val, num_classes,
                   x_test=x_test, y_test=None if y_test is None else np.asarray(y_test, np.int64),
                   sha256=digest.hexdigest())
