"""Where slimming's plan may go on a latency model: not below the channel counts the model's segments
were measured with, and in steps of the device's SIMD width.

    from pynas.ship.plan_limits import fitted_minima, floors
    minima = fitted_minima(bundle)               # {(kind, input px): {"cin": 12, "mid": 36, "cout": 12}}, or None
    group_min, mid_min, notes = floors(layout, minima, lanes=8)
    layout = layout.with_floors(group_min, mid_min)

Why floors. A segment model (XGBoost) prices a segment from its features; a count below every one
it was fitted on is an extrapolation, and trees extrapolate flat. On the Xeon's bundle (MnasNet space
at 224 px: the stem always 32 wide, the first block 12-20) a plan that thinned the stem and stage 0
to 8 channels measured 1.06 x T: the 8-channel stem at 112 px and the first repeats reading 8
channels cost more than the model said (bench/ship-results.md, slim). So each segment of the planned
network keeps its input, expanded and output channels at or above the fewest the bundle measured in
a segment of its kind at its input resolution (`fitted_minima`: from the measurements the bundle
ships, the rows its model was trained on), capped at the original count (a floor never widens a
layer the architecture already has narrower). A kind and resolution the bundle never measured sets
no floor there (`floors` says which in its notes): the categorical domain check refuses what the
model cannot price at all. A bundle without its measurements sets none (said in the notes).

Why lanes (`pynas.ship.slimming.plan_widths`' steps; 8 unless asked). Every count the plan moves to
is a multiple of the lanes (or the original): a count between multiples pays for a partly filled
register while the model, fitted on smooth counts, prices it by its MACs. Not the register's full
width on AVX-512: on the Xeon (16 float32 lanes) 8-channel steps cost in proportion (a 3x3
depthwise block at 112 px: 0.16 ms at 8 channels, 0.31 at 16; expanded 424/432/440/448 at 14 px:
0.34/0.36/0.37/0.37 ms), so steps of 16 would halve the plan's choices for nothing measured.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

DEFAULT_LANES = 8  # AVX2's float32 lanes; on the AVX-512 Xeon 8-channel steps cost in proportion too (below)
FEATURES = ("cin", "mid", "cout")


def fitted_minima(predictor) -> dict[tuple[str, int], dict[str, int]] | None:
    """{(segment kind, input resolution): {"cin", "mid", "cout": the fewest channels of a segment
    of that kind and resolution the bundle's model was trained on}}, from the measurements the
    bundle ships (`Predictor.training_data`); None without them (a fake model, a lookup table, a
    bundle shipped without its measurements)."""
    folder = getattr(predictor, "folder", None)
    if folder is None or not hasattr(predictor, "training_data"):
        return None
    from pynas.predictor.predictors import MEASUREMENTS

    path = Path(folder) / MEASUREMENTS
    if not path.is_file():
        return None
    return _minima(predictor, str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _minima(predictor, path: str, mtime_ns: int) -> dict:
    data = predictor.training_data()
    out: dict[tuple[str, int], dict[str, int]] = {}
    for kind, features, _ in data.segments.values():
        seen = out.setdefault((kind, int(features["h"])), {name: math.inf for name in FEATURES})
        for name in FEATURES:
            seen[name] = min(seen[name], int(features[name]))
    return out


def _aligned_up(count: int, lanes: int) -> int:
    return -(-count // lanes) * lanes


def floors(layout, minima: dict | None, lanes: int) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """(group -> fewest channels, ir layer index -> fewest expanded channels, notes) for `layout`
    (`pynas.ship.channels.Layout` of the architecture the bundle prices): each segment's input,
    expanded and output counts at least `minima`'s for its kind and input resolution, rounded up to
    a multiple of `lanes` (the counts the plan moves to), never above the original (`Layout.with_floors`
    caps). Notes: the floors set above MIN_CHANNELS, and the segments no floor covers."""
    from pynas.space.catalogue import segments_of
    from pynas.ship.channels import MIN_CHANNELS

    if minima is None:
        return {}, {}, ["no floors: the latency model ships no measurements to say which widths it was fitted on"]
    group_min: dict[int, int] = {}
    mid_min: dict[int, int] = {}
    unmeasured: list[str] = []
    layers = {f"s{layer.stage}.{layer.repeat}": layer for layer in layout.layers}

    def at_least(group: int, count: int) -> None:
        group_min[group] = max(group_min.get(group, 0), _aligned_up(count, lanes))

    for seg in segments_of(layout.arch):
        features = seg.features()
        fitted = minima.get((seg.kind, int(features["h"])))
        if fitted is None:
            unmeasured.append(f"{seg.id} ({seg.kind} at {features['h']} px)")
            continue
        if seg.id == "stem":
            at_least(layout.space_group[layout.stem_space], fitted["cout"])
        elif seg.id == "head":
            at_least(layout.space_group[layout.last_space], fitted["cin"])
        elif seg.id in layers:
            layer = layers[seg.id]
            at_least(layout.space_group[layer.cin_space], fitted["cin"])
            at_least(layout.space_group[layer.cout_space], fitted["cout"])
            if layer.mid:
                mid_min[layer.index] = max(mid_min.get(layer.index, 0), _aligned_up(fitted["mid"], lanes))
    notes = []
    named = _group_names(layout)
    raised = [f"{named[g]} >= {min(n, layout.group_size[g])}" for g, n in sorted(group_min.items())
              if min(n, layout.group_size[g]) > min(MIN_CHANNELS, layout.group_size[g])]
    if raised:
        notes.append("fitted widths: " + ", ".join(raised))
    if unmeasured:
        notes.append("no floor where the bundle measured no segment of the kind at the resolution: "
                     + ", ".join(unmeasured))
    return group_min, mid_min, notes


def _group_names(layout) -> dict[int, str]:
    """Group -> a name for notes: 'stem', 'stage 2' (or 'stages 0-1' when tied), 'head'."""
    names: dict[int, list[str]] = {}
    names.setdefault(layout.space_group[layout.stem_space], []).append("stem")
    for s, group in enumerate(layout.stage_group):
        if group is not None:
            names.setdefault(group, []).append(f"stage {s}")
    names.setdefault(layout.space_group[layout.head_space], []).append("head")
    return {g: "+".join(parts) for g, parts in names.items()}


__all__ = ["DEFAULT_LANES", "fitted_minima", "floors"]
