"""Per-op inference weights for a lowered graph: BatchNorm folded, in the native kernels' layouts.

Layouts (float32, C-contiguous):

* ``conv``:   weights Cout x k x k x (Cin / groups), bias Cout
* ``dwconv``: weights k x k x C (taps major, channels contiguous), bias C
* ``pwconv``: weights Cout x (Cin / groups), bias Cout
* ``se``:     reduce R x C + bias R, expand C x R + bias C
* ``fc``:     weights Cout x Cin, bias Cout

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

WEIGHTED_KINDS = CONV_KINDS + ("se", "fc")


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


def from_torch(graph: Graph, model, dtype=np.float32) -> dict[int, OpWeights]:
    """Folded weights of every weighted op of `graph`, read from `model` (build_torch(graph.arch));
    dtype float64 keeps the fold exact, for references."""
    from torch import nn

    from pynas.torch_builder import SqueezeExcite

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
