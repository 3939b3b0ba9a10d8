"""Datasets: Fashion-MNIST from Debian's package, scikit-learn's digits, .npz files and image folders,
split with a seed; every bad input a DatasetError naming the path and what was expected."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from pynas.arch import parse
from pynas.data import DatasetError, check_feeds, load_dataset
from pynas.data.sources import FASHION_MNIST_DIR, FASHION_MNIST_ENV

HAS_FASHION_MNIST = (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.skipif(not HAS_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_split_is_seeded_and_disjoint():
    a, b, c = load_dataset("fashion-mnist", seed=0), load_dataset("fashion-mnist", seed=0), load_dataset("fashion-mnist", seed=1)
    assert a.x_train.shape == (50000, 1, 28, 28) and a.x_val.shape == (10000, 1, 28, 28)
    assert a.x_test.shape == (10000, 1, 28, 28) and a.num_classes == 10 and a.channels == 1
    assert a.sha256 == b.sha256 != c.sha256
    assert np.array_equal(a.y_val, b.y_val) and not np.array_equal(a.y_val, c.y_val)
    assert np.bincount(a.y_val).min() > 800  # a random 10,000 of 60,000: every class present


def test_digits():
    data = load_dataset("digits", seed=3)
    assert data.x_train.shape == (1438, 1, 8, 8) and data.x_val.shape == (359, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255 and data.num_classes == 10
    assert data.resolution == (8, 8) and len(data.sha256) == 64
    mean, std = data.channel_stats()
    assert mean.shape == std.shape == (1,) and 0 < mean[0] < 1


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(folder: Path, train=60000, test=10000) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (train, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, train))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (test, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, test))


def test_fashion_mnist_from_the_environment_folder(tmp_path, monkeypatch):
    fake_fashion_mnist(tmp_path)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    assert load_dataset("fashion-mnist").x_train.shape == (50000, 1, 28, 28)


def test_fashion_mnist_missing_or_broken_files_name_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz \(Debian: apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    fake_fashion_mnist(tmp_path, train=100)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: expected 60000 images of 28 x 28"):
        load_dataset("fashion-mnist")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: expected a gzip'd idx file"):
        load_dataset("fashion-mnist")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 10)
    with pytest.raises(DatasetError, match=r"expected 47040000 bytes of data for shape \(60000, 28, 28\), got 10"):
        load_dataset("fashion-mnist")


def test_npz_channels_last_and_fixed_validation(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.integers(0, 256, (50, 12, 10, 3), dtype=np.uint8), y=np.arange(50) % 5)
    data = load_dataset(str(path), seed=1)
    assert data.x_train.shape == (40, 3, 12, 10) and data.num_classes == 5 and data.resolution == (12, 10)
    np.savez(path, x=rng.random((20, 6, 6), dtype=np.float32), y=np.arange(20) % 2,
             x_val=rng.random((4, 6, 6), dtype=np.float32), y_val=np.array([0, 1, 1, 0]))
    data = load_dataset(str(path))
    assert data.x_train.shape == (20, 1, 6, 6) and data.x_val.shape == (4, 1, 6, 6) and data.x_train.dtype == np.float32


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 2, 2), np.uint8)}, r"expected arrays x and y, got \['x'\]"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(3, int)}, r"y: expected 4 labels \(one per image of x\), got 3"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.array([0, 1, -1, 0])}, r"y: expected labels 0..K-1, got -1"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(4)}, r"y: expected a 1-D array of integer labels, got float64"),
    ({"x": np.zeros((4, 2), np.uint8), "y": np.zeros(4, int)}, r"x: expected N x H x W or N x H x W x C"),
    ({"x": np.full((4, 2, 2), np.nan, np.float32), "y": np.zeros(4, int)}, r"x: expected finite values"),
    ({"x": np.zeros((4, 2, 2), "U1"), "y": np.zeros(4, int)}, r"x: expected uint8 or float images, got <U1"),
    ({"x": np.zeros((1, 2, 2), np.uint8), "y": np.zeros(1, int)}, r"expected at least 2 images"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(4, int), "x_val": np.zeros((2, 2, 2), np.uint8)},
     r"expected both x_val and y_val or neither, got only x_val"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(4, int), "x_val": np.zeros((2, 3, 3), np.uint8),
      "y_val": np.zeros(2, int)}, r"x_val: expected images like x's"),
])
def test_bad_npz_names_file_and_field(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as error:
        load_dataset(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_bad_specs(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(str(tmp_path / "nothing"))
    with pytest.raises(DatasetError, match="got no such file"):
        load_dataset(str(tmp_path / "nothing.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="junk.npz: expected an .npz file with arrays x and y"):
        load_dataset(str(tmp_path / "junk.npz"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="got a file of another kind"):
        load_dataset(str(tmp_path / "file.txt"))
    with pytest.raises(DatasetError, match="seed: expected an integer >= 0"):
        load_dataset("digits", seed=-1)
    with pytest.raises(DatasetError, match="dataset: expected fashion-mnist, digits"):
        load_dataset("")


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "emu"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    data = load_dataset(str(tmp_path), seed=0)
    assert data.num_classes == 3 and data.x_train.shape[1:] == (3, 9, 7) and len(data.x_train) + len(data.x_val) == 12
    Image.fromarray(rng.integers(0, 256, (5, 5), dtype=np.uint8)).save(tmp_path / "emu" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd.png: expected RGB 7x9 like .*, got L 5x5"):
        load_dataset(str(tmp_path))
    (tmp_path / "emu" / "odd.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"odd.png: expected an image"):
        load_dataset(str(tmp_path))


def test_image_folder_needs_class_folders(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(DatasetError, match=r"expected one sub-folder per class \(at least 2\), got 1"):
        load_dataset(str(tmp_path))
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match=r"only: expected images"):
        load_dataset(str(tmp_path))


def test_check_feeds_names_the_header_field():
    data = load_dataset("digits")
    check_feeds(data, parse("net_res8_cls10_in1:stem_k3_s1_c8:ir_r1_k3_s1_e6_c8:head_c16"))
    with pytest.raises(DatasetError, match=r"in_channels: expected 1 .*write in1 in the header\), got 3"):
        check_feeds(data, parse("net_res8_cls10:stem_k3_s1_c8:ir_r1_k3_s1_e6_c8:head_c16"))
    with pytest.raises(DatasetError, match=r"num_classes: expected 10 .*got 100"):
        check_feeds(data, parse("net_res8_cls100_in1:stem_k3_s1_c8:ir_r1_k3_s1_e6_c8:head_c16"))
