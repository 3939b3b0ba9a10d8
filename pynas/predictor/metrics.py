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


def _dense_ranks(x: np.ndarray) -> np.ndarray:
    return np.unique(x, return_inverse=True)[1].astype(np.int64).ravel()


def _inversions(b: np.ndarray) -> int:
    """Pairs i < j with b[i] > b[j] (strictly) of an int64 rank array, by a bottom-up merge sort
    whose every level is vectorised (one global sort and one searchsorted per level)."""
    n = len(b)
    keys = b.copy()
    span = int(b.max()) + 1 if n else 1
    count, width = 0, 1
    positions = np.arange(n)
    while width < n:
        pair = positions // (2 * width)  # which merge a position takes part in
        right = (positions // width) % 2 == 1
        key = pair * span + keys  # runs are sorted within themselves; pairs are ordered by id
        left_keys = key[~right]  # ascending: each left run is sorted, pair ids increase
        # For each right element: how many of its pair's left run are greater.
        ends = np.searchsorted(left_keys, (pair[right] + 1) * span, side="left")
        count += int(np.sum(ends - np.searchsorted(left_keys, key[right], side="right")))
        keys = np.sort(key) - pair * span  # merge every pair (pair ids keep them apart)
        width *= 2
    return count


def kendall(a, b) -> float:
    """Kendall's tau-b of two 1-d arrays (ties as in scipy.stats.kendalltau), O(n log n) in numpy:
    15,625 values in ~10 ms. NaN if either array is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a, b: expected two 1-d arrays of one length >= 2, got shapes {a.shape} and {b.shape}")
    ra, rb = _dense_ranks(a), _dense_ranks(b)
    order = np.lexsort((rb, ra))  # by a, ties by b
    ra, rb = ra[order], rb[order]

    def tied_pairs(counts) -> int:
        return int(np.sum(counts * (counts - 1) // 2))

    def runs(new_run) -> np.ndarray:  # lengths of the runs of equal values of a sorted sequence
        starts = np.flatnonzero(np.r_[True, new_run])
        return np.diff(np.r_[starts, len(new_run) + 1])

    n0 = len(a) * (len(a) - 1) // 2
    n1, n2 = tied_pairs(runs(np.diff(ra) != 0)), tied_pairs(np.bincount(rb))
    n3 = tied_pairs(runs((np.diff(ra) != 0) | (np.diff(rb) != 0)))
    if n0 == n1 or n0 == n2:
        return float("nan")
    discordant = _inversions(rb)  # ties in a are sorted by b, so they add no inversion
    return float((n0 - n1 - n2 + n3 - 2 * discordant) / np.sqrt((n0 - n1) * (n0 - n2)))


def nnls(a, b, *, ridge: float = 0.0, tolerance: float | None = None, max_iterations: int | None = None
         ) -> np.ndarray:
    """argmin ||a x - b||^2 + ridge ||x||^2 subject to x >= 0 (Lawson and Hanson's active set),
    for the small dense problems of the latency decompositions (tens of unknowns, many rows):
    numpy only. Works on the normal equations (n x n), so each step costs nothing in the number
    of rows. Lawson-Hanson needs independent columns: with redundant ones (a one-hot per edge and
    an intercept) pass a tiny `ridge`, which makes the optimum unique."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.shape != (a.shape[0],):
        raise ValueError(f"a, b: expected an m x n matrix and m values, got shapes {a.shape} and {b.shape}")
    n = a.shape[1]
    gram, target = a.T @ a + ridge * np.eye(n), a.T @ b
    tolerance = 10 * max(a.shape) * np.finfo(float).eps * max(1.0, float(np.abs(gram).max(initial=0))) \
        if tolerance is None else tolerance
    limit = max_iterations or 3 * n + 30
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(limit):
        gradient = target - gram @ x
        candidates = ~passive & (gradient > tolerance)
        if not candidates.any():
            return x
        passive[np.argmax(np.where(candidates, gradient, -np.inf))] = True
        while True:
            z = np.zeros(n)
            idx = np.flatnonzero(passive)
            sub = gram[idx][:, idx]
            try:  # the common case, and 10x faster than lstsq on these tiny systems
                z[idx] = np.linalg.solve(sub, target[idx])
            except np.linalg.LinAlgError:  # singular (redundant columns, no ridge): least norm
                z[idx] = np.linalg.lstsq(sub, target[idx], rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            blocking = passive & (z <= 0)
            alpha = np.min(x[blocking] / (x[blocking] - z[blocking]))
            x = x + alpha * (z - x)
            passive &= x > tolerance
            x[~passive] = 0.0
    raise RuntimeError(f"nnls: no solution within {limit} iterations")
