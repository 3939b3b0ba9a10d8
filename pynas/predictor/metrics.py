"""Accuracy of latency predictions, the way the latency-predictor literature reports it
(nn-Meter, LitePred, HELP): RMSPE, share within +-5% / +-10%, Spearman's rank correlation."""
from __future__ import annotations

import numpy as np


def _check(predicted, measured) -> tuple[np.ndarray, np.ndarray]:
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if p.shape != m.shape or p.ndim != 1 or not len(p):
        raise ValueError(f"predicted, measured: expected two non-empty 1-d arrays of one length, got shapes "
                         f"{p.shape} and {m.shape}")
    if not (m > 0).all():
        raise ValueError("measured: expected latencies > 0")
    return p, m


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # Ties share their mean rank.
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(a, b) -> float:
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def accuracy(predicted, measured) -> dict[str, float]:
    """{'n', 'rmspe', 'within5', 'within10', 'spearman', 'mean_error'} (shares and RMSPE in %)."""
    p, m = _check(predicted, measured)
    rel = (p - m) / m
    return {"n": int(len(m)), "rmspe": float(100 * np.sqrt(np.mean(rel ** 2))),
            "within5": float(100 * np.mean(np.abs(rel) <= 0.05)),
            "within10": float(100 * np.mean(np.abs(rel) <= 0.10)),
            "spearman": spearman(p, m), "mean_error": float(100 * np.mean(rel))}
