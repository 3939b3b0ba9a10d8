"""`load_dataset(spec, seed)`: the dataset a spec names (see the package docstring)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pynas.data import sources
from pynas.data.dataset import Dataset, DatasetError


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """The dataset `spec` names (see the package docstring), split with `seed`."""
    if not isinstance(spec, str) or not spec:
        raise DatasetError(f"dataset: expected fashion-mnist, digits, a folder or a file.npz, got {spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed: expected an integer >= 0, got {seed!r}")
    if spec == "fashion-mnist":
        return sources.fashion_mnist(int(seed))
    if spec == "digits":
        return sources.digits(int(seed))
    path = Path(spec)
    if path.suffix == ".npz":
        return sources.npz(path, int(seed))
    if path.is_dir():
        return sources.image_folder(path, int(seed))
    raise DatasetError(f"dataset {spec}: expected fashion-mnist, digits, a folder of class folders or a file.npz, "
                       f"got {'a file of another kind' if path.exists() else 'no such file or folder'}")
