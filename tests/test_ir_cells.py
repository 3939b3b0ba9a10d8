"""Lowering of cell networks (pynas/ir/cells.py), their fusion and segments: published totals, counts
by hand, shapes, zero nodes, keys. (The built modules' hooks: tests/test_torch_cells.py.)"""
import pytest

from pynas.cell import parse
from pynas.ir import fuse, lower
from pynas.ir.ops import NETWORK_INPUT
from pynas.ir.segments import segments

NB201 = "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:node_skip~0_conv3~1_skip~2"
DARTS_V2 = ("cellnet_res32_cls10:darts_c36_l20:normal_oall:node_sep3~0_sep3~1:node_sep3~0_sep3~1:node_skip~0_sep3~1:"
            "node_skip~0_dil3~2:reduce_oall:node_max3~0_max3~1:node_max3~1_skip~2:node_max3~0_skip~2:node_max3~1_skip~2")


def test_published_totals():
    # NAS-Bench-201 index 1 on CIFAR-10: params_M 0.802426 (the benchmark's table)
    assert lower(parse(NB201)).params == 802_426
    # DARTS V2 on CIFAR-10 (C 36, 20 cells): 3.349342 M parameters without the auxiliary head, as DARTS's
    # train.py prints; 528 M multiply-accumulates, as the papers comparing with it quote
    graph = lower(parse(DARTS_V2))
    assert graph.params == 3_349_342 and round(graph.macs / 1e6) == 528


def test_a_small_nb201_network_by_hand():
    net = parse("cellnet_res8_cls3:nb201_c2_n1:cell_olast:node_conv1~0:node:node_conv3~1_avg3~0")
    ops = lower(net).ops
    cell = [op for op in ops if op.block == "c0"]
    # node 1: relu + 1x1 conv (4 weights + 2 x 2 BN); node 2 empty, read by nobody: no zero op;
    # node 3: its edges by source: avgpool on the input, relu + 3x3 conv on node 1, add
    assert [op.kind for op in cell] == ["act", "pwconv", "avgpool", "act", "conv", "add"]
    assert [op.params for op in cell] == [0, 8, 0, 0, 40, 0]
    assert cell[-1].inputs == (cell[2].id, cell[4].id)
    res = [op for op in ops if op.block == "c1"]  # ResNet block 2 -> 4 channels, 8 -> 4 pixels
    assert [op.kind for op in res] == ["act", "conv", "act", "conv", "avgpool", "pwconv", "add"]
    assert [op.params for op in res] == [0, 2 * 4 * 9 + 8, 0, 4 * 4 * 9 + 8, 0, 2 * 4, 0]
    assert res[1].hout == 4 and res[4].hout == 4 and res[4].kernel == 2
    head = ops[-4:]
    assert [op.kind for op in head] == ["bn", "act", "gap", "fc"] and head[0].params == 2 * 8 and head[0].cin == 8
    assert head[-1].params == 8 * 3 + 3


def test_zero_nodes_appear_only_where_read():
    net = parse("cellnet_res8_cls3:nb201_c2_n1:cell_olast:node:node_skip~1:node_conv1~2")
    cell = [op for op in lower(net).ops if op.block == "c0"]
    assert [op.kind for op in cell] == ["zero", "act", "pwconv"]  # node 1 read (through node 2's skip)
    zero = cell[0]
    assert zero.inputs == () and zero.bytes_in == 0 and (zero.cout, zero.hout) == (2, 8) and zero.params == 0
    assert cell[1].inputs == (zero.id,)
    everything_none = parse("cellnet_res8_cls3:nb201_c2_n1:cell_olast:node:node:node")
    kinds = [op.kind for op in lower(everything_none).ops if op.block == "c0"]
    assert kinds == ["zero"]  # the output itself


def test_darts_ops_by_hand():
    net = parse("cellnet_res16_cls5:darts_c4_l3:normal_oall:node_sep5~0_dil3~1:node_skip~2_max3~0:"
                "reduce_oloose:node_skip~0_avg3~1:node_dil5~2_skip~2")
    graph = lower(net)
    layers = {b: [op for op in graph.ops if op.block == b] for b in ("c0", "c1", "c2")}
    c0 = layers["c0"]
    # preprocess: relu + 1x1 12 -> 4 (48 + 8) twice; sep5: (relu, dw 5x5, pw + BN) x 2; dil3: relu, dw 3x3 d2, pw
    assert [op.kind for op in c0[:4]] == ["act", "pwconv", "act", "pwconv"] and c0[1].params == 12 * 4 + 8
    sep = c0[4:10]
    assert [op.kind for op in sep] == ["act", "dwconv", "pwconv", "act", "dwconv", "pwconv"]
    assert [op.params for op in sep] == [0, 100, 24, 0, 100, 24] and sep[1].padding == 2
    dil = c0[10:13]
    assert [(op.kind, op.kernel, op.dilation, op.padding, op.params) for op in dil] == \
        [("act", 1, 1, 0, 0), ("dwconv", 3, 2, 2, 36), ("pwconv", 1, 1, 0, 24)]
    assert "_d2" in dil[1].key and "_d" not in sep[1].key.split("_g")[0].split("_p")[1]
    assert c0[13].kind == "add" and c0[14].kind == "maxpool" and c0[15].kind == "add"
    assert c0[15].inputs == (c0[14].id, c0[13].id)  # node 3: max pool of state 0, node 2 itself (skip)
    assert c0[-1].kind == "concat" and c0[-1].cout == 8 and c0[-1].groups == 2
    # c1 is the reduction cell: skip from an input is FactorizedReduce, pools stride 2
    c1 = layers["c1"]
    fr = [op for op in c1 if op.name.startswith("c1.e0to2")]
    assert [op.kind for op in fr] == ["act", "pwconv", "crop", "pwconv", "concat"]
    assert [(op.cout, op.hout, op.stride) for op in fr] == [(8, 16, 1), (4, 8, 2), (8, 15, 1), (4, 8, 2), (8, 8, 1)]
    assert fr[3].inputs == (fr[2].id,) and fr[2].inputs == (fr[0].id,)
    avg = next(op for op in c1 if op.kind == "avgpool")
    assert (avg.stride, avg.hout) == (2, 8)
    # its output: loose ends only (node 2 is read by node 3): node 3
    assert c1[-1].kind == "add" and c1[-1].cout == 8
    # c2 follows a reduction: its older input through FactorizedReduce (16 -> 8 px), newer 1x1
    c2 = layers["c2"]
    assert [op.kind for op in c2[:7]] == ["act", "pwconv", "crop", "pwconv", "concat", "act", "pwconv"]
    assert c2[0].cin == 8 and c2[0].hin == 16 and c2[5].cin == 8 and c2[5].hin == 8
    assert graph.ops[-1].cin == 16  # l3: cells 1 and 2 reduce; c2's loose end is node 3, at width 16


