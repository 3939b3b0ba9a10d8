"""Differentiable architecture search: mixed-op supernets, the expected-latency loss, bilevel steps.

    net = CellSupernet(num_classes=10, in_channels=1, channels=16, cells_per_stage=1)   # NAS-Bench-201 cells
    search = BilevelSearch(net, order=1, epochs=10, remedy="darts-minus")
    prices = price_table(latency, net.derive(), net.cardinalities)       # ms; re-priced every epoch
    search.epoch(train, val, latency=LatencyLoss(prices, target_ms=5, weight=0.1), generator=g)
    net.derive()                                                         # the argmax cell's tokens

Two kinds of supernet behind one interface (`alphas`, `probabilities()`, `derive()`,
`cardinalities`, `weight_parameters()`, and `forward` of a batch, mixed or along one path):

* `CellSupernet` (DARTS, Liu et al. 2019) over NAS-Bench-201 cells: each of the 6 edges is a mixed
  op, the softmax(alpha)-weighted sum of the 5 candidate ops (the benchmark's own modules,
  `make_op`: the cell builder's edges, `pynas.torch_cells`), on the benchmark's skeleton with `cells_per_stage` cells per stage
  (the benchmark has 5; a search uses 1-2) and the ResNet blocks between stages. Weights and
  alphas are trained alternately (bilevel): weights on a training split, alphas on a validation
  split; first order (alphas see the current weights) or second order (the unrolled step w' = w -
  xi grad_w L_train, the Hessian-vector product by finite differences as DARTS Eq. 8; xi the
  current weight learning rate; the momentum term of the unrolled step is left out). Derive rule:
  the argmax of each edge over all 5 ops, `none` included (NAS-Bench-201's convention for its
  DARTS baselines: the cell keeps its 6 edges, a `none` edge is an op like the others).
  Known failure (Zela et al. 2020; NAS-Bench-201's own table): the alphas drift to
  `skip_connect` (parameter-free ops learn fastest early on). Remedies, `remedy=`:
  ``darts-minus`` (DARTS-, Chu et al. 2021: an auxiliary skip from each cell's input to its output
  with a coefficient decaying linearly from 1 to 0 over the search, so skip edges stop being the
  easy path to a low loss) and ``skip-limit`` (early stopping, as Liang et al.'s DARTS+: the search
  stops at the first epoch whose derived cell has more than `max_skips` skip edges, the cell
  derived before it kept).
  The `darts` space (8 ops, two inputs per node, normal + reduction cells) will need its own
  supernet and the top-2-incoming-edges derive rule (`derive_top2`, here and tested); the rest
  (losses, steps, pricing) takes any alphas of shape decisions x choices.
* `PathSupernet` (ProxylessNAS, Cai et al. 2019) over the MnasNet space: the single-path weight
  sharing supernet (`pynas.train.supernet_layers.Supernet`) with one alpha per choice of each of
  the space's decisions. Binarised paths: each training step runs one path sampled from the alphas'
  softmax (memory of one network, not of all choices); alphas are updated with ProxylessNAS's
  REINFORCE estimator (its Sec. 3.2.1: the gradient of the expected validation loss over paths,
  `paths_per_step` samples with their mean as the baseline), because the factorised space's
  choices (width, depth, kernel, op) are not summable outputs of one layer as FBNet's Gumbel mixture
  needs. The latency term's gradient is exact (below). Derive rule: the argmax of each decision.

The latency loss. E[LAT] = base + sum_i sum_j p_ij * price_ij with p_i = softmax(alpha_i), base =
LAT(a) and price_ij = LAT(a with decision i set to choice j) - LAT(a), a the current argmax
architecture, LAT the run's latency model (a compiled table, the XGBoost path, or a whole-network
lookup as NAS-Bench-201's HW-NAS-Bench bundles): `price_table`. Why this form: the latency models
price whole architectures, not ops (the XGBoost path sees segments, a lookup sees one number per
network), so a per-op LUT has to come from them; ProxylessNAS's LUT relative to the current
architecture is exact where it matters (E[LAT] equals LAT(a) when the alphas are one-hot on a, and
LAT of every architecture one decision away from a when one-hot there), and its error elsewhere is
the model's non-additivity, which re-pricing every epoch around the new argmax keeps local. It is
linear in p, so differentiable in the alphas. Added to the loss as ``weight * (E[LAT] / T - 1)``
(``additive``), ``weight * |E[LAT] / T - 1|`` (``absolute``, TuNAS's form and pynas's default
reward: the pull stops at T), or as the factor ``(E[LAT] / T) ** weight`` (``multiplicative``,
MnasNet's form). The additive and multiplicative forms pull latency down below T as above it: on
NAS-Bench-201, where `none` is the cheapest op and removes an edge, a strong weight derives a cell
of `none` edges (seen here with lambda 0.1, T the 25% quantile: a disconnected cell at 10%), which
is why `absolute` is the strategies' default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pynas.space.nb201 import EDGES, NODES, OPS as NB201_OPS
from pynas.cell import Edge
from pynas.space.nb201 import CELL_OPS
from pynas.torch_cells import ResNetReduction, make_edge

ORDERS = (1, 2)
REMEDIES = ("none", "darts-minus", "skip-limit")
LATENCY_FORMS = ("absolute", "additive", "multiplicative")
GRAD_CLIP = 5.0  # DARTS's clip of the weights' gradient norm
ARCH_LR, ARCH_BETAS, ARCH_WEIGHT_DECAY = 3e-4, (0.5, 0.999), 1e-3  # DARTS's Adam for the alphas
PROXYLESS_ARCH_LR = 6e-3  # ProxylessNAS's Adam lr for the alphas (betas 0, 0.999 there; kept as DARTS here)


# -- supernets -------------------------------------------------------------------------------------

class Zero(nn.Module):
    """The `none` candidate: zeros, multiplied rather than created so that its (zero) gradient flows
    as in the benchmark's code; the cell builder has no module for `none` (an absent edge)."""

    def forward(self, x):
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """A NAS-Bench-201 op (`pynas.space.nb201.OPS`) as a stride-1 candidate of a mixed edge: the
    cell builder's own module (one builder for the benchmark's networks and the supernet)."""
    if name == "none":
        return Zero()
    if name not in CELL_OPS:
        raise ValueError(f"op: expected one of none, {', '.join(CELL_OPS)}, got {name!r}")
    return make_edge(Edge(CELL_OPS[name], 0), channels, 1)


