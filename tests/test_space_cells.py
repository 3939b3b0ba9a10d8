"""Cell spaces (pynas/space/cells.py: darts, nasnet, enas) and NAS-Bench-201's networks (pynas/space/nb201.py):
decisions, decode/encode, distinct-network counts by enumeration, refusals; IR counts equal to the built
modules' hooks for sampled networks of every cell space."""
import itertools
import math

import numpy as np
import pytest

from pynas.cell import CellNet, parse
from pynas.ir import lower
from pynas.space import SPACES, get_space, spaces_holding
from pynas.space.cells import DARTS_OPS, ENAS_OPS, NASNET_OPS

CELL_SPACES = ("darts", "nasnet", "enas")
SMALL = {"channels": 4, "cells": 5, "resolution": 16}  # fast networks for the hook checks


def test_registered_with_their_options():
    for name in CELL_SPACES:
        space = get_space(name)
        assert SPACES[name] is type(space) and space.name == name and not space.lowerable
        assert get_space(name, **space.options()).layout_name() == space.layout_name() == f"{name}_res32_cls10_c36_l20"
    with pytest.raises(ValueError, match="search space 'darts': unknown option 'setting'"):
        get_space("darts", setting="x")
    with pytest.raises(ValueError, match="resolution: expected a multiple of 4"):
        get_space("darts", resolution=30)
    with pytest.raises(ValueError, match="channels: expected an even width"):
        get_space("enas", channels=5)


def test_decisions_and_sizes():
    darts = get_space("darts")
    assert [d.name for d in darts.decisions[:6]] == ["normal.node0.inputs", "normal.node0.op_a", "normal.node0.op_b",
                                                     "normal.node1.inputs", "normal.node1.op_a", "normal.node1.op_b"]
    assert darts.decisions[3].choices == ("0+1", "0+2", "1+2") and darts.decisions[1].choices == DARTS_OPS
    assert len(DARTS_OPS) == 8 and DARTS_OPS[0] == "none"
    assert darts.size == (1 * 3 * 6 * 10 * 8 ** 8) ** 2
    # DARTS's own count: about 1e9 cells of 7 real ops (its paper's 10^18 networks); with none
    assert math.prod(math.comb(n, 2) * 49 for n in range(2, 6)) == 1_037_664_180
    assert darts.distinct_networks == (64 * 169 * 323 * 526) ** 2
    nasnet, enas = get_space("nasnet"), get_space("enas")
    assert len(nasnet.decisions) == len(enas.decisions) == 2 * 5 * 4
    assert nasnet.decisions[0].choices == (0, 1) and nasnet.decisions[2].choices == NASNET_OPS
    assert len(NASNET_OPS) == 11 and len(ENAS_OPS) == 5
    assert enas.size == math.prod(n * n * 25 for n in range(2, 7)) ** 2


@pytest.mark.parametrize("name", CELL_SPACES)
def test_distinct_networks_by_enumeration(name):
    """Per node, the networks its tokens make, counted by decoding every token choice of that node."""
    space = get_space(name, **SMALL)
    per_node = 3 if name == "darts" else 4
    base = [0] * len(space.decisions)
    factors = []
    for node in range(space.nodes):
        at = node * per_node
        seen = set()
        for choice in itertools.product(*(range(d.cardinality) for d in space.decisions[at:at + per_node])):
            tokens = base[:at] + list(choice) + base[at + per_node:]
            seen.add(str(space.decode(tokens).genotypes[0].nodes[node]))
        factors.append(len(seen))
    assert math.prod(factors) ** 2 == space.distinct_networks, factors


@pytest.mark.parametrize("name", CELL_SPACES)
def test_decode_encode(name):
    space = get_space(name)
    tokens = space.sample_tokens(300, seed=5)
    for row in tokens:
        net = space.decode(row)
        assert isinstance(net, CellNet) and parse(str(net)) == net
        canonical = space.encode(net)
        assert space.decode(canonical) == net and space.encode(space.decode(canonical)) == canonical
        assert name in spaces_holding(net)
    if name == "darts":  # most vectors are their own canonical ones; those with none edges may not be
        same = sum(space.encode(space.decode(r)) == tuple(r) for r in tokens)
        assert 0.3 * len(tokens) < same < len(tokens)


