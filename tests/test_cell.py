"""pynas.cell: cell networks, their one-line form and its strict parser (as tests/test_arch.py for
block strings): round trip, exactly located errors, fuzzing with the parser's contract."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pynas.arch import ArchParseError
from pynas.cell import (MAX_EDGES, MAX_NODES, OPS, CellNet, CellSpec, Edge, Node, is_cellnet_string, parse)

NB201 = "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:node_skip~0_conv3~1_skip~2"
DARTS_V2 = ("cellnet_res32_cls10:darts_c36_l20:normal_oall:node_sep3~0_sep3~1:node_sep3~0_sep3~1:node_skip~0_sep3~1:"
            "node_skip~0_dil3~2:reduce_oall:node_max3~0_max3~1:node_max3~1_skip~2:node_max3~0_skip~2:node_max3~1_skip~2")
CANONICAL = [
    NB201, DARTS_V2,
    "cellnet_res32_cls10:nb201_c16_n5:cell_olast:node:node:node",  # every edge none: zeros
    "cellnet_res64_cls100_in1:nb201_c8_n1:cell_olast:node_conv1~0",
    "cellnet_res32_cls10:darts_c20_l8:normal_oloose:node_sep5~0_sep5~0:node_avg3~1_max3~2:node_skip~3_conv3~3:"
    "node_dil5~0_sep7~4:node_max5~1_max7~5:reduce_olast:node_skip~0_skip~1",
]


def unmark(marked: str):
    start, end = marked.index("["), marked.index("]")
    return marked.replace("[", "").replace("]", ""), marked[start + 1:end], start


def assert_names_token(text: str, err: ArchParseError) -> None:
    assert 0 <= err.position <= len(text)
    assert text[err.position:].startswith(err.token), (text, err.token, err.position)
    assert repr(err.token) in str(err)


def canonical_parts(text: str):
    """What a string says, independent of the parser: its parts with each node's edges sorted."""
    out = []
    for part in text.strip().split(":"):
        kind, *tokens = part.split("_")
        out.append((kind, sorted(tokens) if kind in ("node", "cellnet", "nb201", "darts") else tokens))
    return out


def assert_contract(text: str):
    """A CellNet that round-trips and says what the input said, or an exactly located error."""
    try:
        net = parse(text)
    except ArchParseError as err:
        assert_names_token(text, err)
        return None
    canonical = str(net)
    assert parse(canonical) == net and str(parse(canonical)) == canonical
    assert canonical_parts(text) == canonical_parts(canonical)
    return net


# -- 1. round trip ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_strings_round_trip(text):
    net = parse(text)
    assert str(net) == text and parse(str(net)) == net and is_cellnet_string(text)


def test_fields_of_a_parsed_network():
    net = parse(DARTS_V2)
    assert (net.resolution, net.num_classes, net.in_channels, net.skeleton, net.channels, net.cells) == \
        (32, 10, 3, "darts", 36, 20)
    normal, reduce = net.genotypes
    assert normal.nodes[3].edges == (Edge("skip", 0), Edge("dil3", 2)) and normal.concat() == (2, 3, 4, 5)
    assert reduce.stride(0) == reduce.stride(1) == 2 and reduce.stride(2) == 1 and normal.stride(0) == 1
    assert [k for k, _ in net.layout()].count("reduce") == 2 and net.layout()[6] == ("reduce", 72)
    loose = parse(CANONICAL[4]).genotypes[0]
    assert loose.concat() == (6,)  # nodes 2..5 are all read by a later node
    nb = parse(NB201)
    assert [k for k, _ in nb.layout()] == ["cell"] * 5 + ["resblock"] + ["cell"] * 5 + ["resblock"] + ["cell"] * 5


def test_noncanonical_edge_order_parses_to_the_canonical_network():
    text = NB201.replace("node_skip~0_conv3~1_skip~2", "node_skip~2_conv3~1_skip~0")
    assert str(parse(text)) == NB201
    assert str(parse("  " + NB201 + "\n")) == NB201