class MixedEdge(nn.Module):
    """A DARTS mixed op: sum_j w_j op_j(x) (every candidate run), or one op when a path is given."""

    def __init__(self, ops: Sequence[str], channels: int):
        super().__init__()
        self.ops = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, choice: int | None = None):
        if choice is not None:
            return self.ops[choice](x)
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class MixedCell(nn.Module):
    """A NAS-Bench-201 cell whose edges are mixed ops: node j sums its incoming edges."""

    def __init__(self, channels: int, ops: Sequence[str]):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(ops, channels) for _ in EDGES)

    def forward(self, x, weights=None, path=None, aux_skip: float = 0.0):
        nodes = [x]
        for j in range(1, NODES):
            nodes.append(sum(self.edges[k](nodes[i], None if weights is None else weights[k],
                                           None if path is None else int(path[k]))
                             for k, (i, target) in enumerate(EDGES) if target == j))
        out = nodes[-1]
        return out + aux_skip * x if aux_skip else out


class CellSupernet(nn.Module):
    """NAS-Bench-201's skeleton with mixed cells, and the alphas (edges x ops, DARTS's init 1e-3 N(0,1))."""

    kind = "cell"

    def __init__(self, num_classes: int, in_channels: int = 3, channels: int = 16, cells_per_stage: int = 1,
                 ops: Sequence[str] = NB201_OPS, generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("channels", channels),
                            ("cells_per_stage", cells_per_stage)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        self.op_names = tuple(ops)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers, width = [], channels
        for stage in range(3):
            if stage:
                layers.append(ResNetReduction(width, width * 2))
                width *= 2
            layers += [MixedCell(width, self.op_names) for _ in range(cells_per_stage)]
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(width, num_classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(self.op_names), generator=generator))

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return (len(self.op_names),) * len(EDGES)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def probabilities(self) -> torch.Tensor:
        return F.softmax(self.alphas, dim=-1)

    def derive(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.alphas.detach().argmax(dim=-1))

    def forward(self, x, weights: torch.Tensor | None = None, path: Sequence[int] | None = None,
                aux_skip: float = 0.0):
        """Logits of the mixed network (`weights` edges x ops, default the alphas' softmax), or of
        one path (a token per edge: only those ops run)."""
        if weights is None and path is None:
            weights = self.probabilities()
        y = self.stem(x)
        for layer in self.layers:
            y = layer(y, weights, path, aux_skip) if isinstance(layer, MixedCell) else layer(y)
        y = self.lastact(y)
        return self.classifier(torch.flatten(y.mean((2, 3)), 1))


