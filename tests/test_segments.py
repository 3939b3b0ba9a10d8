"""Segments (pynas.ir.segments): a network is a chain of them; keys name the work."""
import numpy as np
import pytest

from pynas.arch import parse
from pynas.ir import lower
from pynas.ir.segments import SEGMENT_KINDS, segments
from pynas.presets import PRESETS, preset
from pynas.space import get_space


@pytest.mark.parametrize("name", PRESETS)
def test_segments_partition_the_graph_into_a_chain(name):
    graph = lower(preset(name))
    segs = segments(graph)
    assert [op.id for s in segs for op in s.ops] == [op.id for op in graph.ops]
    assert segs[0].id == "stem" and segs[-1].id == "head"
    assert segs[0].input_shape == (graph.arch.resolution, graph.arch.resolution, 3)
    for a, b in zip(segs, segs[1:]):
        assert a.output_shape == b.input_shape
    assert sum(s.macs for s in segs) == graph.macs and sum(s.params for s in segs) == graph.params
    assert all(s.kind in SEGMENT_KINDS for s in segs)


def test_every_op_reads_only_its_segment_or_the_segment_input():
    fbnet = [a for setting in ("imagenet", "cifar100") for a in get_space("fbnet", setting=setting).sample(10, seed=3)]
    for arch in get_space("mnasnet").sample(30, seed=3) + fbnet:
        for seg in segments(lower(arch)):
            inside = {op.id for op in seg.ops}
            outside = {src for op in seg.ops for src in op.inputs if src not in inside}
            assert len(outside) == 1, (seg.id, outside)  # one input tensor: buildable alone


def test_keys_are_equal_exactly_when_the_work_is():
    a = parse("net_res224_cls1000:stem_k3_s2_c32:ir_r2_k3_s2_e6_c24:ir_r1_k5_s2_e3_c40_se0.25:head_c1280")
    b = parse("net_res224_cls1000:stem_k3_s2_c32:ir_r3_k3_s2_e6_c24:ir_r1_k5_s2_e3_c40_se0.25_noskip:head_c1000")
    d = parse("net_res224_cls10:stem_k3_s2_c32:ir_r2_k3_s2_e6_c24:ir_r1_k5_s2_e3_c40_se0.25:head_c1280")
    ka = {s.id: s.key for s in segments(lower(a))}
    kb = {s.id: s.key for s in segments(lower(b))}
    assert {s.id: s.key for s in segments(lower(d))}["head"] != ka["head"]  # 10 classes
    assert ka["s0.0"] == kb["s0.0"] and ka["s0.1"] == kb["s0.1"] == kb["s0.2"] and ka["stem"] == kb["stem"]
    assert ka["s1.0"] == kb["s1.0"]  # stride 2 and channel change: no residual either way
    assert ka["head"] != kb["head"]  # head conv 1280 vs 1000 channels
    c = parse("net_res224_cls1000:stem_k3_s2_c32:ir_r2_k3_s2_e6_c24_noskip:head_c1280")
    assert {s.id: s.key for s in segments(lower(c))}["s0.1"] != ka["s0.1"]  # residual dropped
    # Keys of a sample are unique per distinct feature set.
    seen = {}
    for arch in get_space("mnasnet").sample(50, seed=9):
        for seg in segments(lower(arch)):
            f = tuple(sorted(seg.features().items()))
            assert seen.setdefault(seg.key, f) == f


def test_features():
    arch = parse("net_res224_cls1000:stem_k3_s2_c32:ir_r1_k5_s2_e3_c40_se0.25_poolskip:cn_r1_k3_s1_c40_skip:head_c1280")
    segs = {s.id: s for s in segments(lower(arch))}
    f = segs["s0.0"].features()
    assert f["kind"] == "mbconv" and f["cin"] == 32 and f["mid"] == 96 and f["expansion"] == 3
    assert (f["h"], f["hout"], f["cout"], f["kernel"], f["stride"]) == (112, 56, 40, 5, 2)
    assert f["se"] == 8 and f["skip"] == "poolproj" and f["act"] == "re"
    g = segs["s1.0"].features()
    assert g["kind"] == "convblock" and g["skip"] == "identity" and g["kernel"] == 3
    assert segs["stem"].features()["kind"] == "stem" and segs["head"].key.startswith("head_n1_i40x56x56_c1280")


def test_fbnet_segments():
    """Grouped blocks are mbconv segments whose key says g2; a shape-changing id (skip) layer is a
    convblock with a 1x1 cn block's key; an identity id layer is no segment; the chain holds."""
    arch = parse("net_res32_cls10:stem_k3_s1_c16:id_r1_s1_c16:ir_r1_k3_s1_e1_c24_g2:id_r1_s2_c32:"
                 "ir_r1_k5_s1_e6_c32:head_c64")
    segs = {s.id: s for s in segments(lower(arch))}
    assert list(segs) == ["stem", "s1.0", "s2.0", "s3.0", "head"]
    g = segs["s1.0"].features()
    assert g["kind"] == "mbconv" and g["pw_groups"] == 2 and g["mid"] == 16 and g["expansion"] == 1
    assert "_m16_g2_k3_" in segs["s1.0"].key
    skip = segs["s2.0"]
    assert skip.kind == "convblock" and skip.features()["pw_groups"] == 1
    cn = parse("net_res32_cls10:stem_k3_s1_c24:cn_r1_k1_s2_c32:head_c64")
    assert skip.key == {s.id: s for s in segments(lower(cn))}["s0.0"].key
    assert segs["s3.0"].features()["pw_groups"] == 1
    assert [s.output_shape for s in segs.values()][:-1] == [s.input_shape for s in segs.values()][1:]


def test_native_segment_runs_alone():
    from pynas.native.runner import NativeNetwork

    arch = preset("mnasnet-a1")
    segs = segments(lower(arch))
    whole = NativeNetwork(arch, seed=0)
    x = np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
    y = x
    for seg in segs:  # the chain of segment networks computes the whole network
        y = NativeNetwork(arch, seed=0, segment=seg.id).run(y)
    np.testing.assert_allclose(y, whole.run(x), rtol=1e-4, atol=1e-4 * np.abs(y).max())
    with pytest.raises(ValueError, match="segment: expected one of"):
        NativeNetwork(arch, segment="s9.0")
