"""Build a PyTorch module from an architecture (the only place torch is needed to build models).

The module mirrors `pynas.ir.lower` op for op (see its docstring for how each block lowers):
BatchNorm after every conv except the SE's and the pool-first head's (those have biases), the
activation after BN, linear projections, and residuals as the architecture's skip says; grouped
``ir`` blocks (``g2``) with grouped 1x1 convs and a `ChannelShuffle` after the expand, and ``id``
layers (FBNet's skip) as an identity or a 1x1 conv + BN + act. Blocks are flat in
``Network.blocks`` (one per repeat, an identity ``id`` repeat included) and ``forward`` is a
straight line. Cell networks (`pynas.cell`) are built by `pynas.torch_cells`, through `build_torch`
too: one builder for every network pynas describes.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pynas.arch import Arch, Stage
from pynas.ir.lower import expanded_channels, se_channels

_ACTIVATIONS = {"re": nn.ReLU, "r6": nn.ReLU6, "hs": nn.Hardswish, "sw": nn.SiLU}
_GATES = {"sigmoid": nn.Sigmoid, "hsigmoid": nn.Hardsigmoid}


def activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name](inplace=True)


class ConvBnAct(nn.Sequential):
    """k x k conv (padding k // 2) + BN [+ activation]; with bn=False the conv has a bias instead."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = None, bn: bool = True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int, act: str, gate: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = _GATES[gate]()

    def forward(self, x):
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle (as HW-NAS-Bench's FBNet ConvBlock does it): channels viewed as
    groups x (C / groups), transposed; output channel j * groups + g is input channel g * C/g + j."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class PoolShortcut(nn.Sequential):
    """3x3 average pool with the block's stride, then a 1x1 conv + BN if channels change."""

    def __init__(self, cin: int, cout: int, stride: int):
        layers = [nn.AvgPool2d(3, stride, 1, count_include_pad=False)]
        if cin != cout:
            layers.append(ConvBnAct(cin, cout, 1))
        super().__init__(*layers)


class Block(nn.Module):
    """One repeat of a stage: body, plus a shortcut (identity, pooling) added to its output."""

    def __init__(self, arch: Arch, stage: Stage, cin: int, stride: int):
        super().__init__()
        cout, act, k, g = stage.channels, stage.act, stage.kernel, stage.groups
        layers: list[nn.Module] = []
        self.shortcut = None
        if stage.block == "id":
            keeps_shape = stride == 1 and cin == cout
            self.body = nn.Identity() if keeps_shape else ConvBnAct(cin, cout, 1, stride, act=act)
            return
        if stage.block == "ir":
            mid = expanded_channels(cin, stage.expansion)
            layers.append(ConvBnAct(cin, mid, 1, groups=g, act=act))
            if g > 1:
                layers.append(ChannelShuffle(g))
            layers.append(ConvBnAct(mid, mid, k, stride, groups=mid, act=act))
        elif stage.block == "ds":
            mid = cin
            layers.append(ConvBnAct(cin, cin, k, stride, groups=cin, act=act))
        else:
            mid = cout
            layers.append(ConvBnAct(cin, cout, k, stride, act=act))
        if stage.se_ratio > 0:
            v3 = arch.se_style == "v3"
            layers.append(SqueezeExcite(mid, se_channels(arch, stage, cin, mid), "re" if v3 else act,
                                        "hsigmoid" if v3 else "sigmoid"))
        if stage.block != "cn":
            layers.append(ConvBnAct(mid, cout, 1, groups=g))
        self.body = nn.Sequential(*layers)
        if stage.skip == "identity" and stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif stage.skip == "pool":
            self.shortcut = PoolShortcut(cin, cout, stride)

    def forward(self, x):
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


class Head(nn.Module):
    def __init__(self, cin: int, channels: int, act: str, pool_first: bool, num_classes: int):
        super().__init__()
        self.pool_first = pool_first
        self.conv = ConvBnAct(cin, channels, 1, act=act, bn=not pool_first)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        if self.pool_first:
            x = self.conv(x.mean((2, 3), keepdim=True))
        else:
            x = self.conv(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(x, 1))


class Network(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        stem = arch.stem
        self.stem = ConvBnAct(arch.in_channels, stem.channels, stem.kernel, stem.stride, act=stem.act)
        blocks, channels = [], stem.channels
        for stage in arch.stages:
            for repeat in range(stage.repeats):
                blocks.append(Block(arch, stage, channels, stage.stride if repeat == 0 else 1))
                channels = stage.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = Head(channels, arch.head.channels, arch.head.act, arch.head.pool_first, arch.num_classes)
        _init_weights(self)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def _init_weights(module: nn.Module) -> None:
    """He init for convs, unit BN, small classifier weights (as MnasNet/MobileNet training does)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            init_conv(m.weight, m.groups)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        else:
            init_norm_or_linear(m)


def init_conv(weight: torch.Tensor, groups: int = 1) -> None:
    """He init, normal with fan out, where a grouped conv's fan out is (out / groups) x k x k (as
    MnasNet's and timm's): torch's own count (out x k x k) makes a depthwise kernel ~sqrt(channels)
    too small, and the BatchNorm after it turns that into gradients ~sqrt(channels) too large
    (scale invariance: gradient ~ 1 / |w|), which slows or stalls the first epochs."""
    out, _, kh, kw = weight.shape
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / (out // groups * kh * kw)))


def init_norm_or_linear(m: nn.Module) -> None:
    """Unit BatchNorm, small classifier weights (zero biases); other modules are left alone."""
    if isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)


def build_torch(arch):
    """An nn.Module for `arch` (an Arch, preset name or arch string, or a cell network or its
    ``cellnet_...`` string: `pynas.torch_cells`) taking N x C x R x R input (C = `arch.in_channels`)."""
    from pynas.cell import CellNet, is_cellnet_string

    if is_cellnet_string(arch):
        from pynas.cell import parse as parse_cellnet

        arch = parse_cellnet(arch)
    if isinstance(arch, CellNet):
        from pynas.torch_cells import CellNetwork

        return CellNetwork(arch)
    if isinstance(arch, str):
        from pynas.presets import resolve
        arch = resolve(arch)
    return Network(arch)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval) with every BatchNorm folded into the conv before it, as inference
    runtimes do, so eager PyTorch timings compare fairly with them. A conv followed by a BN in a
    Sequential is folded wherever the pair sits (a cell's separable conv has two such pairs); a BN
    after anything else (FactorizedReduce's, after a concatenation) stays."""
    import copy

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               dilation=conv.dilation, groups=conv.groups, bias=True)
            with torch.no_grad():
                folded.weight.copy_(conv.weight * scale[:, None, None, None])
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            module[i], module[i + 1] = folded, nn.Identity()
    return model


def randomise_batchnorm(model, seed: int):
    """`model` in eval mode with non-trivial BatchNorm statistics and affine terms (seeded), so a
    comparison of its output with a BN-folded build (the native runner, ONNX, LiteRT) cannot pass by
    a wrong fold: freshly built BN layers are the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.bias.data = 0.1 * torch.randn(m.num_features, generator=g)
            m.running_mean = 0.1 * torch.randn(m.num_features, generator=g)
            m.running_var = 0.5 + torch.rand(m.num_features, generator=g)
    return model.eval()
