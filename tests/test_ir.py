"""Op-graph IR: totals against the papers, shapes, per-op counts, fusion and canonical keys.

Counting convention (pynas.ir.ops): MACs are the multiply-accumulates of convs and FCs (SE's FCs
included; pooling, activations, adds and the SE scale count 0); params are PyTorch's trainable
parameters, BatchNorm's gamma and beta included. The papers and timm/torchvision count this way.
"""
import math

import pytest

from pynas.arch import parse
from pynas.ir import NETWORK_INPUT, fuse, lower
from pynas.presets import PRESETS, preset
from pynas.space import get_space

# name: (params as published, MACs as published, exact params of torchvision/timm's model)
PAPER_TOTALS = {
    "mnasnet-a1": (3.89e6, 312e6, 3_887_038),  # MnasNet paper Fig. 7; timm semnasnet_100
    "mnasnet-b1": (4.38e6, 315e6, 4_383_312),  # torchvision mnasnet1_0
    "mobilenetv2-1.0": (3.50e6, 300e6, 3_504_872),  # torchvision mobilenet_v2
    "mobilenetv3-large": (5.48e6, 217e6, 5_483_032),  # paper Table 3 says 5.4M; timm mobilenetv3_large_100
}


def _sampled(n=150, seed=21, resolution=224):
    return get_space("mnasnet", resolution=resolution).sample(n, seed=seed)


@pytest.mark.parametrize("name", PAPER_TOTALS)
def test_totals_match_the_papers(name):
    params, macs, exact_params = PAPER_TOTALS[name]
    graph = lower(preset(name))
    assert graph.params == exact_params
    assert abs(graph.params - params) / params < 0.01
    assert abs(graph.macs - macs) / macs < 0.02


def test_mobilenetv2_width_multipliers_scale_like_the_paper():
    # MobileNetV2 paper Table 6 (224): 0.75 -> 209M MACs / 2.61M params, 1.4 -> 582M / 6.06M;
    # the small differences in params are the paper's rounding of the classifier/head.
    assert abs(lower(preset("mobilenetv2-0.75")).macs - 209e6) / 209e6 < 0.02
    assert abs(lower(preset("mobilenetv2-1.4")).macs - 582e6) / 582e6 < 0.02
    assert abs(lower(preset("mobilenetv2-1.4")).params - 6.06e6) / 6.06e6 < 0.01


def _check_graph_shapes(graph):
    shapes = {NETWORK_INPUT: (3, graph.arch.resolution, graph.arch.resolution)}
    for op in graph.ops:
        for source in op.inputs:
            assert source < op.id, f"{op.name} reads a later op"
            assert shapes[source] == (op.cin, op.hin, op.win), f"{op.name}: input shape mismatch"
        if op.kind in ("conv", "dwconv", "pwconv", "avgpool"):
            assert op.padding == op.kernel // 2
            assert op.hout == math.ceil(op.hin / op.stride) and op.wout == math.ceil(op.win / op.stride)
        if op.kind == "dwconv":
            assert op.groups == op.cin == op.cout
        if op.kind in ("act", "se", "add", "shuffle"):
            assert (op.cout, op.hout, op.wout) == (op.cin, op.hin, op.win)
        shapes[op.id] = (op.cout, op.hout, op.wout)
    assert (graph.output.kind, graph.output.cout, graph.output.hout) == ("fc", graph.arch.num_classes, 1)


@pytest.mark.parametrize("resolution", [224, 225, 97, 32])
def test_shapes_are_consistent(resolution):
    archs = [preset(n).replace(resolution=resolution) for n in PRESETS] + _sampled(60, resolution=resolution)
    archs += [a.replace(resolution=resolution) for a in _fbnet_sampled(10, seed=resolution)]
    for arch in archs:
        _check_graph_shapes(lower(arch))


