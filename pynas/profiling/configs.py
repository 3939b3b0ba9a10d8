"""What to measure for a search space: its distinct segments, samples around them, whole networks.

* `space_segments(space)`: every distinct segment (`pynas.ir.segments`) any architecture of the
  space contains, keyed by segment key, each with an (arch, segment id) that builds it.
* `neighbour_segments(...)`: segments just outside the space (other channel counts and input
  sizes, same block kinds), so a learned predictor sees how latency moves between the space's
  points rather than only at them.
* `network_samples(space, n, seed)`: whole networks, for end-to-end validation and calibration.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pynas.arch import Arch, Stage, parse
from pynas.ir import lower
from pynas.ir.segments import Segment, segments
from pynas.space.base import SearchSpace


@dataclass(frozen=True)
class SegmentConfig:
    key: str
    kind: str
    arch: Arch  # an architecture containing the segment
    segment: str  # its id there
    features: dict

    @classmethod
    def of(cls, arch: Arch, seg: Segment) -> "SegmentConfig":
        return cls(key=seg.key, kind=seg.kind, arch=arch, segment=seg.id, features=seg.features())


def space_segments(space: SearchSpace) -> dict[str, SegmentConfig]:
    """Distinct segments of `space`, in a stable order (first seen first)."""
    found: dict[str, SegmentConfig] = {}
    cache: dict[str, dict[str, Segment]] = {}
    for arch, sid in space.segment_archs():
        name = str(arch)
        if name not in cache:
            cache = {name: {s.id: s for s in segments(lower(arch))}}  # consecutive pairs share an arch
        seg = cache[name].get(sid)
        if seg is None:
            raise AssertionError(f"space {space.name}: segment {sid} missing from {arch}")
        if seg.key not in found:
            found[seg.key] = SegmentConfig.of(arch, seg)
    return found


def neighbour_segments(configs: dict[str, SegmentConfig], n: int, seed: int = 0,
                       channel_scales=(0.5, 0.625, 0.875, 1.125, 1.5),
                       size_scales=(0.5, 0.75, 1.5)) -> dict[str, SegmentConfig]:
    """`n` segments near randomly chosen block segments of `configs`: the same block (kind, kernel,
    stride, expansion, SE, shortcut) with its input channels, output channels and input size
    scaled, built as a one-block network (`net_res<H>:stem_k1_s1_c<cin>:<block>:head_c8`)."""
    rng = np.random.default_rng(seed)
    blocks = [c for c in configs.values() if c.kind in ("mbconv", "dsconv", "convblock") and c.segment.endswith(".0")]
    if not blocks:
        raise ValueError("configs: expected block segments to sample around, got none")
    out: dict[str, SegmentConfig] = {}
    attempts = 0
    while len(out) < n and attempts < 50 * n:
        attempts += 1
        base = blocks[rng.integers(len(blocks))]
        stage = base.arch.stages[int(base.segment[1:].split(".")[0])]
        f = base.features
        cin = max(8, int(round(f["cin"] * rng.choice(channel_scales) / 8)) * 8)
        cout = max(8, int(round(f["cout"] * rng.choice(channel_scales) / 8)) * 8)
        size = max(4, int(round(f["h"] * rng.choice(size_scales))))
        arch = parse(f"net_res{size}_cls10:stem_k1_s1_c{cin}:{_stage_string(stage, cout)}:head_c8")
        seg = next((s for s in segments(lower(arch)) if s.id == "s0.0"), None)
        if seg is None:  # an id (skip) layer whose drawn shapes match is the identity: no work
            continue
        if seg.key not in configs and seg.key not in out:
            out[seg.key] = SegmentConfig.of(arch, seg)
    return out


def _stage_string(stage: Stage, channels: int) -> str:
    """The block string of `stage` with one repeat and `channels` output channels."""
    return str(replace(stage, repeats=1, channels=channels))


def network_samples(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """`n` distinct architectures sampled uniformly from `space`."""
    seen: dict[str, Arch] = {}
    draw = 0
    while len(seen) < n:
        for arch in space.sample(n, seed=seed + draw):
            seen.setdefault(str(arch), arch)
        draw += 1
        if draw > 100:
            raise ValueError(f"space {space.name}: fewer than {n} distinct architectures")
    return list(seen.values())[:n]
