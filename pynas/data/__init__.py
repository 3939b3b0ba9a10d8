"""Datasets for accuracy evaluators: images as numpy arrays with a seeded train/validation split.

    from pynas.data import load_dataset
    data = load_dataset("fashion-mnist", seed=0)     # or "digits", a folder, a file.npz
    data.x_train.shape     # (50000, 1, 28, 28) uint8, N x C x H x W
    data.num_classes, data.channels, data.resolution, data.sha256

Specs (nothing is ever downloaded):

* ``fashion-mnist``: Zalando's Fashion-MNIST (60,000 + 10,000 grey 28x28 images, 10 classes, MIT
  licence) from Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/``),
  or from the folder ``PYNAS_FASHION_MNIST`` names (the four ``*-idx?-ubyte.gz`` files). The
  validation split is a seeded 10,000 of the 60,000 training images (as MnasNet held out part of
  ImageNet's training set); the official 10,000 test images are ``x_test``/``y_test``, kept out of
  any search.
* ``digits``: scikit-learn's 1,797 grey 8x8 digits (values 0..16 scaled to 0..255), 10 classes:
  for fast tests. A seeded 20% is the validation split.
* ``PATH.npz``: arrays ``x`` (N x H x W grey, or N x H x W x C channels-last, uint8 or float) and
  ``y`` (N integer labels 0..K-1); optional ``x_val``/``y_val`` for a fixed validation split,
  else a seeded 20%.
* ``PATH/`` (a folder): ImageFolder-style, one sub-folder per class (sorted names are the labels
  0..K-1) holding images of one size and mode (PNG, JPEG, ...; needs Pillow, the ``data`` extra);
  a seeded 20% is the validation split.

The architecture's header decides what a network takes (`Arch.resolution`, `Arch.in_channels`):
evaluators resize images to the header's resolution and refuse an architecture whose input
channels differ from the data's (`check_feeds`).
"""
from pynas.data.dataset import Dataset, DatasetError, check_feeds
from pynas.data.load import load_dataset

__all__ = ["Dataset", "DatasetError", "check_feeds", "load_dataset"]
