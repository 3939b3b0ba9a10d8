"""The MnasNet space's weight-sharing supernet (Once-for-All, Cai et al. ICLR 2020), as modules.

Every choice of `pynas.space.mnasnet` lives in one set of weights, stored at its largest:

* kernel: 5 x 5 stored, a 3 x 3 is its centre (OFA without the kernel transform matrix);
* width (filters 0.75/1/1.25, and so every input width a layer can see): the first channels of
  the stored 1.25x width (conv outputs and inputs, BatchNorm, SE, the pool shortcut's 1x1 conv);
* expansion: the stored expand is 6 x the largest input; expansion 3 is its first half;
* depth: base + 1 layers stored per block, a sub-network runs the first ones;
* SE: one per op candidate and layer, used or not; its reduced width sliced like the rest;
* skip: identity needs no weights; the pool shortcut's 1x1 conv + BN (first layers only, where
  channels change) is shared by all ops of the layer;
* op: conv k x k, depthwise-separable and inverted residual cannot share weights: each layer holds
  the three as parallel candidates (mbconv3 and mbconv6 share the inverted residual's).

BatchNorm is per candidate and sliced (OFA's dynamic BN). Training normalises with the batch's
statistics and tracks no running statistics (a shared running mean is wrong for every sub-network
but one); a sub-network's statistics are recalibrated after `extract` (`pynas.train.supernet`).

`Supernet.forward(x, tokens)` computes what `build_torch(space.decode(tokens))` computes with the
weights `Supernet.extract(tokens)` copies into it (tests/test_train_supernet.py checks this).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pynas.arch import Arch, round_half_up
from pynas.ir.lower import expanded_channels, se_channels
from pynas.space.mnasnet import BASE_CHANNELS, BASE_LAYERS, FILTER_MULTIPLIERS, LAYER_DELTAS, MnasNetSpace
from pynas.torch_builder import Block, Network, build_torch, init_conv, init_norm_or_linear

MAX_KERNEL = 5
MAX_EXPANSION = 6.0
SE_RATIO = 0.25
_ACT = "re"  # the space's only activation (ReLU throughout, as MnasNet)


class DynamicConv(nn.Module):
    """A conv stored at (cout_max, cin_max / groups, k_max, k_max); a sub-network takes the first
    output and input channels and the centre k x k. Depthwise: groups = channels of the input."""

    def __init__(self, cin: int, cout: int, kernel: int, depthwise: bool = False, bias: bool = False):
        super().__init__()
        self.depthwise = depthwise
        self.weight = nn.Parameter(torch.empty(cout, 1 if depthwise else cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def sliced(self, cout: int, cin: int, kernel: int) -> torch.Tensor:
        start = (self.weight.shape[-1] - kernel) // 2
        return self.weight[:cout, :1 if self.depthwise else cin, start:start + kernel, start:start + kernel]

    def forward(self, x: torch.Tensor, cout: int, kernel: int = 1, stride: int = 1) -> torch.Tensor:
        cin = x.shape[1]
        if self.depthwise:
            cout = cin
        bias = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, self.sliced(cout, cin, kernel), bias, stride, kernel // 2,
                        groups=cin if self.depthwise else 1)

    def export(self, conv: nn.Conv2d) -> None:
        """Copy the slice of `conv`'s shape into it."""
        cout, cin_per_group, kernel, _ = conv.weight.shape
        cin = conv.in_channels
        conv.weight.data.copy_(self.sliced(cout, cin, kernel))
        if conv.bias is not None:
            conv.bias.data.copy_(self.bias[:cout])


class DynamicBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the first C channels of its stored width. In training mode it normalises with
    the batch statistics and updates no running statistics (see the module docstring)."""

    def __init__(self, channels: int):
        super().__init__(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if self.training:
            return F.batch_norm(x, None, None, self.weight[:c], self.bias[:c], True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c], False,
                            0.0, self.eps)

    def export(self, bn: nn.BatchNorm2d) -> None:
        c = bn.num_features
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).data.copy_(getattr(self, name)[:c])


class DynamicConvBn(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, depthwise: bool = False):
        super().__init__()
        self.conv = DynamicConv(cin, cout, kernel, depthwise)
        self.bn = DynamicBatchNorm(cout)

    def forward(self, x, cout: int, kernel: int = 1, stride: int = 1, act: bool = False):
        y = self.bn(self.conv(x, cout, kernel, stride))
        return F.relu(y) if act else y

    def export(self, module: nn.Sequential) -> None:
        """Into a `torch_builder.ConvBnAct` (conv, BN[, act])."""
        self.conv.export(module[0])
        self.bn.export(module[1])


class DynamicSqueezeExcite(nn.Module):
    """MnasNet's SE (ReLU inside, sigmoid gate) on the first C channels, reduced to R."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = DynamicConv(channels, reduced, 1, bias=True)
        self.expand = DynamicConv(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor, reduced: int) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(scale, reduced)), x.shape[1]))

    def export(self, se) -> None:
        self.reduce.export(se.reduce)
        self.expand.export(se.expand)