class PathSupernet(nn.Module):
    """A single-path supernet (`forward(x, tokens)`: the MnasNet space's `Supernet`) with alphas
    over the choices of each decision (a decision x max-choices tensor; choices beyond a decision's
    own are masked out of its softmax)."""

    kind = "path"

    def __init__(self, supernet: nn.Module, cardinalities: Sequence[int], generator: torch.Generator | None = None):
        super().__init__()
        self.supernet = supernet
        self._cardinalities = tuple(int(c) for c in cardinalities)
        widest = max(self._cardinalities)
        mask = torch.tensor([[j >= c for j in range(widest)] for c in self._cardinalities])
        self.register_buffer("mask", mask, persistent=False)
        # DARTS's init, 1e-3 N(0, 1): uniform probabilities, but a seeded argmax (all zeros would make
        # the first choice of every decision the first reference architecture: the smallest network).
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(self._cardinalities), widest, generator=generator))

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return self._cardinalities

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def logits(self) -> torch.Tensor:
        return self.alphas.masked_fill(self.mask, -math.inf)

    def probabilities(self) -> torch.Tensor:
        return F.softmax(self.logits(), dim=-1)

    def derive(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.logits().detach().argmax(dim=-1))

    def sample(self, generator: torch.Generator) -> tuple[int, ...]:
        probs = self.probabilities().detach()
        return tuple(int(i) for i in torch.multinomial(probs, 1, generator=generator).squeeze(1))

    def log_prob(self, tokens: Sequence[int]) -> torch.Tensor:
        logp = F.log_softmax(self.logits(), dim=-1)
        return logp[torch.arange(len(tokens)), torch.as_tensor(tokens)].sum()

    def forward(self, x, path: Sequence[int]):
        return self.supernet(x, tuple(int(t) for t in path))


class CellPathSupernet(PathSupernet):
    """A NAS-Bench-201 cell supernet run one path at a time (ProxylessNAS over nb201): its mixture
    alphas are dropped, the path alphas replace them."""

    def __init__(self, net: CellSupernet, generator: torch.Generator | None = None):
        del net.alphas
        super().__init__(net, net.cardinalities, generator)

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def forward(self, x, path: Sequence[int]):
        return self.supernet(x, path=tuple(int(t) for t in path))


def derive_top2(alphas: torch.Tensor, ops: Sequence[str], inputs: int = 2, keep: int = 2) -> list[tuple[int, str]]:
    """DARTS's derive rule for its own cell (alphas: one row per edge, the edges of node k after
    those of node k-1, node k having `inputs + k` incoming edges): for each intermediate node, the
    `keep` incoming edges whose strongest non-`none` op is strongest, each with that op. Returns
    (source node, op) per kept edge, nodes in order."""
    if "none" not in ops:
        raise ValueError(f"ops: expected a 'none' op among {list(ops)} (the rule ranks the others)")
    none = list(ops).index("none")
    weights = F.softmax(alphas.detach(), dim=-1).clone()
    weights[:, none] = -1.0
    chosen, start, node = [], 0, 0
    while start < len(weights):
        count = inputs + node
        if start + count > len(weights):
            raise ValueError(f"alphas: expected edges of whole nodes (2 + k incoming for node k), got {len(weights)} rows")
        block = weights[start:start + count]
        best_op = block.argmax(dim=-1)
        strength = block.max(dim=-1).values
        order = sorted(range(count), key=lambda e: (-float(strength[e]), e))[:keep]
        chosen += [(e, ops[int(best_op[e])]) for e in sorted(order)]
        start, node = start + count, node + 1
    return chosen


# -- latency ---------------------------------------------------------------------------------------

