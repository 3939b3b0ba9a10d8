"""How a predictor's segment prices compose into a network's latency: the network term.

A segment timed alone is not a segment inside a network: alone its weights stay warm in L2 after
the first run, inside a network the other layers have evicted them (a cost per MB of weights);
other cache effects grow with the work (a scale); a network pays dispatch between steps (a fixed
overhead). So a network's predicted latency is

    network = sum over segments of (model(seg) x scale_g + offset_g + weight_g x MB(seg)) + overhead

with g the segment's op-type group (`pynas.predictor.features.segment_group`). A bundle trained on
its own device has one scale, offset 0 and one weight term for every group; per-group terms (from
bundles of pynas's first few-shot calibration) are still read. Scales are > 0 and the weight and per-segment terms
>= 0 (the fits are constrained so). The overhead is the one term fitted freely: on pynas's own
runner it comes out negative (-0.3 ms on networks of 1-8 ms: each segment timed alone pays a call
into the runner that a step inside a network does not; constrained to >= 0 the held-out network
RMSPE goes from 3.2% to 4.9%). Where the term serves a space, `fit_for_space` bounds it so that
no network of the space loses more than half its predicted work to it (checked exactly over the
space: `CompiledTable.min_ms`); a network far smaller than any the term was fitted on could still
come out <= 0 ms, and `NetworkTerm.check` refuses such a prediction, naming the range it was fitted on.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pynas.predictor.features import segment_group
from pynas.store.errors import shown

MAX_SCALE = 1e3  # a scale beyond this is no calibration of the same kind of work, but a unit error
MAX_MS = 1e6  # ms: any per-network or per-segment cost beyond 1000 s is a corrupt value
MIN_NETWORKS_FOR_SCALE = 10  # below this many measured networks only one parameter is fitted


class NetworkTermError(ValueError):
    """A network term that is not a valid one (names the field and what was expected)."""


def _check(name: str, value, *, low: float, high: float, low_open: bool = False) -> float:
    try:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        ok = False
    if not ok or value > high or value < low or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise NetworkTermError(f"network_term.{name}: expected a finite number in {bound}, got {shown(value, 80)}")
    return float(value)


def _check_groups(name: str, value, check) -> dict[str, float]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise NetworkTermError(f"network_term.{name}: expected an object of op-type group -> number, got "
                               f"{shown(value, 80)}")
    return {group: check(f"{name}.{group}", v) for group, v in value.items()}


@dataclass(frozen=True)
class NetworkTerm:
    scale: float = 1.0
    overhead_ms: float = 0.0
    weight_ms_per_mb: float = 0.0
    segment_ms: float = 0.0  # per segment (a kernel launch: what a GPU runtime pays per layer)
    fitted_ms: tuple = ()  # (lowest, highest) measured network the term was fitted on; () if none
    group_scales: dict = field(default_factory=dict)  # op-type group -> its scale (default: scale)
    group_offsets: dict = field(default_factory=dict)  # ... its per-segment ms (default: segment_ms)
    group_weight_ms_per_mb: dict = field(default_factory=dict)  # ... its weight term (default: weight_ms_per_mb)

    def __post_init__(self):
        scale = lambda n, v: _check(n, v, low=0.0, high=MAX_SCALE, low_open=True)  # noqa: E731
        ms = lambda n, v: _check(n, v, low=0.0, high=MAX_MS)  # noqa: E731
        object.__setattr__(self, "scale", scale("scale", self.scale))
        object.__setattr__(self, "overhead_ms", _check("overhead_ms", self.overhead_ms, low=-MAX_MS, high=MAX_MS))
        for name in ("weight_ms_per_mb", "segment_ms"):
            object.__setattr__(self, name, ms(name, getattr(self, name)))
        fitted = self.fitted_ms
        if fitted != ():
            if not isinstance(fitted, (list, tuple)) or len(fitted) != 2:
                raise NetworkTermError(f"network_term.fitted_ms: expected [lowest, highest] ms, got "
                                       f"{shown(fitted, 80)}")
            low, high = (ms(f"fitted_ms[{i}]", v) for i, v in enumerate(fitted))
            if low > high:
                raise NetworkTermError(f"network_term.fitted_ms: expected lowest <= highest, got {fitted!r}")
            object.__setattr__(self, "fitted_ms", (low, high))
        object.__setattr__(self, "group_scales", _check_groups("group_scales", self.group_scales, scale))
        object.__setattr__(self, "group_offsets", _check_groups("group_offsets", self.group_offsets, ms))
        object.__setattr__(self, "group_weight_ms_per_mb",
                           _check_groups("group_weight_ms_per_mb", self.group_weight_ms_per_mb, ms))

    # -- the manifest's form ---------------------------------------------------------------------
    def to_json(self) -> dict:
        out = {"scale": self.scale, "overhead_ms": self.overhead_ms, "weight_ms_per_mb": self.weight_ms_per_mb}
        if self.segment_ms:
            out["segment_ms"] = self.segment_ms
        if self.fitted_ms:
            out["fitted_ms"] = list(self.fitted_ms)
        for name in ("group_scales", "group_offsets", "group_weight_ms_per_mb"):
            if getattr(self, name):
                out[name] = dict(sorted(getattr(self, name).items()))
        return out

    @classmethod
    def from_json(cls, data) -> "NetworkTerm":
        """From a manifest's `network_term` object; NetworkTermError naming the field otherwise."""
        if not isinstance(data, dict):
            raise NetworkTermError(f"network_term: expected a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise NetworkTermError(f"network_term: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        missing = [n for n in ("scale", "overhead_ms") if n not in data]
        if missing:
            raise NetworkTermError(f"network_term.{missing[0]}: expected a number, got nothing")
        return cls(**data)

    # -- pricing ---------------------------------------------------------------------------------
    def group_scale(self, group: str) -> float:
        return self.group_scales.get(group, self.scale)

    def group_offset(self, group: str) -> float:
        return self.group_offsets.get(group, self.segment_ms)

    def group_weight(self, group: str) -> float:
        return self.group_weight_ms_per_mb.get(group, self.weight_ms_per_mb)

    def segment_terms(self, kinds: Sequence[str], features: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(scales, offsets) of segments: what multiplies each one's model price, and what adds to
        it (its group's per-segment cost and the cold fetch of its weights)."""
        groups = [segment_group(k, f) for k, f in zip(kinds, features)]
        scales = np.array([self.group_scale(g) for g in groups], dtype=np.float64)
        offsets = np.array([self.group_offset(g) + self.group_weight(g) * f["weight_bytes"] / 1e6
                            for g, f in zip(groups, features)], dtype=np.float64)
        return scales, offsets

    def check(self, ms: np.ndarray, what: str = "a network") -> np.ndarray:
        """`ms` if every latency is > 0; else an error naming the range the term was fitted on (a
        network far smaller than those, where a negative overhead outweighs its segments)."""
        ms = np.asarray(ms, dtype=np.float64)
        bad = ~(np.isfinite(ms) & (ms > 0))
        if bad.any():
            i = int(np.argmax(bad))
            fitted = (f"fitted on networks of {self.fitted_ms[0]:.3g}-{self.fitted_ms[1]:.3g} ms"
                      if self.fitted_ms else "fitted on no networks")
            raise NetworkTermError(f"{what} (row {i}) comes out at {ms[i]:.4g} ms: too far outside what the "
                                   f"network term was {fitted} (overhead {self.overhead_ms:.3g} ms) to predict")
        return ms

    def network_ms(self, sums: np.ndarray, weight_mb: np.ndarray) -> np.ndarray:
        """Networks' latency from their summed model prices and MB of weights (one scale and
        weight term for all groups: what training fits and cross-validates)."""
        return self.scale * np.asarray(sums, float) + self.weight_ms_per_mb * np.asarray(weight_mb, float) \
            + self.overhead_ms

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, sums: np.ndarray, measured: np.ndarray, weight_mb: np.ndarray | None = None, *,
            min_overhead_ms: float | None = None) -> "NetworkTerm":
        """The term minimising the relative error of scale x sums + weight x weight_mb + overhead
        against `measured` (weighted least squares, weights 1 / measured), scale and weight >= 0,
        the overhead free, or >= `min_overhead_ms` when given (`fit_for_space`). Below
        MIN_NETWORKS_FOR_SCALE networks one parameter: the overhead."""
        sums, measured = np.asarray(sums, float), np.asarray(measured, float)
        if len(sums) == 0:
            return cls()
        fitted = (float(measured.min()), float(measured.max()))
        if len(sums) < MIN_NETWORKS_FOR_SCALE:
            overhead = float(np.median(measured - sums))
            return cls(overhead_ms=overhead if min_overhead_ms is None else max(overhead, min_overhead_ms),
                       fitted_ms=fitted)
        constrained = [sums] + ([np.asarray(weight_mb, float)] if weight_mb is not None else [])
        a = np.stack(constrained, axis=1) / measured[:, None]
        solution = nonnegative_least_squares(a, np.ones_like(measured), free=1.0 / measured)
        if min_overhead_ms is not None and solution[-1] < min_overhead_ms:  # the bound is active: fix it there
            fixed = nonnegative_least_squares(a, np.ones_like(measured) - min_overhead_ms / measured)
            solution = np.r_[fixed, min_overhead_ms]
        if solution[0] <= 0:  # no positive scale fits: the segment model says nothing about these networks
            raise NetworkTermError("network term: the best fit has scale 0 (the segment predictions do not follow the "
                                   "measured networks: too few or too noisy segments?)")
        return cls(scale=float(solution[0]), overhead_ms=float(solution[-1]),
                   weight_ms_per_mb=float(solution[1]) if weight_mb is not None else 0.0, fitted_ms=fitted)


OVERHEAD_SHARE = 0.5  # at most this share of a network's predicted work may the (negative) overhead take


def fit_for_space(sums, measured, weight_mb, min_work_ms, rounds: int = 4) -> NetworkTerm:
    """`NetworkTerm.fit`, bounded so that no network of a space is predicted at less than
    (1 - OVERHEAD_SHARE) of its work: `min_work_ms(scale, weight_ms_per_mb)` is the space's least
    scale x sum + weight x MB over all its networks (a compiled table's `min_ms` with no overhead).
    The bound moves with the scale and weight, so the fit is repeated until it holds."""
    term = NetworkTerm.fit(sums, measured, weight_mb)
    for _ in range(rounds):
        bound = -OVERHEAD_SHARE * min_work_ms(term.scale, term.weight_ms_per_mb)
        if term.overhead_ms >= bound - 1e-12:
            return term
        term = NetworkTerm.fit(sums, measured, weight_mb, min_overhead_ms=bound)
    return term


def nonnegative_least_squares(a: np.ndarray, b: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
    """argmin ||a x + free y - b|| over x >= 0 and y (one unconstrained column `free`, or none),
    returned as [x..., y], for the few columns a network term has: the optimum is the unconstrained
    solution on some set of the constrained columns (the others at 0), so every set is tried and the
    best feasible one kept (2^columns small solves)."""
    n = a.shape[1]
    extra = [] if free is None else [np.asarray(free, float)[:, None]]
    best, best_residual = None, np.inf
    for size in range(0 if extra else 1, n + 1):
        for subset in itertools.combinations(range(n), size):
            cols = np.hstack([a[:, list(subset)]] + extra)
            x, *_ = np.linalg.lstsq(cols, b, rcond=None)
            if np.any(x[:size] < 0):
                continue
            residual = float(np.sum((cols @ x - b) ** 2))
            if residual < best_residual:
                best, best_residual = np.zeros(n + len(extra)), residual
                best[list(subset)] = x[:size]
                if extra:
                    best[-1] = x[-1]
    return best if best is not None else np.zeros(n + len(extra))
