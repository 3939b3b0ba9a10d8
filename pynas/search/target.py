"""Where a latency target T lies in a space: the share of the space under T and its quantiles.

Before a search, `check_target` prices a large uniform sample of the space (every architecture when
the space has at most `SAMPLE` of them, as NAS-Bench-201's 15,625) through the latency model and
refuses a T outside the range it found: no architecture, or every architecture, would meet it.
"""
from __future__ import annotations

import itertools

import numpy as np

SAMPLE = 100_000
SEED = 0
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def space_latencies(model, space, sample: int = SAMPLE, seed: int = SEED) -> tuple[np.ndarray, str]:
    """(latencies in ms, how they were drawn): every architecture of a small space, else a seeded
    uniform sample."""
    if space.size <= sample:
        tokens = np.array(list(itertools.product(*(range(c) for c in space.cardinalities))), dtype=np.int64)
        return model.predict_batch(tokens), f"all {space.size:,} architectures"
    return model.predict_batch(space.sample_tokens(sample, seed=seed)), f"{sample:,} uniform samples (seed {seed})"


def distribution(latencies: np.ndarray, target_ms: float, drawn: str) -> dict:
    return {"drawn": drawn, "min_ms": float(latencies.min()), "max_ms": float(latencies.max()),
            "share_under_target": float(np.mean(latencies <= target_ms)),
            "quantiles_ms": {f"{q:g}": float(np.quantile(latencies, q)) for q in QUANTILES}}


def check_target(model, space, target_ms: float) -> dict:
    """The distribution of the space's latencies around T (`distribution`); ValueError naming
    the range when T is outside it."""
    latencies, drawn = space_latencies(model, space)
    low, high = float(latencies.min()), float(latencies.max())
    if not low <= target_ms <= high:
        raise ValueError(f"target_ms: expected a latency in the space's range [{low:.4g}, {high:.4g}] ms (predicted "
                         f"by {model.name} over {drawn} of {space.name}), got {target_ms:g}")
    return distribution(latencies, target_ms, drawn)


def target_at_quantile(model, space, quantile: float) -> float:
    """The latency at `quantile` (0..1) of the space's distribution: a target by share of the space."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile: expected a number in (0, 1), got {quantile!r}")
    latencies, _ = space_latencies(model, space)
    return float(np.quantile(latencies, quantile))


def describe(dist: dict, target_ms: float) -> str:
    q = dist["quantiles_ms"]
    parts = ", ".join(f"{float(k) * 100:g}% {v:.4g}" for k, v in q.items())
    return (f"target {target_ms:g} ms: {dist['share_under_target'] * 100:.1f}% of the space under it "
            f"(range {dist['min_ms']:.4g}-{dist['max_ms']:.4g} ms; quantiles {parts}; {dist['drawn']})")