def price_table(latency: Callable[[np.ndarray], np.ndarray], reference: Sequence[int],
                cardinalities: Sequence[int]) -> tuple[float, np.ndarray]:
    """(LAT(reference), prices D x max-choices): price[i, j] = LAT(reference with decision i set to
    j) - LAT(reference), in ms; 0 for choices a decision does not have. One batch of
    sum(cardinalities) rows through `latency` (an N x D int64 token array -> N ms)."""
    reference = np.asarray(reference, dtype=np.int64)
    rows, where = [reference], []
    for i, count in enumerate(cardinalities):
        for j in range(count):
            row = reference.copy()
            row[i] = j
            rows.append(row)
            where.append((i, j))
    ms = np.asarray(latency(np.stack(rows)), dtype=np.float64)
    if ms.shape != (len(rows),) or not np.all(np.isfinite(ms)) or not np.all(ms > 0):
        raise ValueError(f"latency model: expected {len(rows)} finite latencies > 0, got {ms.shape} "
                         f"(first bad: {ms[~(np.isfinite(ms) & (ms > 0))][:1]})")
    prices = np.zeros((len(cardinalities), max(cardinalities)))
    for (i, j), value in zip(where, ms[1:]):
        prices[i, j] = value - ms[0]
    return float(ms[0]), prices


