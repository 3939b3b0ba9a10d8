"""NAS-Bench-201's network for a cell, in PyTorch (its CIFAR skeleton, as the benchmark trained it).

    model = build_nb201("|nor_conv_3x3~0|+|...|", num_classes=10)   # N x 3 x 32 x 32 -> N x 10
    count_params(cell)                                               # the same count, without building

One builder: the network is the cell's cell-form network (`pynas.space.nb201.Cell.network`, a
`pynas.cell.CellNet` of the ``nb201`` skeleton) built by `pynas.torch_builder.build_torch`
(`pynas.torch_cells`), the same network pynas lowers, prices and runs. The skeleton (Dong & Yang
2020, their `TinyNetwork`): a 3x3 conv stem (3 -> C, no bias) + BN; three stages of
`cells_per_stage` cells at C, 2C, 4C channels, separated by a ResNet basic block of stride 2; BN,
ReLU, global average pool and a linear classifier. Edge ops: ``nor_conv_3x3``/``nor_conv_1x1``
ReLU-Conv-BN, ``avg_pool_3x3`` a 3x3 average pool (padding not counted), ``skip_connect`` the
identity; a ``none`` edge is no module (the benchmark's `Zero` multiplies by 0: the same values and
gradients), a node with no edge a tensor of zeros.

Weights keep PyTorch's default initialisation (what the benchmark's code and the zero-cost proxy
papers score at init): seed with `torch.manual_seed` before building for a reproducible model.
With C = 16 and 10 classes the parameter count equals the benchmark's ``params_M_cifar10`` for all
15,625 cells (tests/test_train_nb201.py); `count_params` counts it from the lowered network.
"""
from __future__ import annotations

from torch import nn

from pynas.ir import lower
from pynas.space.nb201 import Cell
from pynas.torch_builder import build_torch


def _cell(cell: Cell | str) -> Cell:
    if isinstance(cell, str):
        return Cell.parse(cell)
    if not isinstance(cell, Cell):
        raise ValueError(f"cell: expected a NAS-Bench-201 Cell or its string, got {type(cell).__name__}")
    return cell


def _check(num_classes, channels, cells_per_stage) -> None:
    for name, value in (("num_classes", num_classes), ("channels", channels), ("cells_per_stage", cells_per_stage)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


def build_nb201(cell: Cell | str, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> nn.Module:
    """NAS-Bench-201's network for `cell` (a Cell or the benchmark's string), taking N x 3 x 32 x 32
    (any size the three stages can halve twice works)."""
    cell = _cell(cell)
    _check(num_classes, channels, cells_per_stage)
    return build_torch(cell.network(num_classes, channels, cells_per_stage))


def count_params(cell: Cell | str, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> int:
    """The parameter count of `build_nb201(...)` without building it: the lowered network's
    (`pynas.ir`; tests check it against the built modules)."""
    cell = _cell(cell)
    _check(num_classes, channels, cells_per_stage)
    return lower(cell.network(num_classes, channels, cells_per_stage)).params


__all__ = ["build_nb201", "count_params"]
