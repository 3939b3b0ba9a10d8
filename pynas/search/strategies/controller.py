"""The RL strategy's policies (torch modules): MnasNet's LSTM controller and TuNAS's independent logits.

Both map a space's decisions (cardinalities c_0..c_{D-1}) to a distribution over token vectors and
offer the two things the strategy needs:

* `sample(uniforms)`: draw N token vectors, decision by decision, by inverse CDF from N x D uniforms
  the caller supplies (the strategy's numpy generator: no torch generator is involved, so a resumed
  search draws exactly what an uninterrupted one would);
* `evaluate(tokens)`: the log-probability of each given token vector and the entropy of the policy
  along it (summed over decisions), differentiable, for the policy-gradient update.

`LSTMPolicy` (MnasNet, after NASNet/ENAS): one LSTM layer steps through the decisions in order; the
input of step i is the embedding of the choice made at step i-1 (a learned start vector at step 0);
step i's softmax head is a linear layer sized to c_i (stored as one D x hidden x max(c) tensor with
the unused logits masked, so that scoring a batch is a handful of torch calls, not D of each).
`IndependentPolicy` (TuNAS): one free logit vector per decision, no interaction between decisions.

`Adam` is Kingma & Ba's optimiser written out (torch.optim pulls in torch._dynamo: seconds of import
for the LSTM's ~37,000 weights on NAS-Bench-201); its two moment vectors, flat over all parameters,
and its step count are what the strategy saves and restores.

Sampling runs the LSTM once per distinct prefix, not once per row (rows that share their first i
choices share the state at step i): the strategy prices hundreds of draws per ask.

The LSTM starts from uniform(-0.1, 0.1) draws of the strategy's numpy generator (ENAS's and
MnasNet's init) with the heads at 0, so its first samples are exactly uniform; the independent
logits start at 0 (TuNAS). Everything is float32 and runs on one thread (`one_thread`): the numbers
then do not depend on how many threads torch was given, and these matrices are far too small to
gain from more.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


@contextmanager
def one_thread():
    """Run torch on one thread inside the block (restores the caller's setting)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _draw(probs: torch.Tensor, uniforms: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """Inverse-CDF draws: row r takes the distribution `probs[which[r]]` (or the one 1-D `probs`) and
    its uniform in [0, 1)."""
    cdf = np.cumsum(probs.numpy().astype(np.float64), axis=-1)
    cdf[..., -1] = np.inf  # rounding never lets a draw fall off the end
    if cdf.ndim == 1:
        return np.searchsorted(cdf, uniforms, side="right").astype(np.int64)
    return (uniforms[:, None] >= cdf[which]).sum(axis=1).astype(np.int64)


class Policy(nn.Module):
    cardinalities: tuple[int, ...]

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        """N x D tokens from N x D uniforms in [0, 1)."""
        raise NotImplementedError

    def evaluate(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probability, entropy summed over decisions), one each per row of N x D tokens."""
        raise NotImplementedError


def _mask(cardinalities) -> torch.Tensor:
    """D x max(c): 0 where a decision has that choice, -inf where it does not."""
    width = max(cardinalities)
    mask = torch.full((len(cardinalities), width), -torch.inf)
    for i, c in enumerate(cardinalities):
        mask[i, :c] = 0.0
    return mask


def _log_prob_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N x D x C masked logits, N x D tokens -> per-row log-probability and entropy, summed over D."""
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(2, tokens[:, :, None])[:, :, 0].sum(1)
    p = logp.exp()
    entropy = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum((1, 2))
    return chosen, entropy


class LSTMPolicy(Policy):
    def __init__(self, cardinalities, hidden: int, rng: np.random.Generator):
        super().__init__()
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.hidden = hidden
        offsets = np.concatenate([[0], np.cumsum(self.cardinalities)[:-1]]).astype(np.int64)
        self.register_buffer("offsets", torch.as_tensor(offsets), persistent=False)
        self.register_buffer("mask", _mask(self.cardinalities), persistent=False)
        # One embedding row per (decision, choice); the start vector is step 0's input.
        self.embed = nn.Parameter(torch.zeros(int(sum(self.cardinalities)), hidden))
        self.start = nn.Parameter(torch.zeros(hidden))
        self.lstm = nn.LSTM(hidden, hidden, num_layers=1, batch_first=True)
        self.head_weight = nn.Parameter(torch.zeros(len(self.cardinalities), hidden, max(self.cardinalities)))
        self.head_bias = nn.Parameter(torch.zeros(len(self.cardinalities), max(self.cardinalities)))
        with torch.no_grad():
            for name, param in self.named_parameters():
                if not name.startswith("head"):
                    param.copy_(torch.from_numpy(rng.uniform(-0.1, 0.1, size=tuple(param.shape)).astype(np.float32)))

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        # Rows that share a prefix share the LSTM's state: step i runs the cell once per distinct
        # prefix (1, c_0, c_0 c_1, ... at most N), not once per row; same numbers, a fraction of the work.
        n = len(uniforms)
        out = np.empty(uniforms.shape, dtype=np.int64)
        which = np.zeros(n, dtype=np.int64)        # row -> its prefix among the distinct ones
        lstm = self.lstm
        with torch.no_grad():
            # The cell written out (nn.LSTM's per-call checks cost more than the arithmetic here).
            w_ih, w_hh = lstm.weight_ih_l0.T, lstm.weight_hh_l0.T
            bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
            x = self.start[None, :]
            h = c = torch.zeros(1, self.hidden)
            for i, card in enumerate(self.cardinalities):
                gates = torch.addmm(bias, x, w_ih).addmm_(h, w_hh)
                gi, gf, gg, go = gates.chunk(4, 1)
                c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
                h = torch.sigmoid(go) * torch.tanh(c)
                logits = torch.addmm(self.head_bias[i, :card], h, self.head_weight[i, :, :card])
                out[:, i] = _draw(torch.softmax(logits, dim=-1), uniforms[:, i], which)
                if i + 1 == len(self.cardinalities):
                    break
                keys, which = np.unique(which * card + out[:, i], return_inverse=True)
                parent = torch.from_numpy(keys // card)
                x = self.embed[torch.from_numpy(keys % card) + self.offsets[i]]
                h, c = h[parent], c[parent]
        return out

    def evaluate(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(tokens)
        # Teacher forcing: step i's input is the embedding of token i-1, all known up front.
        previous = self.embed[tokens[:, :-1] + self.offsets[:-1]]
        x = torch.cat([self.start.expand(n, 1, -1), previous], dim=1)
        h, _ = self.lstm(x)                                          # N x D x hidden
        logits = torch.einsum("ndh,dhc->ndc", h, self.head_weight) + self.head_bias + self.mask
        return _log_prob_entropy(logits, tokens)


class IndependentPolicy(Policy):
    def __init__(self, cardinalities, rng: np.random.Generator | None = None):
        super().__init__()
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.register_buffer("mask", _mask(self.cardinalities), persistent=False)
        self.logits = nn.Parameter(torch.zeros(len(self.cardinalities), max(self.cardinalities)))

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        out = np.empty(uniforms.shape, dtype=np.int64)
        with torch.no_grad():
            for i, card in enumerate(self.cardinalities):
                out[:, i] = _draw(torch.softmax(self.logits[i, :card], dim=-1), uniforms[:, i])
        return out

    def evaluate(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = (self.logits + self.mask).expand(len(tokens), -1, -1)
        return _log_prob_entropy(logits, tokens)


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam's default computes it, on all
    parameters at once: the moments are two flat vectors (a few torch calls per step, not a few per
    parameter)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.sizes = [p.numel() for p in self.params]
        self.step_count = 0
        self.exp_avg = torch.zeros(sum(self.sizes))
        self.exp_avg_sq = torch.zeros(sum(self.sizes))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        grad = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in self.params])
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.exp_avg_sq / (1 - b2 ** self.step_count)).sqrt_().add_(self.eps)
        update = (self.exp_avg / denom).mul_(-self.lr / (1 - b1 ** self.step_count))
        for p, delta in zip(self.params, update.split(self.sizes)):
            p.add_(delta.view_as(p))