@dataclass(frozen=True)
class LayerChoice:
    """One layer of a sub-network: what `torch_builder.Block` builds from (stage, cin, stride)."""
    block: str  # cn, ds, ir
    expansion: float
    kernel: int
    se_reduced: int  # 0: no SE
    skip: str  # identity, pool, none
    cin: int
    cout: int
    stride: int

    @property
    def mid(self) -> int:
        return {"ir": expanded_channels(self.cin, self.expansion), "ds": self.cin}.get(self.block, self.cout)

    @property
    def identity(self) -> bool:
        return self.skip == "identity" and self.stride == 1 and self.cin == self.cout


class SuperLayer(nn.Module):
    """One layer position of a block: the three op candidates and the pool shortcut."""

    def __init__(self, cin: int, cout: int, pool_conv: bool):
        super().__init__()
        reduced = max(1, round_half_up(cin * SE_RATIO))
        mid = round_half_up(cin * MAX_EXPANSION)
        self.conv = nn.ModuleDict(dict(conv=DynamicConvBn(cin, cout, MAX_KERNEL),
                                       se=DynamicSqueezeExcite(cout, reduced)))
        self.ds = nn.ModuleDict(dict(dw=DynamicConvBn(cin, cin, MAX_KERNEL, depthwise=True),
                                     se=DynamicSqueezeExcite(cin, reduced), project=DynamicConvBn(cin, cout, 1)))
        self.ir = nn.ModuleDict(dict(expand=DynamicConvBn(cin, mid, 1),
                                     dw=DynamicConvBn(mid, mid, MAX_KERNEL, depthwise=True),
                                     se=DynamicSqueezeExcite(mid, reduced), project=DynamicConvBn(mid, cout, 1)))
        # Later layers of a block keep their width: only a first layer's pool shortcut has a conv.
        self.pool = DynamicConvBn(cin, cout, 1) if pool_conv else None

    def _body_modules(self, choice: LayerChoice) -> list[tuple[nn.Module, str]]:
        """(module, role) in the order of `torch_builder.Block.body`."""
        if choice.block == "ir":
            parts = [(self.ir["expand"], "expand"), (self.ir["dw"], "dw")]
            candidate = self.ir
        elif choice.block == "ds":
            parts, candidate = [(self.ds["dw"], "dw")], self.ds
        else:
            parts, candidate = [(self.conv["conv"], "conv")], self.conv
        if choice.se_reduced:
            parts.append((candidate["se"], "se"))
        if choice.block != "cn":
            parts.append((candidate["project"], "project"))
        return parts

    def forward(self, x: torch.Tensor, choice: LayerChoice) -> torch.Tensor:
        y = x
        for module, role in self._body_modules(choice):
            if role == "expand":
                y = module(y, choice.mid, act=True)
            elif role in ("dw", "conv"):
                y = module(y, choice.cout, choice.kernel, choice.stride, act=True)
            elif role == "se":
                y = module(y, choice.se_reduced)
            else:
                y = module(y, choice.cout)
        if choice.identity:
            return y + x
        if choice.skip == "pool":
            shortcut = F.avg_pool2d(x, 3, choice.stride, 1, count_include_pad=False)
            if choice.cin != choice.cout:
                shortcut = self.pool(shortcut, choice.cout)
            return y + shortcut
        return y

    def export(self, block: Block, choice: LayerChoice) -> None:
        parts = self._body_modules(choice)
        targets = list(block.body)
        if len(targets) != len(parts):
            raise AssertionError(f"layer {choice}: built body has {len(targets)} modules, supernet {len(parts)}")
        for (module, _), target in zip(parts, targets):
            module.export(target)
        if choice.skip == "pool" and choice.cin != choice.cout:
            self.pool.export(block.shortcut[1])


