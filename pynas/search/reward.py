"""Rewards: one number per architecture from its accuracy and its latency, vectorised over a batch.

* MnasNet (Tan et al. 2019, Eq. 2): ``ACC * (LAT / T) ** w`` with ``w = alpha`` when ``LAT <= T``,
  else ``beta``. Presets: ``soft`` (alpha = beta = -0.07, MnasNet's), ``hard`` (alpha = 0, beta = -1:
  no bonus for being faster than T, a steep penalty above it), ``v3`` (alpha = beta = -0.15,
  MobileNetV3's setting for small models).
* ``absolute`` (TuNAS, Bender et al. 2020): ``ACC + beta * |LAT / T - 1|`` with beta = -0.10 by
  default (accuracy as a fraction in [0, 1], as TuNAS; pynas passes accuracies in percent and
  scales beta by 100 to match).

Why ``absolute`` is the default. The soft reward trades a fixed share of accuracy for each factor of
latency: where a space's latencies span orders of magnitude (NAS-Bench-201: 0.003-37 ms on a Pixel
3) its optimum sits at 0.1-0.6 x T, so hitting a target takes several searches with T adjusted. The
absolute reward's penalty grows with the distance to T on both sides, so its optimum lands at about
T in one search; the price is that a much faster network with nearly the same accuracy gets no
credit for its speed (use ``soft`` to explore the whole front).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reward:
    """`kind` 'mnasnet' (alpha, beta exponents) or 'absolute' (beta, per unit of |LAT/T - 1|, in
    accuracy fractions); `target_ms` T > 0."""
    name: str
    kind: str
    target_ms: float
    alpha: float = 0.0
    beta: float = 0.0

    def __post_init__(self):
        if self.kind not in ("mnasnet", "absolute"):
            raise ValueError(f"reward kind: expected 'mnasnet' or 'absolute', got {self.kind!r}")
        t = self.target_ms
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t) or t <= 0:
            raise ValueError(f"target_ms: expected a latency in ms > 0, got {t!r}")
        for field in ("alpha", "beta"):
            value = getattr(self, field)
            if not np.isfinite(value) or value > 0:
                raise ValueError(f"reward {field}: expected a finite number <= 0, got {value!r}")

    def __call__(self, accuracy, latency_ms) -> np.ndarray:
        """Rewards (float64) of accuracies in percent and latencies in ms (arrays or scalars, one per
        architecture). A NaN accuracy (a failed evaluation) gives a NaN reward, never a number."""
        acc = np.asarray(accuracy, dtype=np.float64)
        lat = np.asarray(latency_ms, dtype=np.float64)
        if np.any(~(lat > 0)):
            raise ValueError("latency_ms: expected latencies > 0 (from a latency model), got "
                             f"{lat[~(lat > 0)].ravel()[0]!r}")
        ratio = lat / self.target_ms
        if self.kind == "absolute":
            return acc + 100.0 * self.beta * np.abs(ratio - 1.0)
        return acc * ratio ** np.where(ratio <= 1.0, self.alpha, self.beta)

    def describe(self) -> str:
        if self.kind == "absolute":
            return f"{self.name}: ACC + {self.beta:g} x |LAT/T - 1| (T = {self.target_ms:g} ms)"
        return f"{self.name}: ACC x (LAT/T)^w, w = {self.alpha:g} if LAT <= T else {self.beta:g} (T = {self.target_ms:g} ms)"

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "target_ms": self.target_ms, "alpha": self.alpha,
                "beta": self.beta}


PRESETS = {
    "absolute": dict(kind="absolute", beta=-0.10),
    "soft": dict(kind="mnasnet", alpha=-0.07, beta=-0.07),
    "hard": dict(kind="mnasnet", alpha=0.0, beta=-1.0),
    "v3": dict(kind="mnasnet", alpha=-0.15, beta=-0.15),
}
DEFAULT = "absolute"


def make_reward(name: str, target_ms: float, **overrides) -> Reward:
    """The preset `name` at target T (`overrides`: alpha, beta)."""
    if name not in PRESETS:
        raise ValueError(f"reward: expected one of {', '.join(PRESETS)}, got {name!r}")
    return Reward(name=name, target_ms=target_ms, **{**PRESETS[name], **overrides})
