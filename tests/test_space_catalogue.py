"""The space catalogue: segments of an architecture, items to measure, a network's features."""
import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.presets import preset
from pynas.space import get_space
from pynas.space.catalogue import NETWORK_KIND, Item, network_features, segment_by_id, segments_of, space_items

A1 = preset("mnasnet-a1")


def test_segments_of_is_the_lowering_cached():
    assert [s.key for s in segments_of(A1)] == [s.key for s in segments(lower(A1))]
    assert segments_of(A1) is segments_of(parse(str(A1)))  # equal architectures share one lowering
    assert list(segment_by_id(A1)) == [s.id for s in segments_of(A1)]


def test_network_item_and_features():
    item = Item.of_network(A1)
    graph = lower(A1)
    assert item.key == str(A1) and item.kind == NETWORK_KIND and item.is_network and item.segment is None
    assert item.features == network_features(A1) == {
        "macs": graph.macs, "params": graph.params, "weight_bytes": graph.weight_bytes, "resolution": 224,
        "segments": [s.key for s in segments_of(A1)]}


def test_segment_items():
    seg = segments_of(A1)[3]
    item = Item.of_segment(A1, seg)
    assert (item.key, item.kind, item.segment, item.arch) == (seg.key, seg.kind, seg.id, A1)
    assert item.features == seg.features() and not item.is_network


@pytest.mark.parametrize("name, options, count", [("mnasnet", {}, 2935), ("fbnet", {"setting": "cifar100"}, 104)])
def test_space_items_are_distinct_and_found_in_their_architectures(name, options, count):
    items = space_items(get_space(name, **options))
    assert len(items) == count and all(key == item.key for key, item in items.items())
    for item in list(items.values())[::97]:
        assert segment_by_id(item.arch)[item.segment].key == item.key
