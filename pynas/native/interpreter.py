"""Run a lowered graph op by op with the float64 references: the ground truth for native runs.

Tensors are H x W x C (batch 1). This is slow and exact; it checks that lowering, weight folding
and layouts agree with the PyTorch module before any fast kernel is involved.
"""
from __future__ import annotations

import numpy as np

from pynas.ir.lower import Graph
from pynas.ir.ops import NETWORK_INPUT
from pynas.native import reference
from pynas.native.weights import OpWeights


def run_reference(graph: Graph, weights: dict[int, OpWeights], image: np.ndarray) -> np.ndarray:
    """Logits (num_classes,) for one H x W x C image (C = the architecture's input channels)."""
    expected = (graph.arch.resolution, graph.arch.resolution, graph.arch.in_channels)
    if graph.batch != 1 or image.shape != expected:
        raise ValueError(f"image: expected shape {expected} (batch 1, HxWxC), got {image.shape}")
    values = {NETWORK_INPUT: np.asarray(image, np.float64)}
    for op in graph.ops:
        x = values[op.inputs[0]]
        w = weights.get(op.id)
        if op.kind == "conv":
            y = reference.conv2d(x, w.weights, w.bias, op.stride, op.groups)
        elif op.kind == "dwconv":
            y = reference.dwconv(x, w.weights, w.bias, op.stride)
        elif op.kind == "pwconv":
            y = reference.pointwise(x[::op.stride, ::op.stride], w.weights, w.bias, groups=op.groups)
        elif op.kind == "act":
            y = reference.activation(x, op.act)
        elif op.kind == "se":
            y = reference.squeeze_excite(x, w.weights, w.bias, w.weights2, w.bias2, op.act, op.gate)
        elif op.kind == "shuffle":
            y = reference.channel_shuffle(x, op.groups)
        elif op.kind == "add":
            y = x + values[op.inputs[1]]
        elif op.kind == "avgpool":
            y = reference.avg_pool_3x3(x, op.stride)
        elif op.kind == "gap":
            y = reference.global_avg_pool(x)[None, None, :]
        elif op.kind == "fc":
            y = reference.fully_connected(x.reshape(-1), w.weights, w.bias)[None, None, :]
        else:
            raise ValueError(f"op {op.name}: no reference for kind {op.kind!r}")
        assert y.shape == (op.hout, op.wout, op.cout), (op.name, y.shape)
        values[op.id] = y
    return values[graph.output.id].reshape(-1)
