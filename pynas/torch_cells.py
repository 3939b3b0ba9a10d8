"""PyTorch modules of cell networks (`pynas.cell.CellNet`); `pynas.torch_builder.build_torch` builds them.

    model = build_torch(pynas.cell.parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:..."))

The module mirrors `pynas.ir.cells` op for op (its docstring says how each part lowers): the same
convs in the same order (forward hooks see them as the IR lists them), no module for an absent
(``none``) edge, a tensor of zeros for a node without edges. The ops are those of the reference code
of NAS-Bench-201 (`ReLUConvBN`, `ResNetBasicblock`) and DARTS (`SepConv`, `DilConv`,
`FactorizedReduce`, pools), with their layouts, so that parameter counts are theirs: all 15,625
NAS-Bench-201 networks' equal the benchmark's (tests/test_train_nb201.py), DARTS V2's 3.349342 M.

Weights keep PyTorch's default initialisation, as both reference codes do and as the zero-cost proxies
score networks at init: seed with `torch.manual_seed` before building for a reproducible model.
ReLUs are not in place (NASWOT reads each ReLU's input in a forward hook).
"""
from __future__ import annotations

import torch
from torch import nn

from pynas.cell import CellNet, CellSpec, Edge


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class SepConv(nn.Sequential):
    """DARTS's separable conv: (ReLU, kxk depthwise, 1x1 conv, BN) twice; the first with the stride."""

    def __init__(self, channels: int, kernel: int, stride: int):
        layers = []
        for s in (stride, 1):
            layers += [nn.ReLU(inplace=False),
                       nn.Conv2d(channels, channels, kernel, s, kernel // 2, groups=channels, bias=False),
                       nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)]
        super().__init__(*layers)


class DilConv(nn.Sequential):
    """DARTS's dilated conv: ReLU, kxk depthwise with dilation 2, 1x1 conv, BN."""

    def __init__(self, channels: int, kernel: int, stride: int):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(channels, channels, kernel, stride, kernel - 1, dilation=2, groups=channels,
                                   bias=False),
                         nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))


class FactorizedReduce(nn.Module):
    """DARTS's stride-2 identity: ReLU, two 1x1 convs of stride 2 (on x and on x shifted by a pixel),
    each to half the channels, concatenated, BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_edge(edge: Edge, channels: int, stride: int) -> nn.Module:
    """The module of one edge of a cell of width `channels` (in = out channels)."""
    op, k = edge.op, int(edge.op[-1]) if edge.op != "skip" else 1
    if op == "skip":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if op.startswith("conv"):
        return ReLUConvBN(channels, channels, k, stride)
    if op.startswith("sep"):
        return SepConv(channels, k, stride)
    if op.startswith("dil"):
        return DilConv(channels, k, stride)
    if op.startswith("avg"):
        return nn.AvgPool2d(k, stride, k // 2, count_include_pad=False)
    return nn.MaxPool2d(k, stride, k // 2)


class Cell(nn.Module):
    """One cell: its inputs' preprocessing (darts), its edges (in the genotype's canonical order),
    nodes that sum them, and its output (the last node or a concatenation)."""

    def __init__(self, spec: CellSpec, channels: int, preprocess: tuple[nn.Module, ...] = ()):
        super().__init__()
        self.spec, self.channels = spec, channels
        self.preprocess = nn.ModuleList(preprocess)
        self.edges = nn.ModuleList(make_edge(e, channels, spec.stride(e.source)) for node in spec.nodes
                                   for e in node.edges)

    def forward(self, *inputs):
        if self.preprocess:
            inputs = [p(x) for p, x in zip(self.preprocess, inputs)]
        first = inputs[0]
        scale = 2 if self.spec.kind == "reduce" else 1
        zeros = None
        states: list[torch.Tensor | None] = list(inputs)

        def state(i):
            nonlocal zeros
            if states[i] is not None:
                return states[i]
            if zeros is None:  # a node with no edge; zeros share no storage with anything written
                n, _, h, w = first.shape
                zeros = first.new_zeros(n, self.channels, h // scale, w // scale)
            return zeros

        edges = iter(self.edges)
        for node in self.spec.nodes:
            outs = [next(edges)(state(e.source)) for e in node.edges]
            states.append(None if not outs else outs[0] if len(outs) == 1 else sum(outs[1:], outs[0]))
        chosen = [state(i) for i in self.spec.concat()]
        return chosen[0] if len(chosen) == 1 else torch.cat(chosen, dim=1)


class ResNetReduction(nn.Module):
    """NAS-Bench-201's block between stages: halves the resolution, changes the width."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride=2)
        self.conv_b = ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class CellNetwork(nn.Module):
    """A cell network: ``stem``, ``layers`` (cells and, for nb201, the ResNet blocks), ``lastact``
    (nb201's BN + ReLU; None for darts), ``classifier``."""

    def __init__(self, net: CellNet):
        super().__init__()
        self.arch = net
        nb201 = net.skeleton == "nb201"
        stem = net.channels * (1 if nb201 else 3)
        self.stem = nn.Sequential(nn.Conv2d(net.in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem))
        layers, widths, reduction_before = [], [stem, stem], False  # widths: outputs of the layers so far
        for kind, width in net.layout():
            if kind == "resblock":
                layers.append(ResNetReduction(widths[-1], width))
                widths.append(width)
                continue
            spec = net.cell(kind)
            if nb201:
                layers.append(Cell(spec, width))
                widths.append(width)
                continue
            older = FactorizedReduce(widths[-2], width) if reduction_before else ReLUConvBN(widths[-2], width, 1)
            layers.append(Cell(spec, width, (older, ReLUConvBN(widths[-1], width, 1))))
            widths.append(width * len(spec.concat()))
            reduction_before = kind == "reduce"
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=False)) if nb201 else None
        self.classifier = nn.Linear(widths[-1], net.num_classes)

    def forward(self, x):
        x = self.stem(x)
        if self.lastact is not None:
            for layer in self.layers:
                x = layer(x)
            x = self.lastact(x)
        else:
            older = newer = x
            for layer in self.layers:
                older, newer = newer, layer(older, newer)
            x = newer
        return self.classifier(torch.flatten(x.mean((2, 3)), 1))


__all__ = ["Cell", "CellNetwork", "DilConv", "FactorizedReduce", "ReLUConvBN", "ResNetReduction", "SepConv",
           "make_edge"]