def cell_specs(kind: str, inputs: int, output: str | None = None):
    def build(output, raw):
        nodes = []
        for index, edges in enumerate(raw):
            state = inputs + index
            nodes.append(Node(tuple(Edge(op, source % state) for op, source in edges)))
        return CellSpec(kind, output, tuple(nodes), inputs)

    edge = st.tuples(st.sampled_from(OPS), st.integers(0, 40))
    return st.builds(build, st.just(output) if output else st.sampled_from(("last", "all", "loose")),
                     st.lists(st.lists(edge, max_size=4), min_size=1, max_size=6))


NETS = st.one_of(
    st.builds(lambda r, k, i, c, n, cell: CellNet(4 * r, k, "nb201", c, n, (cell,), i),
              st.integers(1, 64), st.integers(1, 1000), st.integers(1, 4), st.integers(1, 64), st.integers(1, 8),
              cell_specs("cell", 1, "last")),
    st.builds(lambda r, k, c, n, a, b: CellNet(4 * r, k, "darts", 2 * c, n, (a, b)),
              st.integers(1, 64), st.integers(1, 1000), st.integers(1, 64), st.integers(1, 30),
              cell_specs("normal", 2), cell_specs("reduce", 2)),
)


@settings(derandomize=True, max_examples=500, deadline=None)
@given(NETS)
def test_random_networks_round_trip(net):
    text = str(net)
    assert parse(text) == net and str(parse(text)) == text


# -- 2. strictness -------------------------------------------------------------------------------

HEAD = "cellnet_res32_cls10:nb201_c16_n5:cell_olast:"
STRICT = {
    "source not earlier": HEAD + "node_conv3~0:node_[conv3~2]",
    "unknown op": HEAD + "node_[sep9~0]",
    "none op": HEAD + "node_[none~0]",
    "no tilde": HEAD + "node_[conv3]",
    "leading zero source": HEAD + "node_[conv3~00]",
    "empty edge": HEAD + "node_conv3~0_[]",
    "bad output": "cellnet_res32_cls10:nb201_c16_n5:cell_[oall]:node_conv3~0",
    "unknown output": "cellnet_res32_cls10:nb201_c16_n5:cell_[ofirst]:node_conv3~0",
    "duplicate output": "cellnet_res32_cls10:nb201_c16_n5:cell_olast_[olast]:node_conv3~0",
    "missing output": "cellnet_res32_cls10:nb201_c16_n5:[cell]:node_conv3~0",
    "cell without nodes": "cellnet_res32_cls10:darts_c16_l5:[normal_oall]:reduce_oall:node_skip~0",
    "node first": "cellnet_res32_cls10:nb201_c16_n5:[node]:cell_olast:node",
    "wrong cell kind": "cellnet_res32_cls10:darts_c16_l5:[cell]_oall:node",
    "reduce before normal": "cellnet_res32_cls10:darts_c16_l5:[reduce]_oall:node:normal_oall:node",
    "third cell": "cellnet_res32_cls10:darts_c16_l5:normal_oall:node:reduce_oall:node:[normal]_oall:node",
    "missing reduce": "cellnet_res32_cls10:darts_c16_l5:normal_oall:[node_skip~1]",
    "odd darts width": "cellnet_res32_cls10:darts_[c15]_l5:normal_oall:node:reduce_oall:node",
    "resolution not a multiple of 4": "cellnet_[res30]_cls10:nb201_c16_n5:cell_olast:node",
    "zero classes": "cellnet_res32_[cls0]:nb201_c16_n5:cell_olast:node",
    "huge width": "cellnet_res32_cls10:nb201_[c99999]_n5:cell_olast:node",
    "too many cells": "cellnet_res32_cls10:nb201_c16_[n65]:cell_olast:node",
    "unknown skeleton": "cellnet_res32_cls10:[nasnet]_c16_n5:cell_olast:node",
    "skeleton key of the other": "cellnet_res32_cls10:nb201_c16_[l5]:cell_olast:node",
    "missing skeleton key": "cellnet_res32_cls10:[nb201_c16]:cell_olast:node",
    "duplicate key": "cellnet_res32_cls10:nb201_c16_n5_[c8]:cell_olast:node",
    "not cellnet": "[net]_res32_cls10:nb201_c16_n5:cell_olast:node",
    "uppercase": HEAD + "node_[Conv3~0]",
    "dot": HEAD + "node_[conv3~0.5]",
    "empty part": HEAD + "node_conv3~0:[]",
    "too few parts": "[cellnet_res32_cls10:nb201_c16_n5:cell_olast]",
    "too many nodes": HEAD + ":".join(["node"] * MAX_NODES) + ":[node]",
    "too many edges": HEAD + "node_" + "_".join(["skip~0"] * MAX_EDGES) + "_[skip~0]",
}


