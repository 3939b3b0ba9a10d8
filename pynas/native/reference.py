"""Plain float64 numpy references of the native kernels (NHWC, batch 1), for tests.

Written for clarity, not speed: each is the textbook definition of the op, so a kernel that
agrees with it on every shape is right. Padding is PyTorch's "same" for odd kernels: k // 2.
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("none", "re", "r6", "hs", "sw")


def activation(x: np.ndarray, act: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if act == "none":
        return x
    if act == "re":
        return np.maximum(x, 0.0)
    if act == "r6":
        return np.clip(x, 0.0, 6.0)
    if act == "hs":
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if act == "sw":
        return x / (1.0 + np.exp(-x))
    raise ValueError(f"act: expected one of {ACTIVATIONS}, got {act!r}")


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int = 1, groups: int = 1,
           act: str = "none") -> np.ndarray:
    """x: H x W x Cin; w: Cout x k x k x (Cin / groups); bias: Cout. Returns OH x OW x Cout."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    h, wd, cin = x.shape
    cout, k, _, cin_g = w.shape
    pad = k // 2
    oh, ow = _out_size(h, k, stride), _out_size(wd, k, stride)
    xp = np.zeros((h + 2 * pad, wd + 2 * pad, cin))
    xp[pad:pad + h, pad:pad + wd] = x
    out = np.broadcast_to(np.asarray(bias, np.float64), (oh, ow, cout)).copy()
    cout_g = cout // groups
    for g in range(groups):
        xs = xp[:, :, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g]
        for ky in range(k):
            for kx in range(k):
                patch = xs[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
                out[:, :, g * cout_g:(g + 1) * cout_g] += patch @ wg[:, ky, kx, :].T
    return activation(out, act)


def dwconv(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int = 1, act: str = "none") -> np.ndarray:
    """x: H x W x C; w: k x k x C (the native layout); bias: C."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    h, wd, c = x.shape
    k = w.shape[0]
    pad = k // 2
    oh, ow = _out_size(h, k, stride), _out_size(wd, k, stride)
    xp = np.zeros((h + 2 * pad, wd + 2 * pad, c))
    xp[pad:pad + h, pad:pad + wd] = x
    out = np.broadcast_to(np.asarray(bias, np.float64), (oh, ow, c)).copy()
    for ky in range(k):
        for kx in range(k):
            out += xp[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride] * w[ky, kx]
    return activation(out, act)


def pointwise(x: np.ndarray, w: np.ndarray, bias: np.ndarray, act: str = "none", residual=None,
              groups: int = 1) -> np.ndarray:
    """1x1 conv: x: H x W x Cin; w: Cout x (Cin / groups); activation, then the residual add."""
    out = conv2d(x, np.asarray(w)[:, None, None, :], bias, 1, groups, act)
    return out if residual is None else out + np.asarray(residual, np.float64)


def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """ShuffleNet's shuffle: channels (g, c/g) -> (c/g, g)."""
    h, w, c = x.shape
    return np.asarray(x).reshape(h, w, groups, c // groups).transpose(0, 1, 3, 2).reshape(h, w, c)


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).mean(axis=(0, 1))


def fully_connected(x: np.ndarray, w: np.ndarray, bias: np.ndarray, act: str = "none") -> np.ndarray:
    """x: Cin; w: Cout x Cin."""
    return activation(np.asarray(w, np.float64) @ np.asarray(x, np.float64) + bias, act)


def squeeze_excite(x: np.ndarray, w_reduce, b_reduce, w_expand, b_expand, act: str = "re",
                   gate: str = "sigmoid") -> np.ndarray:
    """x * gate(W2 act(W1 mean(x) + b1) + b2); gate sigmoid or hsigmoid (relu6(x + 3) / 6)."""
    s = fully_connected(global_avg_pool(x), w_reduce, b_reduce, act)
    z = fully_connected(s, w_expand, b_expand)
    g = 1.0 / (1.0 + np.exp(-z)) if gate == "sigmoid" else np.clip(z + 3.0, 0.0, 6.0) / 6.0
    return np.asarray(x, np.float64) * g


def avg_pool_3x3(x: np.ndarray, stride: int) -> np.ndarray:
    """3x3 average pool, padding 1, padded cells not counted (the pool skip's shortcut)."""
    x = np.asarray(x, np.float64)
    h, w, c = x.shape
    oh, ow = _out_size(h, 3, stride), _out_size(w, 3, stride)
    out = np.zeros((oh, ow, c))
    for oy in range(oh):
        for ox in range(ow):
            ys = slice(max(oy * stride - 1, 0), min(oy * stride + 2, h))
            xs = slice(max(ox * stride - 1, 0), min(ox * stride + 2, w))
            out[oy, ox] = x[ys, xs].mean(axis=(0, 1))
    return out