@dataclass
class LatencyLoss:
    """The latency term: E[LAT] from the prices around the current argmax; `weight` lambda; `form`
    additive (lambda * (E/T - 1)), absolute (lambda * |E/T - 1|) or multiplicative ((E/T) ** lambda,
    a factor of the task loss)."""
    base_ms: float
    prices: np.ndarray
    target_ms: float
    weight: float
    form: str = "absolute"

    def __post_init__(self):
        if self.form not in LATENCY_FORMS:
            raise ValueError(f"latency_form: expected one of {', '.join(LATENCY_FORMS)}, got {self.form!r}")
        if not (math.isfinite(self.target_ms) and self.target_ms > 0):
            raise ValueError(f"target_ms: expected a latency in ms > 0, got {self.target_ms!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"latency_weight: expected a number >= 0, got {self.weight!r}")

    def expected(self, probabilities: torch.Tensor) -> torch.Tensor:
        prices = torch.as_tensor(self.prices, dtype=probabilities.dtype)
        return self.base_ms + (probabilities * prices).sum()

    def apply(self, task_loss: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        ratio = self.expected(probabilities) / self.target_ms
        if self.form == "additive":
            return task_loss + self.weight * (ratio - 1.0)
        if self.form == "absolute":
            return task_loss + self.weight * (ratio - 1.0).abs()
        return task_loss * ratio ** self.weight


# -- the search ------------------------------------------------------------------------------------

def batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle of range(count) in batches (the last one may be short)."""
    order = torch.randperm(count, generator=generator)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


class BilevelSearch:
    """Alternate alpha steps (validation split) and weight steps (training split) on a supernet.

    Weights: SGD, momentum 0.9, weight decay 3e-4, cosine from `lr` to `lr_min` over `epochs`
    (DARTS's recipe); alphas: Adam (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3 for DARTS; lr
    6e-3 for paths). `warmup_epochs` train the weights only (alphas frozen), as ProxylessNAS and
    many DARTS variants do."""

    def __init__(self, net: nn.Module, *, epochs: int, order: int = 1, lr: float = 0.025, lr_min: float = 0.001,
                 remedy: str = "none", warmup_epochs: int = 0, paths_per_step: int = 2, arch_lr: float | None = None):
        if order not in ORDERS:
            raise ValueError(f"order: expected 1 (first-order DARTS) or 2 (second order), got {order!r}")
        if remedy not in REMEDIES:
            raise ValueError(f"remedy: expected one of {', '.join(REMEDIES)}, got {remedy!r}")
        if net.kind == "path" and order != 1:
            raise ValueError("order: expected 1 for a path supernet (its alphas get a REINFORCE estimate, not unrolled "
                             "gradients)")
        if net.kind == "path" and remedy == "darts-minus":
            raise ValueError("remedy: darts-minus adds a skip across NAS-Bench-201 cells: expected none or skip-limit "
                             "for a path supernet")
        self.net, self.epochs, self.order, self.lr, self.lr_min = net, epochs, order, lr, lr_min
        self.remedy, self.warmup_epochs, self.paths_per_step = remedy, warmup_epochs, paths_per_step
        decay = [p for p in net.weight_parameters() if p.ndim > 1]
        rest = [p for p in net.weight_parameters() if p.ndim <= 1]
        self.w_optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 3e-4},
                                            {"params": rest, "weight_decay": 0.0}], lr=lr, momentum=0.9)
        default_lr = ARCH_LR if net.kind == "cell" else PROXYLESS_ARCH_LR
        self.a_optimizer = torch.optim.Adam([net.alphas], lr=arch_lr or default_lr, betas=ARCH_BETAS,
                                            weight_decay=ARCH_WEIGHT_DECAY if net.kind == "cell" else 0.0)

    def learning_rate(self, epoch: int) -> float:
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs))

    def aux_skip(self, epoch: int) -> float:
        """DARTS-'s auxiliary skip coefficient: 1 at the start, linearly to 0 at the end."""
        return 1.0 - epoch / self.epochs if self.remedy == "darts-minus" else 0.0

    def epoch(self, epoch: int, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
              *, batch_size: int, generator: torch.Generator, latency: LatencyLoss | None = None) -> dict:
        """One epoch (`epoch` from 0): a weight step per training batch, each preceded by an alpha
        step on the next validation batch (none in warm-up). Returns the epoch's mean losses."""
        lr = self.learning_rate(epoch)
        for group in self.w_optimizer.param_groups:
            group["lr"] = lr
        aux = self.aux_skip(epoch)
        train_batches = batches(len(train[0]), batch_size, generator)
        val_batches = batches(len(val[0]), batch_size, generator)
        search_alphas = epoch >= self.warmup_epochs
        self.net.train()
        totals = {"train_loss": 0.0, "val_loss": 0.0, "expected_ms": float("nan")}
        for step, index in enumerate(train_batches):
            xt, yt = train[0][index], train[1][index]
            if search_alphas:
                v = val_batches[step % len(val_batches)]
                totals["val_loss"] += self._alpha_step(xt, yt, val[0][v], val[1][v], latency, aux, lr, generator)
            totals["train_loss"] += self._weight_step(xt, yt, aux, generator)
        totals["train_loss"] /= len(train_batches)
        totals["val_loss"] = totals["val_loss"] / len(train_batches) if search_alphas else float("nan")
        if latency is not None:
            with torch.no_grad():
                totals["expected_ms"] = float(latency.expected(self.net.probabilities()))
        return totals

    # weights ----------------------------------------------------------------------------------
    def _task_loss(self, x, y, aux: float, path=None) -> torch.Tensor:
        if self.net.kind == "path":
            return F.cross_entropy(self.net(x, path), y)
        return F.cross_entropy(self.net(x, path=path, aux_skip=aux), y)

    def _weight_step(self, x, y, aux: float, generator) -> float:
        path = self.net.sample(generator) if self.net.kind == "path" else None
        self.w_optimizer.zero_grad(set_to_none=True)
        loss = self._task_loss(x, y, aux, path)
        loss.backward()
        self.net.alphas.grad = None  # the weight step never moves the alphas
        nn.utils.clip_grad_norm_(self.net.weight_parameters(), GRAD_CLIP)
        self.w_optimizer.step()
        return float(loss.detach())

    # alphas -----------------------------------------------------------------------------------
    def _alpha_step(self, xt, yt, xv, yv, latency, aux, lr, generator) -> float:
        self.a_optimizer.zero_grad(set_to_none=True)
        if self.net.kind == "path":
            value = self._reinforce(xv, yv, latency, generator)
        elif self.order == 1:
            loss = self._task_loss(xv, yv, aux)
            value = float(loss.detach())
            if latency is not None:
                loss = latency.apply(loss, self.net.probabilities())
            self.net.alphas.grad = torch.autograd.grad(loss, self.net.alphas)[0]
        else:
            value = self._unrolled(xt, yt, xv, yv, latency, aux, lr)
        self.a_optimizer.step()
        return value

    def _unrolled(self, xt, yt, xv, yv, latency, aux, xi) -> float:
        """DARTS's second-order gradient of the alphas: grad_a L_val(w', a) - xi * (grad_a
        L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps), w' = w - xi grad_w L_train(w, a),
        w+- = w +- eps dw', eps = 0.01 / |dw'| (DARTS Eq. 7-8)."""
        weights = self.net.weight_parameters()
        saved = [w.detach().clone() for w in weights]
        grads = torch.autograd.grad(self._task_loss(xt, yt, aux), weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, grads):
                if g is not None:
                    w.sub_(xi * g)
        loss = self._task_loss(xv, yv, aux)
        value = float(loss.detach())
        if latency is not None and latency.form == "multiplicative":
            loss = latency.apply(loss, self.net.probabilities())
        dalpha, *dw = torch.autograd.grad(loss, [self.net.alphas, *weights], allow_unused=True)
        dw = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, dw)]
        eps = 0.01 / max(float(torch.sqrt(sum((g * g).sum() for g in dw))), 1e-12)

        def train_alpha_grad(sign: float) -> torch.Tensor:
            with torch.no_grad():
                for w, s, g in zip(weights, saved, dw):
                    w.copy_(s + sign * eps * g)
            return torch.autograd.grad(self._task_loss(xt, yt, aux), self.net.alphas)[0]

        hessian = (train_alpha_grad(1.0) - train_alpha_grad(-1.0)) / (2 * eps)
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
        grad = dalpha - xi * hessian
        if latency is not None and latency.form != "multiplicative":  # independent of the weights: its exact gradient
            grad = grad + torch.autograd.grad(latency.apply(torch.zeros(()), self.net.probabilities()),
                                              self.net.alphas)[0]
        self.net.alphas.grad = grad
        return value

    def _reinforce(self, xv, yv, latency, generator) -> float:
        """ProxylessNAS's REINFORCE step: `paths_per_step` paths sampled from the alphas, their
        validation losses (no weight gradient), the mean as baseline; plus the latency term's exact
        gradient (additive), or the product rule through the factor (multiplicative)."""
        paths = [self.net.sample(generator) for _ in range(self.paths_per_step)]
        with torch.no_grad():
            losses = torch.stack([F.cross_entropy(self.net(xv, p), yv) for p in paths])
        baseline = losses.mean()
        score = sum((l - baseline) * self.net.log_prob(p) for l, p in zip(losses, paths)) / len(paths)
        if latency is None:
            surrogate = score
        elif latency.form != "multiplicative":
            surrogate = score + latency.apply(torch.zeros(()), self.net.probabilities())
        else:
            factor = latency.apply(torch.ones(()), self.net.probabilities())
            surrogate = factor.detach() * score + baseline * factor
        self.net.alphas.grad = torch.autograd.grad(surrogate, self.net.alphas)[0]
        return float(baseline)

    # evaluation and state ---------------------------------------------------------------------
    @torch.no_grad()
    def path_accuracy(self, tokens: Sequence[int], x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> float:
        """Top-1 % of the supernet's path `tokens` on (x, y), BatchNorm on batch statistics (the
        supernet's running statistics are those of the mixture, not of the path); the running
        statistics are restored after."""
        buffers = {k: v.clone() for k, v in self.net.state_dict().items() if "running" in k or "num_batches" in k}
        self.net.train()
        correct = 0
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            logits = self.net(xb, tokens) if self.net.kind == "path" else self.net(xb, path=tokens)
            correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
        self.net.load_state_dict(buffers, strict=False)
        return 100.0 * correct / len(x)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The supernet's tensors and both optimisers' buffers as named numpy arrays."""
        arrays = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        for name, optimizer in (("w", self.w_optimizer), ("a", self.a_optimizer)):
            for index, state in optimizer.state_dict()["state"].items():
                for key, value in state.items():
                    arrays[f"opt.{name}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        net = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
        missing = set(self.net.state_dict()) - set(net)
        if missing:
            raise ValueError(f"state: expected the supernet's tensors, got none for {sorted(missing)[0]!r}")
        self.net.load_state_dict(net)
        for name, optimizer in (("w", self.w_optimizer), ("a", self.a_optimizer)):
            state_dict = optimizer.state_dict()
            state: dict = {}
            for key, value in arrays.items():
                parts = key.split(".")
                if parts[0] == "opt" and parts[1] == name:
                    state.setdefault(int(parts[2]), {})[parts[3]] = torch.from_numpy(np.array(value))
            state_dict["state"] = state
            optimizer.load_state_dict(state_dict)


def skip_count(tokens: Sequence[int], ops: Sequence[str] = NB201_OPS) -> int:
    """How many edges of a derived cell are `skip_connect`."""
    return sum(1 for t in tokens if ops[t] == "skip_connect")


__all__ = ["BilevelSearch", "CellPathSupernet", "CellSupernet", "LatencyLoss", "PathSupernet", "derive_top2", "price_table", "skip_count"]
