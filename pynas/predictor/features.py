"""Feature vectors of segments for the latency predictor: fixed names in a fixed order.

From a segment's descriptors (`pynas.ir.segments.Segment.features()`, stored with every
measurement) and the device's cache sizes (the store's device record). What a cost model of a
fused-kernel runtime needs:

* the work: kind (one-hot), channels, sizes, kernel, stride, expansion, depthwise and 1x1 conv
  groups, SE width, activation and shortcut (one-hot), MACs, parameters, bytes in / out / of weights, arithmetic intensity;
* SIMD fit: channel counts modulo 4, 8 and 16 (tails of NEON / AVX2 / AVX-512 vectors cost whole
  vectors);
* memory hierarchy: the working set (weights + the largest activations) relative to L1d, L2 and L3.

Feature names and their order are part of a predictor bundle's manifest; loading a bundle whose
list differs from FEATURE_NAMES is an error (see pynas.predictor.bundle).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from pynas.ir.ops import FLOAT_BYTES

KINDS = ("stem", "mbconv", "dsconv", "convblock", "head")
ACTS = ("none", "re", "r6", "hs", "sw")
SKIPS = ("none", "identity", "pool", "poolproj")
_NUMERIC = ("cin", "cout", "h", "w", "hout", "wout", "mid", "expansion", "kernel", "stride", "groups", "pw_groups",
            "se", "macs", "params", "weight_bytes", "bytes_in", "bytes_out")
_MODS = (4, 8, 16)

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"kind_{k}" for k in KINDS) + tuple(f"act_{a}" for a in ACTS) + tuple(f"skip_{s}" for s in SKIPS)
    + _NUMERIC
    + ("log_macs", "intensity", "mid_bytes")
    + tuple(f"{c}_mod{m}" for c in ("cin", "mid", "cout") for m in _MODS)
    + ("ws_over_l1", "ws_over_l2", "ws_over_l3")
)


class FeatureError(ValueError):
    pass


def _one_hot(field: str, value, choices) -> list[float]:
    if value not in choices:
        raise FeatureError(f"features.{field}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    return [1.0 if value == c else 0.0 for c in choices]


def feature_vector(features: Mapping, caches: Mapping[str, int | None]) -> np.ndarray:
    """FEATURE_NAMES' values for one segment. `caches`: {'l1d', 'l2', 'l3'} bytes (None: unknown,
    then the ratio is 0, the same for every row of that device)."""
    missing = [k for k in ("kind", "act", "skip") + _NUMERIC if k not in features]
    if missing:
        raise FeatureError(f"features: missing {', '.join(missing)} (expected a segment's features())")
    f = features
    row = _one_hot("kind", f["kind"], KINDS) + _one_hot("act", f["act"], ACTS) + _one_hot("skip", f["skip"], SKIPS)
    row += [float(f[k]) for k in _NUMERIC]
    moved = f["bytes_in"] + f["bytes_out"] + f["weight_bytes"]
    mid_bytes = FLOAT_BYTES * f["mid"] * f["h"] * f["w"]  # the expanded tensor a fused block keeps in cache
    row += [float(np.log1p(f["macs"])), f["macs"] / max(moved, 1), float(mid_bytes)]
    row += [float(f[c] % m) for c in ("cin", "mid", "cout") for m in _MODS]
    working_set = f["weight_bytes"] + max(f["bytes_in"], f["bytes_out"], mid_bytes)
    row += [working_set / caches[level] if caches.get(level) else 0.0 for level in ("l1d", "l2", "l3")]
    return np.asarray(row, dtype=np.float64)


def feature_matrix(rows: list[Mapping], caches: Mapping[str, int | None]) -> np.ndarray:
    if not rows:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([feature_vector(r, caches) for r in rows])


def segment_group(kind: str, features: Mapping) -> str:
    """The op-type group of a segment, e.g. 'mbconv_k5', 'mbconv_k3_g' (grouped 1x1 convs +
    channel shuffle), 'dsconv_k3', 'stem', 'head': segments whose cost moves alike from one device
    to another (a network term per group, few-shot calibration per group)."""
    if kind in ("stem", "head"):
        return kind
    group = f"{kind}_k{int(features.get('kernel', 0))}"
    if int(features.get("pw_groups", 1)) > 1:
        group += "_g"
    return group