@pytest.mark.parametrize("marked", STRICT.values(), ids=STRICT.keys())
def test_rejects_with_exact_token_and_position(marked):
    text, token, position = unmark(marked)
    with pytest.raises(ArchParseError) as info:
        parse(text)
    assert (info.value.token, info.value.position) == (token, position), str(info.value)
    assert_names_token(text, info.value)


def test_dataclass_checks_name_the_field():
    with pytest.raises(ValueError, match="edge.op: expected one of"):
        Edge("none", 0)
    with pytest.raises(ValueError, match="edge.source: expected a state before node 1"):
        CellSpec("cell", "last", (Node((Edge("skip", 1),)),))
    with pytest.raises(ValueError, match="genotypes: expected cells normal, reduce"):
        CellNet(32, 10, "darts", 16, 5, (CellSpec("cell", "last", (Node(),)),))
    with pytest.raises(ValueError, match="cell.inputs: expected 2 for the darts skeleton"):
        CellNet(32, 10, "darts", 16, 5, (CellSpec("normal", "all", (Node(),)), CellSpec("reduce", "all", (Node(),))))
    with pytest.raises(TypeError, match="expected str"):
        parse(None)


# -- 3. fuzzing ------------------------------------------------------------------------------------

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_:~"
WORDS = ["cellnet", "res32", "cls10", "in1", "nb201", "darts", "c16", "n5", "l8", "cell", "normal", "reduce",
         "olast", "oall", "oloose", "node", *[f"{op}~{i}" for op in OPS for i in (0, 1, 2)], "none~0", "skip~9"]


@settings(derandomize=True, max_examples=1000, deadline=None)
@given(st.text(alphabet=CHARS + ". -A\u00e9", max_size=80))
def test_fuzz_alphabet(text):
    assert_contract(text)


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(["_", ":", "_", ":"])), max_size=40).map("".join))
def test_fuzz_word_soup(text):
    assert_contract(text)


@st.composite
def mutated(draw):
    text = draw(st.one_of(st.sampled_from(CANONICAL), NETS.map(str)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "insert", "swap", "duplicate", "digit", "drop"]))
        spans = [m.span() for m in re.finditer(r"[^_:]+", text)]
        if op == "delete" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(st.sampled_from(CHARS)) + text[i:]
        elif op == "swap" and len(spans) >= 2:
            (a0, a1), (b0, b1) = sorted(draw(st.lists(st.sampled_from(spans), min_size=2, max_size=2, unique=True)))
            text = text[:a0] + text[b0:b1] + text[a1:b0] + text[a0:a1] + text[b1:]
        elif op == "duplicate" and spans:
            start, end = draw(st.sampled_from(spans))
            text = text[:end] + "_" + text[start:end] + text[end:]
        elif op == "digit":
            digits = [i for i, ch in enumerate(text) if ch.isdigit()]
            if digits:
                i = draw(st.sampled_from(digits))
                text = text[:i] + draw(st.sampled_from("0123456789")) + text[i + 1:]
        elif op == "drop":
            parts = text.split(":")
            del parts[draw(st.integers(0, len(parts) - 1))]
            text = ":".join(parts)
    return text


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(mutated())
def test_fuzz_mutations_of_valid_strings(text):
    assert_contract(text)


def test_mutation_fuzz_reaches_both_outcomes():
    counts = {"accepted": 0, "rejected": 0}

    @settings(derandomize=True, max_examples=400, deadline=None, database=None)
    @given(mutated())
    def count(text):
        try:
            parse(text)
            counts["accepted"] += 1
        except ArchParseError:
            counts["rejected"] += 1

    count()
    assert counts["accepted"] >= 25 and counts["rejected"] >= 25, counts
