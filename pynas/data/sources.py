"""Readers of the datasets `load_dataset` knows: Fashion-MNIST's idx files, scikit-learn's digits,
an .npz of arrays, an ImageFolder-style folder. Each checks what it reads and names the file."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from pynas.data.dataset import Dataset, DatasetError, make, split

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_ENV = "PYNAS_FASHION_MNIST"
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000)}
FASHION_MNIST_VALIDATION = 10000
_IDX_UBYTE = 0x08  # the idx format's type code for unsigned bytes


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An idx file (gzip'd) of unsigned bytes with `dims` dimensions (LeCun's MNIST format)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path}: expected a gzip'd idx file, got {type(error).__name__}: {error}") from None
    if len(raw) < 4 + 4 * dims or raw[:2] != b"\0\0" or raw[2] != _IDX_UBYTE or raw[3] != dims:
        raise DatasetError(f"{path}: expected an idx header for {dims}-D unsigned bytes (00 00 08 0{dims}), got "
                           f"{raw[:4].hex(' ') if len(raw) >= 4 else f'{len(raw)} bytes'}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = raw[4 + 4 * dims:]
    if len(body) != int(np.prod(shape)):
        raise DatasetError(f"{path}: expected {int(np.prod(shape))} bytes of data for shape {shape}, got {len(body)}")
    return np.frombuffer(body, np.uint8).reshape(shape)


def fashion_mnist(seed: int) -> Dataset:
    folder = Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    arrays = {}
    for part, (images, labels, count) in FASHION_MNIST_FILES.items():
        paths = folder / images, folder / labels
        for path in paths:
            if not path.is_file():
                raise DatasetError(
                    f"fashion-mnist: expected {path} (Debian: apt-get install dataset-fashion-mnist; elsewhere put "
                    f"the four *-idx?-ubyte.gz files of github.com/zalandoresearch/fashion-mnist in a folder and "
                    f"set {FASHION_MNIST_ENV} to it), got no such file")
        x, y = read_idx(paths[0], 3), read_idx(paths[1], 1)
        if x.shape != (count, 28, 28) or y.shape != (count,):
            raise DatasetError(f"{paths[0]}: expected {count} images of 28 x 28 and {count} labels, got {x.shape} "
                               f"and {y.shape}")
        if y.max() > 9:
            raise DatasetError(f"{paths[1]}: expected labels 0..9, got {int(y.max())}")
        arrays[part] = x[:, None], y
    (x, y), (x_test, y_test) = arrays["train"], arrays["test"]
    return split("fashion-mnist", x, y, seed, validation=FASHION_MNIST_VALIDATION, x_test=x_test, y_test=y_test)


def digits(seed: int) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("digits: expected scikit-learn (pip install 'pynas[data]'), got it missing") from None
    bunch = load_digits()
    x = np.clip(bunch.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255, N x 1 x 8 x 8
    return split("digits", x, bunch.target, seed)


def _channels_first(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return np.moveaxis(x, 3, 1)
    raise DatasetError(f"{path}: {key}: expected N x H x W or N x H x W x C (channels last), got shape {x.shape}")


def _checked(x, y, path: Path, xkey: str, ykey: str) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{path}: {xkey}: expected uint8 or float images, got {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DatasetError(f"{path}: {xkey}: expected finite values, got NaN or inf")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: {ykey}: expected a 1-D array of integer labels, got {y.dtype} {y.shape}")
    if len(y) != len(x):
        raise DatasetError(f"{path}: {ykey}: expected {len(x)} labels (one per image of {xkey}), got {len(y)}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{path}: {ykey}: expected labels 0..K-1, got {int(y.min())}")
    x = _channels_first(x, path, xkey)
    return np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32)), y.astype(np.int64)


def npz(path: Path, seed: int) -> Dataset:
    if not path.is_file():
        raise DatasetError(f"dataset {path}: expected an .npz file with arrays x and y, got no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: expected an .npz file with arrays x and y, got {type(error).__name__}: "
                           f"{error}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: expected arrays x and y, got {sorted(arrays) or 'none'}")
    x, y = _checked(arrays["x"], arrays["y"], path, "x", "y")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DatasetError(f"{path}: expected both x_val and y_val or neither, got only "
                           f"{'x_val' if 'x_val' in arrays else 'y_val'}")
    if "x_val" not in arrays:
        return split(str(path), x, y, seed)
    x_val, y_val = _checked(arrays["x_val"], arrays["y_val"], path, "x_val", "y_val")
    if x_val.shape[1:] != x.shape[1:] or x_val.dtype != x.dtype:
        raise DatasetError(f"{path}: x_val: expected images like x's ({x.shape[1:]}, {x.dtype}), got "
                           f"{x_val.shape[1:]}, {x_val.dtype}")
    if not len(x) or not len(x_val):
        raise DatasetError(f"{path}: expected images in both x and x_val, got {len(x)} and {len(x_val)}")
    return make(str(path), x, y, x_val, y_val)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def image_folder(path: Path, seed: int) -> Dataset:
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"dataset {path}: reading image folders needs Pillow (pip install 'pynas[data]')") from None
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(f"dataset {path}: expected one sub-folder per class (at least 2), got {len(classes)}")
    images, labels, first = [], [], None
    for label, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{folder}: expected images ({', '.join(sorted(IMAGE_SUFFIXES))}), got none")
        for file in files:
            try:
                with Image.open(file) as image:
                    image.load()
                    mode, size, array = image.mode, image.size, np.asarray(image)
            except (OSError, ValueError) as error:
                raise DatasetError(f"{file}: expected an image, got {type(error).__name__}: {error}") from None
            if mode not in ("L", "RGB", "RGBA"):
                raise DatasetError(f"{file}: expected a grey (L), RGB or RGBA image, got mode {mode}")
            if first is None:
                first = (file, mode, size)
            elif (mode, size) != first[1:]:
                raise DatasetError(f"{file}: expected {first[1]} {first[2][0]}x{first[2][1]} like {first[0]}, got "
                                   f"{mode} {size[0]}x{size[1]}")
            images.append(array)
            labels.append(label)
    x, y = _checked(np.stack(images), np.array(labels), path, "images", "labels")
    return split(str(path), x, y, seed)
