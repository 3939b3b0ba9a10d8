"""The uniform width baseline: one MobileNet width multiplier for the whole network, the widest
predicted under a target. What NetAdapt (`pynas.ship.netadapt`) and Network Slimming
(`pynas.ship.slimming`) are compared against; `pynas.ship.plan_check.measured_uniform` holds it to
the measured rule. Its own module so that both and plan_check use it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pynas.arch import Arch, scale_width

UNIFORM_STEP = 0.01  # the grid of width multipliers the uniform baseline tries, from 1 down


def predict_all(predictor, archs: Sequence[Arch]) -> list[float]:
    """`predictor.predict_batch(archs)` as floats, one per architecture (a ValueError if not)."""
    if not archs:
        return []
    values = [float(v) for v in predictor.predict_batch(list(archs))]
    if len(values) != len(archs):
        raise ValueError(f"predictor: expected {len(archs)} latencies, got {len(values)}")
    return values


@dataclass(frozen=True)
class UniformBaseline:
    multiplier: float
    arch: Arch
    predicted_ms: float

    def __iter__(self):  # (multiplier, arch, predicted_ms), as slimming's callers unpack it
        return iter((self.multiplier, self.arch, self.predicted_ms))


def uniform_width_baseline(arch: Arch, predictor, target_ms: float) -> UniformBaseline:
    """The largest width multiplier m on a grid of `UNIFORM_STEP` in (0, 1] whose
    `scale_width(arch, m)` (MobileNet's rule: every stem and stage width to make_divisible(c * m),
    the head kept) is predicted at most `target_ms`; a ValueError naming --target-ms if none is."""
    multipliers = [round(k * UNIFORM_STEP, 6) for k in range(round(1 / UNIFORM_STEP), 0, -1)]
    scaled: dict[float, Arch] = {}
    for m in multipliers:
        try:
            scaled[m] = scale_width(arch, m)
        except ValueError:  # grouped 1x1 convs that do not divide the scaled width
            continue
    distinct = {str(a): a for a in scaled.values()}
    by_text = dict(zip(distinct, predict_all(predictor, list(distinct.values()))))
    for m, candidate in scaled.items():
        if by_text[str(candidate)] <= target_ms:
            return UniformBaseline(m, candidate, by_text[str(candidate)])
    least = min(by_text.values())
    raise ValueError(f"--target-ms: {target_ms:g} ms is below every uniform width multiplier of {arch} "
                     f"(the least predicted: {least:.3f} ms)")


__all__ = ["UNIFORM_STEP", "UniformBaseline", "predict_all", "uniform_width_baseline"]
