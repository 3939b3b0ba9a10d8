"""Per-op inference weights for a lowered graph: BatchNorm folded, in the native kernels' layouts.

Layouts (float32, C-contiguous):

* ``conv``:   weights Cout x k x k x (Cin / groups), bias Cout
* ``dwconv``: weights k x k x C (taps major, channels contiguous), bias C
* ``pwconv``: weights Cout x (Cin / groups), bias Cout
* ``se``:     reduce R x C + bias R, expand C x R + bias C
* ``fc``:     weights Cout x Cin, bias Cout
* ``bn``:     a standalone BatchNorm (cell networks): weights = scale C, bias = shift C

Weights come from the PyTorch module `pynas.torch_builder.build_torch(arch)` (so a native network
computes what the module computes), or are random with He scaling (for timing, where values do
not matter), or are shape-only placeholders (for recording a network's build, pynas.profiling.oplist).
Reading the module needs torch; the others do not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pynas.ir.lower import Graph
from pynas.ir.ops import CONV_KINDS, Op

WEIGHTED_KINDS = CONV_KINDS + ("se", "fc", "bn")


@dataclass(frozen=True)
class OpWeights:
    weights: np.ndarray
    bias: np.ndarray
    weights2: np.ndarray | None = None  # SE: expand weights
    bias2: np.ndarray | None = None  # SE: expand bias


def _native_conv_layout(op: Op, w: np.ndarray) -> np.ndarray:
    """Torch's Cout x Cin/g x k x k -> the native layout of `op`'s kind."""
    if op.kind == "dwconv":
        return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
    if op.kind == "pwconv":
        return np.ascontiguousarray(w[:, :, 0, 0])
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))


def _folded(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias with the following BatchNorm (eval statistics) folded in."""
    w = conv.weight.detach().double().numpy()
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    if bn is None:
        return w, b
    scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    shift = bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * scale
    return w * scale[:, None, None, None], b * scale + shift


def _weighted_modules(model):
    """The module's conv(+BN), SE and Linear layers in the IR's op order (forward order)."""
    from torch import nn

    from pynas.torch_builder import ConvBnAct, SqueezeExcite

    def walk(module):
        if isinstance(module, (ConvBnAct, SqueezeExcite, nn.Linear)):
            yield module
            return
        for child in module.children():
            yield from walk(child)

    return list(walk(model))


def _cell_weighted_modules(model):
    """A cell network's (pynas.torch_cells) weighted layers in the IR's op order: (conv, BN to fold
    or None, which half of that BN: None for all of it) for each conv, (BN, None, None) for a BN on
    its own, (Linear, None, None). FactorizedReduce's BN follows a concatenation of two convs: each
    conv folds its half."""
    from torch import nn

    from pynas.torch_cells import FactorizedReduce

    out = []

    def walk(module):
        if isinstance(module, FactorizedReduce):
            out.extend([(module.conv_1, module.bn, 0), (module.conv_2, module.bn, 1)])
            return
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for i, layer in enumerate(layers):
                after = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(layer, nn.Conv2d):
                    out.append((layer, after if isinstance(after, nn.BatchNorm2d) else None, None))
                elif isinstance(layer, nn.BatchNorm2d):
                    if i == 0 or not isinstance(layers[i - 1], nn.Conv2d):
                        out.append((layer, None, None))
                else:
                    walk(layer)
            return
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            out.append((module, None, None))
            return
        for child in module.children():
            walk(child)

    walk(model)
    return out


def _bn_affine(bn) -> tuple[np.ndarray, np.ndarray]:
    scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    return scale, bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * scale


