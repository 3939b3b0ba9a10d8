"""Run an architecture with pynas's own kernels: lower, fuse (conv + bias + act (+ residual add)),
build a `pynas._core.Network` from the kernels, run it on numpy images.

Weights come from the PyTorch module (BN folded; outputs then equal the module's) or are random
(for timing). Every op kind the IR produces has a native step; anything else is an error naming the
op, never a silently skipped op.
"""
from __future__ import annotations

import numpy as np

from pynas import _core
from pynas.arch import Arch
from pynas.ir import fuse, lower
from pynas.ir.ops import NETWORK_INPUT
from pynas.native.weights import OpWeights, from_torch, random_weights

_ACT_NONE = "none"


class NativeNetwork:
    """`arch` (Arch, preset name or string) as a native network; `weights` is "random", a PyTorch
    module built by pynas.torch_builder.build_torch(arch), or a dict from pynas.native.weights.
    With `block` (an IR block id such as 's1.0') only that block is built: its input is the
    block's input tensor, its output the block's output (for per-block timing)."""

    def __init__(self, arch: Arch | str, weights="random", threads: int = 1, seed: int = 0,
                 block: str | None = None):
        if isinstance(arch, str):
            from pynas.presets import resolve
            arch = resolve(arch)
        self.arch = arch
        self.graph = lower(arch)
        if isinstance(weights, str):
            if weights != "random":
                raise ValueError(f"weights: expected 'random', a PyTorch module or a dict, got {weights!r}")
            weights = random_weights(self.graph, seed)
        elif not isinstance(weights, dict):
            weights = from_torch(self.graph, weights)
        self.network = _core.Network(threads)
        kernels = fuse(self.graph)
        if block is not None:
            kernels = [k for k in kernels if all(op.block == block for op in k.ops)]
            if not kernels:
                raise ValueError(f"block: expected a block id such as 's0.0' of {arch}, got {block!r}")
        self._build(weights, kernels)

    def _build(self, weights: dict[int, OpWeights], kernels) -> None:
        net, graph = self.network, self.graph
        first = kernels[0].first
        source = first.inputs[0]  # the image, or the block input when building one block
        tensor = {source: net.input(first.hin, first.win, first.cin)}
        for kernel in kernels:
            op = kernel.first
            x = tensor[op.inputs[0]]
            w = weights.get(op.id)
            act = next((o.act for o in kernel.ops if o.kind == "act"), _ACT_NONE)
            add = next((o for o in kernel.ops if o.kind == "add" and o is not op), None)
            residual = tensor[add.inputs[1]] if add is not None else -1
            if op.kind in ("conv", "dwconv", "pwconv") and op.groups not in (1, op.cin):
                raise ValueError(f"op {op.name}: grouped convs (groups={op.groups}) have no native step yet")
            if op.kind == "pwconv" and op.stride == 1:
                y = net.pointwise(x, w.weights, w.bias, act, residual)
            elif op.kind in ("conv", "pwconv"):
                conv_w = w.weights if w.weights.ndim == 4 else w.weights[:, None, None, :]
                y = net.conv(x, conv_w, w.bias, op.kernel, op.stride, act, residual)
            elif op.kind == "dwconv":
                if residual >= 0:
                    raise ValueError(f"op {op.name}: a residual add fused into a depthwise conv has no native step")
                y = net.dwconv(x, w.weights, w.bias, op.stride, act)
            elif op.kind == "se":
                y = net.se(x, w.weights, w.bias, w.weights2, w.bias2, op.act, op.gate)
            elif op.kind == "avgpool":
                y = net.avgpool(x, op.stride)
            elif op.kind == "add":
                y = net.add(x, tensor[op.inputs[1]])
            elif op.kind == "gap":
                y = net.gap(x)
            elif op.kind == "fc":
                y = net.fc(x, w.weights, w.bias)
            else:
                raise ValueError(f"op {op.name}: no native step for kind {op.kind!r}")
            if net.shape(y) != (kernel.last.hout, kernel.last.wout, kernel.last.cout):
                raise AssertionError(f"kernel {kernel.name}: native shape {net.shape(y)} differs from the IR's")
            for o in kernel.ops:
                tensor[o.id] = y
        net.finalize(tensor[kernels[-1].last.id])

    @staticmethod
    def _hwc(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 4 and image.shape[0] == 1:  # 1 x C x H x W
            image = image[0].transpose(1, 2, 0)
        return np.ascontiguousarray(image)

    def run(self, image: np.ndarray) -> np.ndarray:
        """Logits for one image, H x W x 3 or 1 x 3 x H x W float32 (a block: its output tensor)."""
        out = self.network.run(self._hwc(image))
        return out.reshape(-1) if out.shape[:2] == (1, 1) else out

    def time_runs(self, image: np.ndarray, runs: int) -> list[float]:
        return self.network.time_runs(self._hwc(image), runs)

    def describe(self) -> list[str]:
        return self.network.describe()
