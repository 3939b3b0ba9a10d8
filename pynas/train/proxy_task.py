"""The proxy task: how a searched architecture meets a dataset it was not shaped for.

A search space describes deployment-shaped networks (MnasNet's: 224 px RGB, 1000 classes), whose
latency the predictor knows. Training those on ImageNet inside a search is out of reach on a CPU,
so by default the *body* of the architecture (its stem, stages and head: what the search decides)
is trained with its header adapted to the data:

* input channels := the data's (``in1`` for Fashion-MNIST's grey images),
* classes := the data's,
* resolution := `resolution` (default: the data's own, which must then be square),
* every stem/stage width x `width_mult` (default 1.0; `pynas.arch.scale_width`, MobileNet's rule).

The accuracy is thus a proxy (a ranking signal among architectures, as MnasNet's 5-epoch
training was), not the deployed network's accuracy. With `exact=True` nothing is adapted: the
header must already match the data (channels, classes and resolution), else the architecture is
refused with the one-line reason.
"""
from __future__ import annotations

from pynas.arch import Arch, scale_width
from pynas.data import Dataset, DatasetError, check_feeds


def data_resolution(data: Dataset) -> int | None:
    """The data's resolution as one side (None if its images are not square)."""
    h, w = data.resolution
    return h if h == w else None


def adapt(arch: Arch, data: Dataset, *, resolution: int | None = None, width_mult: float = 1.0,
          exact: bool = False) -> Arch:
    """The architecture to train for `arch` on `data` (see the module docstring)."""
    if exact:
        check_feeds(data, arch)
        own = data_resolution(data)
        if arch.resolution != own:
            h, w = data.resolution
            wanted = h if own else f"{h}x{w} (not square: no architecture fits)"
            raise DatasetError(f"architecture {arch}: resolution: expected {wanted} (the images of {data.name}; "
                               f"exact=True adapts nothing), got {arch.resolution}")
        return arch
    if resolution is None:
        resolution = data_resolution(data)
        if resolution is None:
            h, w = data.resolution
            raise ValueError(f"resolution: expected an integer (the images of {data.name} are {h}x{w}, not square), "
                             f"got none")
    adapted = arch.replace(in_channels=data.channels, num_classes=data.num_classes, resolution=resolution)
    return adapted if width_mult == 1.0 else scale_width(adapted, width_mult)


def describe(data: Dataset, *, resolution: int | None, width_mult: float, exact: bool) -> str:
    """One phrase: what `adapt` does to a header."""
    if exact:
        return "header as searched (exact: it must match the data)"
    res = resolution if resolution is not None else data_resolution(data)
    widths = "" if width_mult == 1.0 else f", widths x{width_mult:g}"
    return f"header adapted to in{data.channels} cls{data.num_classes} res{res}{widths}"


__all__ = ["adapt", "data_resolution", "describe"]