def test_counts_of_a_small_network_by_hand():
    arch = parse("net_res8_cls10:stem_k3_s2_c8:ir_r1_k3_s1_e2_c8_se0.25:cn_r1_k3_s2_c12_poolskip:head_c16")
    ops = {op.name: op for op in lower(arch).ops}
    assert (ops["stem"].macs, ops["stem"].params) == (8 * 4 * 4 * 3 * 9, 8 * 3 * 9 + 2 * 8)
    assert (ops["s0.0.expand"].macs, ops["s0.0.expand"].params) == (16 * 16 * 8, 16 * 8 + 32)
    assert (ops["s0.0.dw"].macs, ops["s0.0.dw"].params) == (16 * 16 * 9, 16 * 9 + 32)
    se = ops["s0.0.se"]  # reduces round(8 block input channels * 0.25) = 2
    assert (se.se_channels, se.macs, se.params, se.gate) == (2, 2 * 16 * 2, 16 * 2 + 2 + 2 * 16 + 16, "sigmoid")
    assert ops["s0.0.add"].inputs == (ops["s0.0.project"].id, ops["s0.0.expand"].inputs[0])
    pool = ops["s1.0.skip_pool"]
    assert (pool.kernel, pool.stride, pool.padding, pool.hout, pool.macs) == (3, 2, 1, 2, 0)
    assert ops["s1.0.skip_proj"].macs == 12 * 2 * 2 * 8
    assert ops["s1.0.add"].inputs == (ops["s1.0.conv.act"].id, ops["s1.0.skip_proj"].id)
    assert ops["head.conv"].params == 16 * 12 + 2 * 16
    assert (ops["classifier"].macs, ops["classifier"].params) == (160, 170)
    assert ops["stem"].weight_bytes == 4 * (8 * 3 * 9 + 8)  # BN folded into one bias per channel
    assert ops["s0.0.add"].bytes_in == 2 * 4 * 8 * 4 * 4 and ops["s0.0.add"].bytes_out == 4 * 8 * 4 * 4


