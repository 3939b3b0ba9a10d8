"""Zero-cost proxies: scores of an untrained network that rank architectures by their trained accuracy.

    score = PROXIES["synflow"](model, inputs, targets)      # a float, one forward/backward

Definitions follow the reference code of Abdelfattah et al. 2021, "Zero-Cost Proxies for
Lightweight NAS" (SamsungLabs/zero-cost-nas, `foresight.pruners`), and Mellor et al. 2021, "Neural
Architecture Search without Training" v2 (BayesWatch/nas-without-training), reimplemented here:

* ``synflow``: on a copy of the model in float64 with every BatchNorm a no-op (their ``bn=False``)
  and every parameter replaced by its absolute value, one all-ones input (batch 1, the inputs'
  shape); R = sum of the outputs; score = sum over Conv2d and Linear weights of |w * dR/dw|. The
  raw sum (it spans orders of magnitude: compare logs).
* ``grad_norm``: cross-entropy on the batch, BN in training mode; sum over Conv2d/Linear layers
  of the L2 norm of the weight gradient.
* ``snip``: the same loss; sum over Conv2d/Linear weights of |w * dL/dw| (the gradient of a
  multiplicative mask at 1, as their code takes it).
* ``jacob_cov``: J = d(sum of outputs)/d(input), one row per example; C = corrcoef(J);
  score = -sum(log(v + 1e-5) + 1 / (v + 1e-5)) over C's eigenvalues v.
* ``naswot``: at every ReLU, each example's binary code (input > 0); K_H = sum over ReLUs of
  (c c^T + (1 - c)(1 - c)^T) (units agreeing, per pair of examples); score = log|det K_H|.
  Mellor et al. use a batch of 128, Abdelfattah et al.'s harness 64.
* ``params``: trainable parameters; ``flops``: multiply-accumulates of Conv2d and Linear layers
  per example (forward hooks on the batch), the usual FLOPs baseline.

Every proxy runs the model in training mode on `inputs` (N x 3 x H x W) and integer `targets`
(N,), as the reference code does, and leaves the model's weights as they were (gradients are
cleared). A proxy may return NaN or inf (a cell whose input never reaches its output: no signal,
no Jacobian correlation, a singular K_H): callers decide what that means.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WEIGHTED = (nn.Conv2d, nn.Linear)  # the layers the reference code scores ("mode param")
JACOB_EPS = 1e-5


def _check(model, inputs, targets) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4 or not inputs.is_floating_point():
        raise ValueError(f"inputs: expected a float tensor N x C x H x W, got "
                         f"{tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__}")
    if not isinstance(targets, torch.Tensor) or targets.shape != (len(inputs),) or targets.is_floating_point():
        raise ValueError(f"targets: expected {len(inputs)} integer class labels (one per input), got "
                         f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}")


def _weighted(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, WEIGHTED)]


def _loss_gradients(model: nn.Module, inputs, targets) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, dL/dweight) of each Conv2d/Linear for the batch's cross-entropy, BN in training mode."""
    model.train()
    weights = [m.weight for m in _weighted(model)]
    loss = F.cross_entropy(model(inputs), targets)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return list(zip(weights, grads))


def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _check(model, inputs, targets)
    return float(sum(g.norm().item() for _, g in _loss_gradients(model, inputs, targets) if g is not None))


def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _check(model, inputs, targets)
    pairs = _loss_gradients(model, inputs, targets)
    with torch.no_grad():
        return float(sum((w * g).abs().sum().item() for w, g in pairs if g is not None))