def test_shapes_are_consistent_and_batch_scales():
    for text in (NB201, DARTS_V2):
        graph = lower(parse(text), batch=2)
        by_id = {op.id: op for op in graph.ops}
        for op in graph.ops:
            assert op.n == 2
            for source in op.inputs:
                if source != NETWORK_INPUT:
                    src = by_id[source]
                    assert (src.hout, src.wout) == (op.hin, op.win), op.name
                    if op.kind not in ("concat",):
                        assert src.cout == op.cin, op.name
            if op.kind == "concat":
                assert sum(by_id[s].cout for s in op.inputs) == op.cin == op.cout
            if op.kind == "add":
                assert len(op.inputs) >= 2 and all(by_id[s].cout == op.cout for s in op.inputs)
        assert graph.macs == 2 * lower(parse(text)).macs
    with pytest.raises(ValueError, match="batch"):
        lower(parse(NB201), batch=0)


def test_multi_input_adds_have_their_own_key():
    graph = lower(parse("cellnet_res8_cls3:nb201_c2_n1:cell_olast:node_skip~0:node_skip~0_skip~1:"
                        "node_skip~0_skip~1_skip~2"))
    adds = [op for op in graph.ops if op.kind == "add" and op.block == "c0"]
    assert [len(op.inputs) for op in adds] == [2, 3] and adds[1].key.endswith("_a3") and "_a" not in adds[0].key


@pytest.mark.parametrize("blocks", [False, True])
def test_fusion_partitions_cell_graphs_in_topological_order(blocks):
    for text in (NB201, DARTS_V2):
        graph = lower(parse(text))
        kernels = fuse(graph, blocks=blocks)
        ids = [op.id for k in kernels for op in k.ops]
        assert sorted(ids) == [op.id for op in graph.ops]
        done = set()
        for kernel in kernels:
            assert all(src == NETWORK_INPUT or src in done or src in {o.id for o in kernel.ops} for src in kernel.inputs)
            done.update(op.id for op in kernel.ops)
        assert sum(k.macs for k in kernels) == graph.macs


def test_fusion_never_crosses_a_segment_boundary():
    # The stem's conv (BN, no activation) read only by the first cell's node sum: fusing the add into
    # the stem's kernel put one kernel in two segments (segments then time and key other work than
    # the network runs). A cell whose output node is one conv read by the next cell's one ReLU alike.
    for text in ("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node:node:node_skip~0_conv3~2",
                 "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~1:node_conv3~2", NB201, DARTS_V2):
        graph = lower(parse(text))
        for kernel in fuse(graph):
            assert len({op.block for op in kernel.ops}) == 1, (text, kernel.key)
    stem = fuse(lower(parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node:node:node_skip~0_conv3~2")))[0]
    assert [op.kind for op in stem.ops] == ["conv"] and not stem.key.endswith("_res")


def test_segments_cover_the_graph_with_keys_of_the_work():
    nb = lower(parse(NB201))
    segs = segments(nb)
    assert [s.id for s in segs] == ["stem", *(f"c{i}" for i in range(17)), "head"]
    assert [s.kind for s in segs][1:7] == ["cell"] * 5 + ["resblock"]
    assert sum(len(s.ops) for s in segs) == len(nb.ops)
    assert len({s.key for s in segs if s.kind == "cell"}) == 3  # one per stage width
    assert segs[6].key == "resblock_n1_i16x32x32_o32x16x16"
    darts = segments(lower(parse(DARTS_V2), batch=2))
    assert all("_n2_" in s.key for s in darts)
    # cells after a reduction read differently shaped inputs: their own keys
    keys = [s.key for s in darts if s.kind == "cell"]
    # c0, c1 (reads the stem and c0), c2-c5, c6 (reduce), c7 (after it), c8-c12, c13, c14, c15-c19
    assert len(set(keys)) == 9 and keys[7].startswith("cell_n2_i144x32x32_i288x16x16_c72_normal")
    # a cell of skips lowers to nothing and is no segment
    empty = segments(lower(parse("cellnet_res8_cls3:nb201_c2_n1:cell_olast:node_skip~0")))
    assert [s.kind for s in empty] == ["stem", "resblock", "resblock", "head"]