def test_grouped_block_counts_by_hand():
    """ir g2 (FBNet's e1_g2): grouped expand (with its act) then a channel shuffle, depthwise,
    grouped projection; an e1 block keeps its 1x1 expand (HW-NAS-Bench's ConvBlock has it)."""
    arch = parse("net_res8_cls10:stem_k3_s1_c8:ir_r1_k3_s2_e1_c12_g2:ir_r1_k5_s1_e3_c12_g2:ir_r1_k3_s1_e1_c12:head_c16")
    graph = lower(arch)
    ops = {op.name: op for op in graph.ops}
    assert [op.role for op in graph.ops if op.block == "s0.0"] == [
        "expand", "expand_act", "shuffle", "dw", "dw_act", "project"]
    expand, shuffle, project = ops["s0.0.expand"], ops["s0.0.shuffle"], ops["s0.0.project"]
    assert (expand.kind, expand.groups, expand.cout) == ("pwconv", 2, 8)
    assert (expand.macs, expand.params) == (8 * 8 * 8 * (8 // 2), 8 * 4 + 2 * 8)
    assert (shuffle.kind, shuffle.groups, shuffle.inputs, shuffle.cin, shuffle.cout) == (
        "shuffle", 2, (ops["s0.0.expand.act"].id,), 8, 8)
    assert (shuffle.macs, shuffle.params, shuffle.weight_bytes) == (0, 0, 0)
    assert shuffle.bytes_in == shuffle.bytes_out == 4 * 8 * 8 * 8
    assert shuffle.key == "shuffle_n1_i8x8x8_o8x8x8_g2"
    assert ops["s0.0.dw"].inputs == (shuffle.id,)
    assert (project.groups, project.macs, project.params, project.weight_bytes) == (
        2, 12 * 4 * 4 * 4, 12 * 4 + 2 * 12, 4 * (12 * 4 + 12))
    assert ops["s1.0.expand"].cout == 36 and ops["s1.0.add"].inputs == (ops["s1.0.project"].id, project.id)
    assert [op.role for op in graph.ops if op.block == "s2.0"][:2] == ["expand", "expand_act"]
    assert (ops["s2.0.expand"].cin, ops["s2.0.expand"].cout, ops["s2.0.expand"].groups) == (12, 12, 1)
    assert not any(op.kind == "shuffle" for op in graph.ops if op.block == "s2.0")


def test_groups_must_divide_input_and_expanded_channels():
    with pytest.raises(ValueError, match=r"block s0.0 \(ir_r1_k3_s1_e1_c12_g2\): groups 2 must divide the input "
                                         r"channels 9 and the expanded channels 9"):
        lower(parse("net_res8_cls10:stem_k3_s1_c9:ir_r1_k3_s1_e1_c12_g2:head_c16"))
    with pytest.raises(ValueError, match="expanded channels 15"):
        lower(parse("net_res8_cls10:stem_k3_s1_c10:ir_r1_k3_s1_e1.5_c12_g2:head_c16"))


def test_id_layers():
    """id (FBNet's skip): nothing where the shape is kept, else a 1x1 conv with the stride + act."""
    arch = parse("net_res16_cls10:stem_k3_s1_c8:id_r2_s1_c8:id_r2_s2_c12:id_r1_s1_c16_nhs:head_c16")
    graph = lower(arch)
    assert [op.name for op in graph.ops if op.block] == ["s1.0.conv", "s1.0.conv.act", "s2.0.conv", "s2.0.conv.act"]
    ops = {op.name: op for op in graph.ops}
    proj = ops["s1.0.conv"]
    assert (proj.kind, proj.kernel, proj.stride, proj.padding, proj.cin, proj.cout, proj.hout) == (
        "pwconv", 1, 2, 0, 8, 12, 8)
    assert (proj.macs, proj.params, proj.bn) == (12 * 8 * 8 * 8, 12 * 8 + 2 * 12, True)
    assert ops["s1.0.conv.act"].act == "re" and ops["s2.0.conv.act"].act == "hs"
    assert (ops["s2.0.conv"].stride, ops["s2.0.conv"].cout) == (1, 16)
    # The same work as a 1x1 cn block: the same kernel key.
    cn = parse("net_res16_cls10:stem_k3_s1_c8:cn_r1_k1_s2_c12:head_c16")
    assert [k.key for k in fuse(lower(cn)) if k.first.block] == [
        k.key for k in fuse(graph) if k.first.block == "s1.0"]


def test_se_styles():
    v3 = lower(preset("mobilenetv3-large"))
    se = next(op for op in v3.ops if op.kind == "se")
    assert (se.cin, se.se_channels, se.act, se.gate) == (72, 24, "re", "hsigmoid")  # make_divisible(72/4, 8)
    a1 = lower(preset("mnasnet-a1"))
    se = next(op for op in a1.ops if op.kind == "se")
    assert (se.cin, se.se_channels, se.gate) == (72, 6, "sigmoid")  # round(24 block input channels / 4)


def test_skips():
    graph = lower(preset("mobilenetv2-1.0"))
    adds = [op.block for op in graph.ops if op.kind == "add"]
    # Residuals on every repeat but the first of each stage (shape changes), none in stage 0/6.
    assert adds == ["s1.1", "s2.1", "s2.2", "s3.1", "s3.2", "s3.3", "s4.1", "s4.2", "s5.1", "s5.2"]
    noskip = parse(str(preset("mobilenetv2-1.0")).replace("_c24_nr6", "_c24_nr6_noskip"))
    assert "s1.1" not in [op.block for op in lower(noskip).ops if op.kind == "add"]


def test_zero_repeat_stage_lowers_to_nothing():
    with_stage = parse("net_res64_cls10:stem_k3_s2_c8:ir_r0_k5_s2_e6_c99:ds_r1_k3_s1_c8:head_c32")
    without = parse("net_res64_cls10:stem_k3_s2_c8:ds_r1_k3_s1_c8:head_c32")
    key = lambda g: [(op.key, op.inputs) for op in g.ops]  # noqa: E731
    assert key(lower(with_stage)) == key(lower(without))


def test_batch():
    one, four = lower(preset("mnasnet-a1")), lower(preset("mnasnet-a1"), batch=4)
    assert four.macs == 4 * one.macs and four.params == one.params
    assert "_n4_" in four.ops[0].key
    with pytest.raises(ValueError, match="batch"):
        lower(preset("mnasnet-a1"), batch=0)


def _fbnet_sampled(n=20, seed=5):
    """FBNet-space networks (grouped blocks, shuffles, id layers), both settings."""
    return [a for setting in ("imagenet", "cifar100") for a in get_space("fbnet", setting=setting).sample(n, seed=seed)]


def _archs():
    return [preset(n) for n in PRESETS] + _sampled(120) + _fbnet_sampled()


@pytest.mark.parametrize("blocks", [False, True])
def test_fusion_partitions_the_graph_in_topological_order(blocks):
    for arch in _archs():
        graph = lower(arch)
        kernels = fuse(graph, blocks=blocks)
        ids = [op.id for k in kernels for op in k.ops]
        assert sorted(ids) == list(range(len(graph.ops)))
        done = {NETWORK_INPUT}
        for kernel in kernels:
            assert set(kernel.inputs) <= done, f"{kernel.name} reads a tensor not yet computed"
            done.update(op.id for op in kernel.ops)
        assert sum(k.macs for k in kernels) == graph.macs
        assert sum(k.params for k in kernels) == graph.params
        assert kernels[-1].outputs == (graph.output.id,)
        # Every activation follows a conv in these networks, so none stays a kernel of its own.
        assert not [k for k in kernels if k.kind == "act"]


def test_conv_fusion_details():
    graph = lower(preset("mnasnet-a1"))
    kernels = {k.name: k for k in fuse(graph)}
    assert [op.role for op in kernels["s1.1.project"].ops] == ["project", "residual"]
    assert kernels["s1.1.project"].key.endswith("_linear_res")
    assert [op.role for op in kernels["s1.1.expand"].ops] == ["expand", "expand_act"]
    assert kernels["s1.1.expand"].key.endswith("_re")
    # The fused add reads the block input as a second kernel input.
    assert len(kernels["s1.1.project"].inputs) == 2
    # Fusing hides the intermediate: bytes out = one tensor, not project's + add's.
    assert kernels["s1.1.project"].bytes_out == graph.ops[kernels["s1.1.project"].last.id].bytes_out


def test_shuffle_fuses_into_the_grouped_expand():
    graph = lower(parse("net_res8_cls10:stem_k3_s1_c8:ir_r2_k3_s1_e1_c8_g2:head_c16"))
    kernels = {k.name: k for k in fuse(graph)}
    assert [op.role for op in kernels["s0.0.expand"].ops] == ["expand", "expand_act", "shuffle"]
    assert kernels["s0.0.expand"].key == "pwconv_n1_i8x8x8_o8x8x8_k1_s1_p0_g2_re_shuffle"
    assert [op.role for op in kernels["s0.1.project"].ops] == ["project", "residual"]
    assert kernels["s0.1.project"].key == "pwconv_n1_i8x8x8_o8x8x8_k1_s1_p0_g2_linear_res"
    blocks = {k.name: k.key for k in fuse(graph, blocks=True)}
    assert blocks["s0.0"] == "mbconv_n1_i8x8x8_o8x8x8_m8_g2_k3_s1_re_se0_skipidentity"
    ungrouped = lower(parse("net_res8_cls10:stem_k3_s1_c8:ir_r2_k3_s1_e1_c8:head_c16"))
    assert {k.name: k.key for k in fuse(ungrouped, blocks=True)}["s0.0"] == blocks["s0.0"].replace("_g2", "")


def test_block_fusion():
    for arch in _archs():
        graph = lower(arch)
        kernels = fuse(graph, blocks=True)
        blocks = [k for k in kernels if k.kind in ("mbconv", "dsconv")]
        expected = sum(s.repeats for s in arch.stages if s.block in ("ir", "ds"))
        assert len(blocks) == expected
        for k in blocks:
            assert len(k.inputs) == 1 and len(k.outputs) == 1  # only the block input and output cross
            readers = sum(k.inputs[0] in op.inputs for op in k.ops)  # first conv, and a shortcut if any
            assert k.bytes_in == readers * graph.ops[k.first.id].bytes_in
            assert k.bytes_out == k.last.bytes_out


def test_keys_are_identical_for_identical_work():
    graph = lower(preset("mobilenetv2-1.0"))
    blocks = {k.name: k.key for k in fuse(graph, blocks=True)}
    assert blocks["s2.1"] == blocks["s2.2"] and blocks["s2.0"] != blocks["s2.1"]
    ops = {op.name: op.key for op in graph.ops}
    assert ops["s3.1.expand"] == ops["s3.2.expand"]
    assert ops["s3.1.expand"] != ops["s3.0.expand"]
    # Same stem conv written as a cn stage elsewhere is the same work, hence the same key.
    a = parse("net_res32_cls10:stem_k3_s1_c3:cn_r1_k3_s1_c3:head_c16")
    convs = [k.key for k in fuse(lower(a)) if k.kind == "conv"]
    assert convs[0] == convs[1]


def test_keys_determine_the_work():
    """Across many networks: one key <-> one op/kernel configuration (no collisions)."""
    op_fields = lambda op: (op.kind, op.n, op.cin, op.hin, op.win, op.cout, op.hout, op.wout, op.kernel,  # noqa: E731
                            op.stride, op.padding, op.groups, op.act, op.se_channels, op.gate, op.macs,
                            op.weight_bytes)
    by_key, by_fields = {}, {}
    kernel_by_key = {}
    for arch in _archs():
        graph = lower(arch)
        for op in graph.ops:
            assert by_key.setdefault(op.key, op_fields(op)) == op_fields(op), op.key
            assert by_fields.setdefault(op_fields(op), op.key) == op.key
        for kernel in fuse(graph, blocks=True) + fuse(graph):
            sig = (kernel.kind, tuple(op.key for op in kernel.ops), kernel.macs, kernel.bytes_in, kernel.bytes_out)
            assert kernel_by_key.setdefault(kernel.key, sig) == sig, kernel.key
    assert len(kernel_by_key) > 500
