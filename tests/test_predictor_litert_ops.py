"""pynas.predictor.litert_ops: the ops LiteRT's converter leaves in NAS-Bench-201 networks, emulated,
against 600 converted networks recorded (tests/data) and, where LiteRT is installed, the converter
in hand."""
import collections
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from pynas.cell import parse
from pynas.predictor import litert_ops
from pynas.space import get_space

SPACE = get_space("nb201")
RECORDED = Path(__file__).parent / "data" / "nb201_litert_ops.json.gz"
HEAD = {"TRANSPOSE 8x8x64->64x8x8": 1, "MEAN 64x8x8->64": 1, "FULLY_CONNECTED 64->10": 1}


def net(nodes: str):
    return parse(f"cellnet_res32_cls10:nb201_c16_n5:cell_olast:{nodes}")


def test_every_recorded_conversion_is_emulated_exactly():
    recorded = json.loads(gzip.decompress(RECORDED.read_bytes()))["networks"]
    assert len(recorded) == 600
    wrong = [key for key, ops in recorded.items() if litert_ops.executed_ops(parse(key)) != collections.Counter(ops)]
    assert wrong == []


def test_a_cell_whose_output_has_no_edge_runs_nothing():
    assert litert_ops.executed_ops(net("node_conv3~0:node_conv1~0:node")) == collections.Counter()


def test_a_cell_cut_off_from_its_input_runs_only_its_last_copy_on_zeros():
    # node 1 has no edge (zeros); node 2 = conv1(zeros); node 3 = conv3(node 2): nothing reads the
    # input, so the 14 cells, stem and ResNet blocks before the last cell are dead code.
    ops = litert_ops.executed_ops(net("node:node_conv1~1:node_conv3~2"))
    assert ops == collections.Counter({"CONV_2D 8x8x64->8x8x64 k1": 1, "CONV_2D 8x8x64->8x8x64 k3": 1, **HEAD})
    # a pool of zeros runs; the head's BatchNorm after it is a MUL (not foldable into a conv)
    ops = litert_ops.executed_ops(net("node:node_avg3~0:node_avg3~1"))
    assert ops == collections.Counter({"AVERAGE_POOL_2D 8x8x64->8x8x64": 1, "MUL 8x8x64->8x8x64": 1, **HEAD})


def test_a_3x3_conv_of_zeros_reads_them_padded_and_pools_of_zeros_merge():
    ops = litert_ops.executed_ops(net("node:node_conv3~1_avg3~1:node_conv3~0_skip~2"))
    for size, width in ((32, 16), (16, 32), (8, 64)):
        assert ops[f"CONV_2D {size + 2}x{size + 2}x{width}->{size}x{size}x{width} k3"] == 5  # one per cell
        assert ops[f"AVERAGE_POOL_2D {size}x{size}x{width}->{size}x{size}x{width}"] == 1  # five cells, one op


def test_a_partial_sum_two_nodes_share_is_added_once():
    # node 2 = n0 + avg(n1); node 3 = n0 + avg(n1) + avg(n2): the first add is node 2's
    ops = litert_ops.executed_ops(net("node_conv3~0:node_skip~0_avg3~1:node_skip~0_avg3~1_avg3~2"))
    assert ops["ADD 32x32x16->32x32x16"] == 2 * 5


def test_op_counts_index_the_whole_space():
    names = litert_ops.space_signatures("nb201")
    assert list(names) == sorted(names) and len(names) == 32
    tokens = SPACE.sample_tokens(20, seed=3)
    x = litert_ops.op_counts(SPACE, tokens)
    assert x.shape == (20, len(names))
    for row, t in zip(x, tokens):
        ops = litert_ops.executed_ops(SPACE.network(t))
        assert {names[i]: int(n) for i, n in enumerate(row) if n} == dict(ops)


def test_only_nb201_networks_are_emulated():
    darts = get_space("darts")
    with pytest.raises(ValueError, match="network: expected a cell network of the nb201 skeleton"):
        litert_ops.executed_ops(darts.decode(darts.sample_tokens(1, seed=0)[0]))


@pytest.mark.parametrize("nodes", [
    "node:node_conv1~1:node_conv3~2",  # cut off: the last cell only
    "node:node_conv3~1_avg3~1:node_conv3~0_skip~2",  # convs and a pool of zeros
    "node_conv3~0:node_skip~0_avg3~1:node_skip~0_avg3~1_avg3~2",  # a shared partial sum
])
def test_the_converter_in_hand_leaves_the_emulated_ops(nodes, tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    network = net(nodes)
    assert litert_ops.converted_ops(network, tmp_path) == litert_ops.executed_ops(network)


def test_signatures_name_op_shapes_and_kernel():
    assert litert_ops.signature("CONV_2D", (34, 34, 16), np.array([16, 16, 32]), 3) == "CONV_2D 34x34x16->16x16x32 k3"
    assert litert_ops.signature("MEAN", [64, 8, 8], [64]) == "MEAN 64x8x8->64"
