"""What there is to measure and price in an architecture or a space: its segments, as items.

A network is a chain of segments (`pynas.ir.segments`: the stem, each block repeat, the head);
segments and whole networks are what pynas measures on devices and what its predictors price.
This module is the one place that says what such an item is:

* `segments_of(arch)`: the segments of an architecture (lowered once, cached by architecture).
* `Item`: one thing to measure or price, a segment of an architecture or a whole network, with
  the key and features a measurement record stores (`pynas.store.OpKey`). Profiling plans are
  lists of items, op list files (`pynas-profile`, adb) are written from items, a predictor's
  training data is keyed by theirs.
* `network_features(arch)`: the one definition of a whole network's features.
* `space_items(space)`: every distinct segment any architecture of a space contains (the
  segment catalogue of the space): what profiling measures to price the whole space, and what a
  compiled latency table is priced from.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from pynas.arch import Arch
from pynas.ir import lower
from pynas.ir.segments import Segment, segments
from pynas.space.base import SearchSpace

NETWORK_KIND = "network"  # a whole network's kind; its key is its architecture string


@functools.lru_cache(maxsize=4096)
def segments_of(arch: Arch) -> tuple[Segment, ...]:
    """The segments of `arch` in execution order (lowered once per architecture)."""
    return tuple(segments(lower(arch)))


def segment_by_id(arch: Arch) -> dict[str, Segment]:
    """`arch`'s segments by id ("stem", "s<stage>.<repeat>", "head")."""
    return {s.id: s for s in segments_of(arch)}


def network_features(arch: Arch) -> dict:
    """A whole network's features as a measurement record stores them: its size and its segments'
    keys in order (what the network's latency is predicted from)."""
    graph = lower(arch)
    return {"macs": graph.macs, "params": graph.params, "weight_bytes": graph.weight_bytes,
            "resolution": arch.resolution, "segments": [s.key for s in segments_of(arch)]}


@dataclass(frozen=True)
class Item:
    """One thing to measure or price: segment `segment` of `arch`, or with `segment` None the
    whole network (kind "network", key its architecture string)."""

    key: str
    kind: str
    features: dict
    arch: Arch
    segment: str | None = None

    @classmethod
    def of_segment(cls, arch: Arch, seg: Segment) -> "Item":
        return cls(seg.key, seg.kind, seg.features(), arch, seg.id)

    @classmethod
    def of_network(cls, arch: Arch) -> "Item":
        return cls(str(arch), NETWORK_KIND, network_features(arch), arch, None)

    @property
    def is_network(self) -> bool:
        return self.segment is None


def space_items(space: SearchSpace) -> dict[str, Item]:
    """Every distinct segment of `space` by key, in a stable order (first seen first), each with an
    architecture of the space that contains it."""
    found: dict[str, Item] = {}
    for arch, sid in space.segment_archs():
        seg = segment_by_id(arch).get(sid)
        if seg is None:
            raise AssertionError(f"space {space.name}: segment {sid} missing from {arch}")
        if seg.key not in found:
            found[seg.key] = Item.of_segment(arch, seg)
    return found