def test_encode_refuses_what_is_not_in_the_space_naming_it():
    darts = get_space("darts")
    net = darts.sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="not in space 'darts': channels: expected 36, got 16"):
        darts.encode(net.replace(channels=16))
    nas = get_space("nasnet").sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="not in space 'darts': normal cell: expected 4 nodes and output all"):
        darts.encode(nas)
    conv = parse(str(net).replace("normal_oall:node_", "normal_oall:node_conv1~0_", 1))
    with pytest.raises(ValueError, match="normal.node0: op: expected one of max3"):
        darts.encode(conv)
    with pytest.raises(ValueError, match="expected a cell network"):
        darts.encode("cellnet")
    with pytest.raises(ValueError, match="enas'.*normal.node0: op: expected one of skip, sep3, sep5, avg3, max3"):
        get_space("enas").encode(nas)
    for name in CELL_SPACES:
        for call in (get_space(name).segment_archs, get_space(name).table_layout):
            with pytest.raises(ValueError, match=f"space '{name}': .*price them per op"):
                call()


def hook_counts(model, net):
    import torch
    from torch import nn

    macs = []

    def record(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0]
            macs.append(output[0].numel() * (module.in_channels // module.groups) * k * k)
        else:
            macs.append(module.in_features * module.out_features)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            out = model.eval()(torch.randn(1, net.in_channels, net.resolution, net.resolution))
    finally:
        for h in handles:
            h.remove()
    return sum(macs), sum(p.numel() for p in model.parameters()), out


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", CELL_SPACES + ("nb201",))
def test_ir_counts_equal_the_built_modules_hooks_for_sampled_networks(name):
    pytest.importorskip("torch")
    from pynas.torch_builder import build_torch

    if name == "nb201":
        space = get_space(name)
        nets = [space.network(c).replace(channels=4, cells=2) for c in space.sample(12, seed=7)]
    else:
        nets = get_space(name, **SMALL).sample(12, seed=7)
    for net in nets:
        graph = lower(net)
        macs, params, out = hook_counts(build_torch(net), net)
        assert (macs, params) == (graph.macs, graph.params), str(net)
        assert out.shape == (1, net.num_classes)


def test_nb201_networks():
    nb = get_space("nb201")
    cell = nb.decode([3, 3, 4, 1, 3, 1])
    net = nb.network(cell)
    assert str(net) == ("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:"
                        "node_skip~0_conv3~1_skip~2")
    assert nb.network(str(cell)) == nb.network(cell.tokens) == net == cell.network()
    assert nb.parse(str(net)) == cell and nb.encode(net) == cell.tokens and nb.encode(str(net)) == cell.tokens
    assert nb.cell_of(net.replace(channels=8, num_classes=100)) == cell  # any width, depth, classes
    assert spaces_holding(net) == ["nb201"] and spaces_holding(net.replace(channels=8)) == []
    with pytest.raises(ValueError, match="not in space 'nb201': expected a NAS-Bench-201 Cell or its string .or its network, cellnet_res32"):
        nb.encode(net.replace(channels=8))
    darts = get_space("darts").sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="not in space 'nb201': skeleton: expected nb201, got darts"):
        nb.encode(darts)
    bad = parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_sep3~0:node:node")
    with pytest.raises(ValueError, match="edge0to1: expected one of skip, conv1, conv3, avg3, got sep3"):
        nb.encode(bad)
    two = parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_skip~0_conv1~0:node:node")
    with pytest.raises(ValueError, match="edge0to1: expected one op per edge, got two"):
        nb.encode(two)
    with pytest.raises(ValueError, match="nodes"):
        nb.encode(parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node:node"))


@pytest.mark.slow
def test_nb201_segment_archs_cover_every_segment_of_the_space():
    from pynas.space.catalogue import space_items

    nb = get_space("nb201")
    items = space_items(nb)
    kinds = {}
    for item in items.values():
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    # cells: every cell that lowers to some op, at 3 widths; all-skip/none cells with no op are no segment
    empty = sum(1 for t in itertools.product(range(5), repeat=6)
                if not [op for op in lower(nb.network(t)).ops if op.block == "c0"])
    assert kinds == {"stem": 1, "resblock": 2, "head": 1, "cell": 3 * (15625 - empty)}
    assert 0 < empty < 200
    some = np.random.default_rng(0).choice(15625, 5, replace=False)
    for i in some:  # and each network's segments are among them
        net = nb.network(nb.tokens_of(np.array([i]))[0])
        from pynas.ir.segments import segments

        assert all(s.key in items for s in segments(lower(net)))