def _from_cell_torch(graph: Graph, model, dtype) -> dict[int, OpWeights]:
    from torch import nn

    ops = [op for op in graph.ops if op.kind in WEIGHTED_KINDS]
    layers = _cell_weighted_modules(model)
    if len(layers) != len(ops):
        raise ValueError(f"model: expected {len(ops)} weighted layers for {graph.arch}, got {len(layers)}")
    weights = {}
    for op, (layer, bn, half) in zip(ops, layers):
        if op.kind == "bn":
            if not isinstance(layer, nn.BatchNorm2d) or layer.num_features != op.cout:
                raise ValueError(f"model: op {op.name} expects BatchNorm2d({op.cout}), got {layer}")
            weights[op.id] = OpWeights(*_bn_affine(layer))
        elif op.kind == "fc":
            if not isinstance(layer, nn.Linear) or layer.weight.shape != (op.cout, op.cin):
                raise ValueError(f"model: op {op.name} expects Linear({op.cin}, {op.cout}), got {layer}")
            weights[op.id] = OpWeights(layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy())
        else:
            expected = (op.cout, op.cin // op.groups, op.kernel, op.kernel)
            if not isinstance(layer, nn.Conv2d) or tuple(layer.weight.shape) != expected or \
                    layer.stride[0] != op.stride or layer.dilation[0] != op.dilation:
                raise ValueError(f"model: op {op.name} expects conv weights {expected} stride {op.stride} dilation "
                                 f"{op.dilation}, got {layer}")
            w, b = _folded(layer, None)
            if bn is not None:
                scale, shift = _bn_affine(bn)
                part = slice(None) if half is None else slice(half * op.cout, (half + 1) * op.cout)
                w, b = w * scale[part, None, None, None], b * scale[part] + shift[part]
            weights[op.id] = OpWeights(_native_conv_layout(op, w), b)
    return {i: _cast(w, dtype) for i, w in weights.items()}


def from_torch(graph: Graph, model, dtype=np.float32) -> dict[int, OpWeights]:
    """Folded weights of every weighted op of `graph`, read from `model` (build_torch(graph.arch));
    dtype float64 keeps the fold exact, for references."""
    from torch import nn

    from pynas.torch_builder import SqueezeExcite

    if not hasattr(graph.arch, "stages"):  # a cell network
        return _from_cell_torch(graph, model, dtype)

    ops = [op for op in graph.ops if op.kind in WEIGHTED_KINDS]
    modules = _weighted_modules(model)
    if len(modules) != len(ops):
        raise ValueError(f"model: expected {len(ops)} weighted layers for {graph.arch}, got {len(modules)}")
    weights = {}
    for op, module in zip(ops, modules):
        if op.kind == "se":
            if not isinstance(module, SqueezeExcite) or module.reduce.out_channels != op.se_channels:
                raise ValueError(f"model: op {op.name} expects an SE reducing to {op.se_channels}, got {module}")
            reduce_w, reduce_b = _folded(module.reduce, None)
            expand_w, expand_b = _folded(module.expand, None)
            weights[op.id] = OpWeights(reduce_w[:, :, 0, 0], reduce_b, expand_w[:, :, 0, 0], expand_b)
        elif op.kind == "fc":
            if not isinstance(module, nn.Linear) or module.weight.shape != (op.cout, op.cin):
                raise ValueError(f"model: op {op.name} expects Linear({op.cin}, {op.cout}), got {module}")
            weights[op.id] = OpWeights(module.weight.detach().double().numpy(), module.bias.detach().double().numpy())
        else:
            conv = module[0]
            bn = module[1] if len(module) > 1 and isinstance(module[1], nn.BatchNorm2d) else None
            expected = (op.cout, op.cin // op.groups, op.kernel, op.kernel)
            if tuple(conv.weight.shape) != expected or conv.stride[0] != op.stride or conv.groups != op.groups:
                raise ValueError(f"model: op {op.name} expects conv weights {expected} stride {op.stride} groups "
                                 f"{op.groups}, got {tuple(conv.weight.shape)} stride {conv.stride[0]} groups {conv.groups}")
            w, b = _folded(conv, bn)
            weights[op.id] = OpWeights(_native_conv_layout(op, w), b)
    return {i: _cast(w, dtype) for i, w in weights.items()}


def weight_shapes(op: Op) -> tuple[tuple[int, ...], ...]:
    """Shapes of a weighted op's arrays in the native layouts: (weights, bias), or for SE (reduce
    weights, reduce bias, expand weights, expand bias)."""
    if op.kind == "se":
        r, c = op.se_channels, op.cin
        return (r, c), (r,), (c, r), (c,)
    if op.kind == "bn":
        return (op.cout,), (op.cout,)
    shape = {"dwconv": (op.kernel, op.kernel, op.cout), "pwconv": (op.cout, op.cin // op.groups),
             "fc": (op.cout, op.cin)}.get(op.kind, (op.cout, op.kernel, op.kernel, op.cin // op.groups))
    return shape, (op.cout,)


def random_weights(graph: Graph, seed: int = 0, ops: set[int] | None = None) -> dict[int, OpWeights]:
    """He-scaled random weights and small biases: activations keep a sane range through the net.
    `ops`: only for these op ids (e.g. one segment's, for timing it alone: drawing a whole
    network's weights for each segment was most of its build time); their values then differ from
    the whole network's draw."""
    rng = np.random.default_rng(seed)
    weights = {}
    for op in graph.ops:
        if op.kind not in WEIGHTED_KINDS or (ops is not None and op.id not in ops):
            continue
        shapes = weight_shapes(op)
        if op.kind == "se":
            r, c = shapes[0]
            weights[op.id] = OpWeights(rng.standard_normal(shapes[0]) * np.sqrt(2 / c), rng.standard_normal(r) * 0.1,
                                       rng.standard_normal(shapes[2]) * np.sqrt(1 / r), rng.standard_normal(c) * 0.1)
            continue
        if op.kind == "bn":
            weights[op.id] = OpWeights(1 + 0.1 * rng.standard_normal(op.cout), 0.1 * rng.standard_normal(op.cout))
            continue
        fan_in = op.cin // op.groups * op.kernel * op.kernel
        weights[op.id] = OpWeights(rng.standard_normal(shapes[0]) * np.sqrt(2 / fan_in), rng.standard_normal(op.cout) * 0.1)
    return {i: _cast(w, np.float32) for i, w in weights.items()}


def shape_only_weights(graph: Graph) -> dict[int, OpWeights]:
    """Read-only all-zero arrays of the right shapes that take no memory (zero strides): for
    building into something that only looks at shapes, such as pynas.profiling.oplist's recorder.
    Not for a real network (it would run on zeros)."""
    zero = np.zeros((), dtype=np.float32)
    weights = {}
    for op in graph.ops:
        if op.kind in WEIGHTED_KINDS:
            weights[op.id] = OpWeights(*(np.broadcast_to(zero, shape) for shape in weight_shapes(op)))
    return weights


def _cast(w: OpWeights, dtype) -> OpWeights:
    cast = lambda a: None if a is None else np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    return OpWeights(cast(w.weights), cast(w.bias), cast(w.weights2), cast(w.bias2))