class Supernet(nn.Module):
    """Every sub-network of a MnasNet space (`get_space("mnasnet", ...)`) in one set of weights."""

    def __init__(self, space: MnasNetSpace):
        super().__init__()
        if not isinstance(space, MnasNetSpace):
            raise ValueError(f"space: expected the mnasnet space, got {getattr(space, 'name', type(space).__name__)}")
        self.space = space
        arch = space.decode((0,) * len(space.decisions))
        self.in_channels = self.input_channels(space)
        stem, head = arch.stem, arch.head
        self.stem = DynamicConvBn(self.in_channels, stem.channels, stem.kernel)
        widths = [tuple(round_half_up(c * m) for m in FILTER_MULTIPLIERS) for c in BASE_CHANNELS]
        inputs = {stem.channels}  # every width the next block's input can have
        blocks = []
        for block, layers in enumerate(BASE_LAYERS):
            cin, cout = max(inputs), max(widths[block])
            most = layers + max(LAYER_DELTAS)
            blocks.append(nn.ModuleList(SuperLayer(cin if i == 0 else cout, cout, pool_conv=i == 0)
                                        for i in range(most)))
            can_be_empty = layers + min(LAYER_DELTAS) == 0
            inputs = set(widths[block]) | (inputs if can_be_empty else set())
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = DynamicConvBn(max(inputs), head.channels, 1)
        self.classifier = nn.Linear(head.channels, space.num_classes)
        self._stem_arch, self._head_arch = stem, head
        _init_weights(self)

    @staticmethod
    def input_channels(space: MnasNetSpace) -> int:
        """Channels of the space's input images."""
        return space.in_channels

    def choices(self, arch: Arch) -> list[list[LayerChoice]]:
        """Per block, the layers `arch` runs (checked to be an architecture of this space)."""
        self.space.encode(arch)  # ValueError naming what is outside the space
        cin = arch.stem.channels
        blocks = []
        for stage in arch.stages:
            layers = []
            for repeat in range(stage.repeats):
                reduced = se_channels(arch, stage, cin, 0) if stage.se_ratio > 0 else 0
                layers.append(LayerChoice(stage.block, stage.expansion, stage.kernel, reduced, stage.skip, cin,
                                          stage.channels, stage.stride if repeat == 0 else 1))
                cin = stage.channels
            blocks.append(layers)
        return blocks

    def forward(self, x: torch.Tensor, tokens: Sequence[int] | Arch) -> torch.Tensor:
        arch = tokens if isinstance(tokens, Arch) else self.space.decode(tokens)
        y = self.stem(x, arch.stem.channels, arch.stem.kernel, arch.stem.stride, act=True)
        for layers, choices in zip(self.blocks, self.choices(arch)):
            for layer, choice in zip(layers, choices):
                y = layer(y, choice)
        y = self.head_conv(y, arch.head.channels, act=True).mean((2, 3))
        return self.classifier(y)

    @torch.no_grad()
    def extract(self, tokens: Sequence[int] | Arch) -> Network:
        """`build_torch` of the sub-network's architecture holding the supernet's weights (and BN
        statistics, which are meaningful only after recalibration), in eval mode."""
        arch = tokens if isinstance(tokens, Arch) else self.space.decode(tokens)
        net = build_torch(arch)
        self.stem.export(net.stem)
        built = iter(net.blocks)
        for layers, choices in zip(self.blocks, self.choices(arch)):
            for layer, choice in zip(layers, choices):
                layer.export(next(built), choice)
        self.head_conv.export(net.head.conv)
        net.head.classifier.weight.copy_(self.classifier.weight)
        net.head.classifier.bias.copy_(self.classifier.bias)
        return net.eval()


def _init_weights(module: nn.Module) -> None:
    """As `torch_builder` (He init with a grouped conv's true fan out; unit BN; small classifier
    weights): a stored depthwise kernel (channels, 1, k, k) is a conv of `channels` groups."""
    for m in module.modules():
        if isinstance(m, DynamicConv):
            init_conv(m.weight, m.weight.shape[0] if m.depthwise else 1)
        else:
            init_norm_or_linear(m)
