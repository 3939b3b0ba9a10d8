"""NAS-Bench-201's network for a cell, in PyTorch (its CIFAR skeleton, as the benchmark trained it).

    model = build_nb201("|nor_conv_3x3~0|+|...|", num_classes=10)   # N x 3 x 32 x 32 -> N x 10
    count_params(cell)                                               # the same count, without building

The skeleton (Dong & Yang 2020, their `TinyNetwork`): a 3x3 conv stem (3 -> C, no bias) + BN;
three stages of `cells_per_stage` cells at C, 2C, 4C channels, separated by a ResNet basic block of
stride 2 (ReLU-Conv3x3-BN twice, the shortcut a 2x2 average pool + 1x1 conv without BN); then BN,
ReLU, global average pool and a linear classifier. A cell's node j (1..3) is the sum of its
incoming edges, node 0 the cell's input, node 3 its output. Edge ops at the cell's width C:
``nor_conv_3x3``/``nor_conv_1x1`` ReLU-Conv-BN (no conv bias, affine BN), ``avg_pool_3x3`` a 3x3
average pool (stride 1, padding not counted), ``skip_connect`` the identity, ``none`` zeros (kept
in the autograd graph as the benchmark's `Zero` op is, `x * 0`).

Weights keep PyTorch's default initialisation (what the benchmark's code and the zero-cost proxy
papers score at init): seed with `torch.manual_seed` before building for a reproducible model.
With C = 16 and 10 classes the parameter count equals the benchmark's ``params_M_cifar10`` for all
15,625 cells (tests/test_train_nb201.py).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from pynas.space.nb201 import EDGES, NODES, Cell


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        # ReLU not in place: NASWOT reads each ReLU's input in a forward hook.
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class Zero(nn.Module):
    """The `none` edge: zeros, multiplied rather than created so that gradients (of zero) still
    flow as in the benchmark's code."""

    def forward(self, x):
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """The module of edge op `name` in a cell of width `channels` (stride 1, in = out channels)."""
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity()
    if name == "none":
        return Zero()
    raise ValueError(f"op: expected one of nor_conv_3x3, nor_conv_1x1, avg_pool_3x3, skip_connect, none, got {name!r}")


class NB201Cell(nn.Module):
    def __init__(self, cell: Cell, channels: int):
        super().__init__()
        self.cell = cell
        self.edges = nn.ModuleList(make_op(op, channels) for op in cell.ops)  # in EDGES order

    def forward(self, x):
        nodes = [x]
        for j in range(1, NODES):
            nodes.append(sum(self.edges[k](nodes[i]) for k, (i, target) in enumerate(EDGES) if target == j))
        return nodes[-1]


class ResNetReduction(nn.Module):
    """The block between stages: halves the resolution, changes the width."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride=2)
        self.conv_b = ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    def __init__(self, cell: Cell, num_classes: int, channels: int, cells_per_stage: int):
        super().__init__()
        self.cell = cell
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers, width = [], channels
        for stage in range(3):
            if stage:
                layers.append(ResNetReduction(width, width * 2))
                width *= 2
            layers += [NB201Cell(cell, width) for _ in range(cells_per_stage)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(x.mean((2, 3)), 1))


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


def build_nb201(cell: Cell | str, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> NB201Network:
    """NAS-Bench-201's network for `cell` (a Cell or the benchmark's string), taking N x 3 x 32 x 32
    (any size the three stages can halve twice works)."""
    cell = _cell(cell)
    _check(num_classes, channels, cells_per_stage)
    return NB201Network(cell, num_classes, channels, cells_per_stage)


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.cache
def _op_params(name: str, channels: int) -> int:
    return _numel(make_op(name, channels))


@functools.cache
def _skeleton_params(num_classes: int, channels: int) -> int:
    """Everything but the cells: built once with empty cells (`none` everywhere has no parameters)."""
    return _numel(NB201Network(Cell(("none",) * len(EDGES)), num_classes, channels, 1))


def count_params(cell: Cell | str, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> int:
    """The parameter count of `build_nb201(...)` without building it: the skeleton's, plus each
    edge op's at each stage's width, counted from the modules themselves (built once per op and
    width), times the cells per stage."""
    cell = _cell(cell)
    _check(num_classes, channels, cells_per_stage)
    per_stage = (sum(_op_params(op, width) for op in cell.ops) for width in (channels, 2 * channels, 4 * channels))
    return _skeleton_params(num_classes, channels) + cells_per_stage * sum(per_stage)


__all__ = ["NB201Network", "build_nb201", "count_params", "make_op"]