class _NoOp(nn.Module):
    def forward(self, x):
        return x


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with each BatchNorm replaced by a no-op (synflow's ``bn=False``)."""
    twin = copy.deepcopy(model)
    for parent in list(twin.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, _NoOp())
    return twin


def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Data-independent: only the inputs' shape (one example) is used; the model is not touched
    (scored on a copy)."""
    _check(model, inputs, targets)
    twin = _without_batchnorm(model).double().train()
    with torch.no_grad():
        for p in twin.parameters():
            p.abs_()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)
    weights = [m.weight for m in _weighted(twin)]
    grads = torch.autograd.grad(twin(ones).sum(), weights, allow_unused=True)
    with torch.no_grad():
        return float(sum((w * g).abs().sum().item() for w, g in zip(weights, grads) if g is not None))


def jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _check(model, inputs, targets)
    model.train()
    x = inputs.detach().clone().requires_grad_(True)
    (jacobian,) = torch.autograd.grad(model(x).sum(), x)
    return _jacob_score(jacobian)


def _jacob_score(jacobian: torch.Tensor) -> float:
    rows = jacobian.reshape(len(jacobian), -1).double().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.corrcoef(rows)
    if not np.isfinite(correlation).all():
        return float("nan")  # a constant row: an input that does not reach the output
    v = np.linalg.eigvalsh(correlation)  # symmetric: real eigenvalues (the reference's eig gives the same)
    return float(-np.sum(np.log(v + JACOB_EPS) + 1.0 / (v + JACOB_EPS)))


def naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _check(model, inputs, targets)
    n = len(inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def count(module, args, output):
        codes = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign > 0 else float("nan")


def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    _check(model, inputs, targets)
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Multiply-accumulates per example of the Conv2d and Linear layers (one forward of the batch)."""
    _check(model, inputs, targets)
    total = [0]

    def count(module, args, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += output[0].numel() * per_output
        else:
            total[0] += output[0].numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in _weighted(model)]
    try:
        model.eval()  # one example: BN in training mode could refuse a 1 x 1 feature map
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return float(total[0])


def score_all(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
              names=None) -> dict[str, float]:
    """Several proxies of one model, the batch's forward shared: naswot's codes, grad_norm and snip
    from the loss's weight gradients, jacob_cov from the outputs' input gradient, all of the same
    forward (the numbers each function gives alone; tests/test_train_proxies.py checks it). About
    half the time of calling them one by one (what a benchmark of all proxies needs)."""
    names = list(PROXIES) if names is None else list(names)
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise ValueError(f"proxies: expected names among {', '.join(PROXIES)}, got {unknown}")
    _check(model, inputs, targets)
    shared = {"naswot", "jacob_cov", "grad_norm", "snip"}.intersection(names)
    scores = {n: PROXIES[n](model, inputs, targets) for n in names if n not in shared}
    if not shared:
        return {n: scores[n] for n in names}
    n = len(inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def count(module, args, output):
        codes = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.ReLU)] \
        if "naswot" in shared else []
    try:
        model.train()
        x = inputs.detach().clone().requires_grad_("jacob_cov" in shared)
        output = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if "naswot" in shared:
        sign, logdet = np.linalg.slogdet(kernel.numpy())
        scores["naswot"] = float(logdet) if sign > 0 else float("nan")
    if {"grad_norm", "snip"} & shared:
        weights = [m.weight for m in _weighted(model)]
        grads = torch.autograd.grad(F.cross_entropy(output, targets), weights, allow_unused=True,
                                    retain_graph="jacob_cov" in shared)
        with torch.no_grad():
            pairs = [(w, g) for w, g in zip(weights, grads) if g is not None]
            scores["grad_norm"] = float(sum(g.norm().item() for _, g in pairs))
            scores["snip"] = float(sum((w * g).abs().sum().item() for w, g in pairs))
    if "jacob_cov" in shared:
        (jacobian,) = torch.autograd.grad(output.sum(), x)
        scores["jacob_cov"] = _jacob_score(jacobian)
    return {name: scores[name] for name in names}


PROXIES = {"synflow": synflow, "naswot": naswot, "jacob_cov": jacob_cov, "grad_norm": grad_norm, "snip": snip,
           "params": params, "flops": flops}
# Proxies whose scores span orders of magnitude: compared (and mapped to percentiles) as logs.
LOG_SCALE = frozenset({"synflow", "params", "flops"})

__all__ = ["LOG_SCALE", "PROXIES", "flops", "grad_norm", "jacob_cov", "naswot", "params", "score_all", "snip",
           "synflow"]
