"""What to measure for a search space besides its own segments (`pynas.space.catalogue.space_items`):
samples around them and whole networks.

* `neighbour_segments(...)`: segments just outside the space (other channel counts and input
  sizes, same block kinds), so a learned predictor sees how latency moves between the space's
  points rather than only at them.
* `network_samples(space, n, seed)`: whole networks, for end-to-end validation and calibration.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from pynas.arch import Arch, Stage, parse
from pynas.space.base import SearchSpace
from pynas.space.catalogue import Item, segment_by_id


def neighbour_segments(configs: dict[str, Item], n: int, seed: int = 0,
                       channel_scales=(0.5, 0.625, 0.875, 1.125, 1.5),
                       size_scales=(0.5, 0.75, 1.5)) -> dict[str, Item]:
    """`n` segments near randomly chosen block segments of `configs`: the same block (kind, kernel,
    stride, expansion, SE, shortcut) with its input channels, output channels and input size
    scaled, built as a one-block network (`net_res<H>:stem_k1_s1_c<cin>:<block>:head_c8`)."""
    rng = np.random.default_rng(seed)
    blocks = [c for c in configs.values() if c.kind in ("mbconv", "dsconv", "convblock") and c.segment.endswith(".0")]
    if not blocks:
        raise ValueError("configs: expected block segments to sample around, got none")
    out: dict[str, Item] = {}
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
        seg = segment_by_id(arch).get("s0.0")
        if seg is None:  # an id (skip) layer whose drawn shapes match is the identity: no work
            continue
        if seg.key not in configs and seg.key not in out:
            out[seg.key] = Item.of_segment(arch, seg)
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
