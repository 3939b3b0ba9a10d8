"""Cell networks as data: the cell form of the architecture language, its string and strict parser.

A cell network is a macro skeleton (how cells are stacked) and the cells' genotypes (each a small
DAG). One line, parts separated by ``:``, tokens by ``_``, as block strings (`pynas.arch`)::

    cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:node_conv3~0_avg3~1:node_skip~0_conv3~1_skip~2
    cellnet_res32_cls10:darts_c36_l20:normal_oall:node_sep3~0_sep3~1:...:reduce_oall:node_max3~0_max3~1:...

==============  =====================================================================================
part            tokens
==============  =====================================================================================
``cellnet``     ``res<int>`` input resolution, ``cls<int>`` classes; optional ``in<int>`` input channels
``nb201``       skeleton: ``c<int>`` stem width C, ``n<int>`` cells per stage
``darts``       skeleton: ``c<int>`` initial cell width C, ``l<int>`` cells (layers)
``cell``        the nb201 skeleton's one cell: ``o<output>``, then its ``node`` parts
``normal``      the darts skeleton's normal cell: ``o<output>``, then its ``node`` parts
``reduce``      the darts skeleton's reduction cell (after the normal cell's nodes): the same
``node``        one intermediate node: its incoming edges ``<op>~<source>``, summed (none: ``node``)
==============  =====================================================================================

Cell states are numbered: the cell's inputs first (nb201: 1, the previous cell's output; darts: 2,
the outputs of cells k-2 and k-1), then its nodes in order; a node's edges read earlier states
only. An edge ``<op>~<source>`` applies `op` to state `source`; a node sums its edges (a node with no
edge is a tensor of zeros: NAS-Bench-201's cells where every edge into a node is ``none``). An
absent edge is ``none``: the language has no ``none`` op, leaving the edge out says it. Two edges of
a node may read the same state (with different weights, as NASNet and ENAS allow).

The cell's output ``o<output>``: ``olast`` its last node (NAS-Bench-201); ``oall`` the channel
concatenation of all its nodes (DARTS); ``oloose`` of the nodes no other node reads (the "loose
ends" of NASNet and ENAS; the cell's inputs are never concatenated: a simplification of NASNet's
rule, which may add an unused input).

Ops (all keep the cell width C; an edge from a cell input of a reduction cell has stride 2):

========  ==========================================================================================
``skip``  identity; with stride 2 DARTS's FactorizedReduce (ReLU, two 1x1 convs of stride 2 on x and
          on x shifted by one pixel, C/2 channels each, concatenated, BN)
``conv1`` ``conv3``  ReLU-Conv-BN, 1x1 / 3x3 (NAS-Bench-201's nor_conv, NASNet's convs)
``sep3`` ``sep5`` ``sep7``  DARTS's SepConv: (ReLU, kxk depthwise, 1x1 conv, BN) twice, the first
          with the edge's stride
``dil3`` ``dil5``  DARTS's DilConv: ReLU, kxk depthwise dilation 2, 1x1 conv, BN
``avg3``  3x3 average pool (padding 1 not counted); no BN after pooling (DARTS's evaluation networks;
          its search's mixed ops add an affine-free BN, not here)
``max3`` ``max5`` ``max7``  kxk max pool, padding k // 2
========  ==========================================================================================

Skeletons:

* ``nb201`` (NAS-Bench-201's CIFAR network): 3x3 conv stem (no bias) to C + BN; three stages of n
  cells at C, 2C, 4C, separated by a ResNet basic block of stride 2 (ReLU-Conv3x3-BN twice, the
  shortcut a 2x2 average pool + 1x1 conv without BN); BN, ReLU, global average pool, classifier.
  Its cell has one input and ``olast`` (every cell keeps the stage width).
* ``darts`` (DARTS's NetworkCIFAR): 3x3 conv stem (no bias) to 3C + BN; l cells, the ones at
  l // 3 and 2l // 3 reduction cells (stride 2, width doubled); each cell reads the outputs of the
  two cells before it (the stem's for the first), preprocessed to its width C by ReLU-Conv1x1-BN, or
  FactorizedReduce for the older one when the cell before was a reduction; its output is the
  concatenation of its chosen nodes; global average pool, classifier. DARTS's auxiliary head and
  drop path are training devices and not part of the network.

The resolution must halve exactly at each reduction (a multiple of 4); sizes are bounded as block
strings' are (``MAX_*``). ``parse(str(n)) == n`` for every valid network; ``str`` writes the
canonical form (a node's edges sorted by source, then by the order of `OPS`). Errors are
`pynas.arch.ArchParseError` naming the token and its position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pynas.arch import MAX_CHANNELS, MAX_CLASSES, MAX_RESOLUTION, ArchParseError, refuse_characters

OPS = ("skip", "conv1", "conv3", "sep3", "sep5", "sep7", "dil3", "dil5", "avg3", "max3", "max5", "max7")
OUTPUTS = ("last", "all", "loose")
SKELETONS = ("nb201", "darts")
CELL_KINDS = {"nb201": ("cell",), "darts": ("normal", "reduce")}
INPUTS = {"nb201": 1, "darts": 2}  # cell inputs per skeleton
OP_KERNEL = {"skip": 1, "conv1": 1, "conv3": 3, "sep3": 3, "sep5": 5, "sep7": 7, "dil3": 3, "dil5": 5,
             "avg3": 3, "max3": 3, "max5": 5, "max7": 7}

MAX_NODES = 16  # NAS-Bench-201 3, DARTS 4, NASNet and ENAS 5
MAX_EDGES = 16  # per node: NAS-Bench-201's last node 3, the others 2
MAX_CELLS = 64  # nb201: cells per stage (the benchmark 5); darts: layers (DARTS 20, ImageNet 14)
LIMITS = {"resolution": MAX_RESOLUTION, "num_classes": MAX_CLASSES, "in_channels": MAX_CHANNELS,
          "channels": MAX_CHANNELS, "cells": MAX_CELLS, "nodes": MAX_NODES, "edges": MAX_EDGES}
SEPARATOR = ":"


def _check(condition: bool, field: str, expected: str, got) -> None:
    if not condition:
        raise ValueError(f"{field}: expected {expected}, got {got!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value, field: str, minimum: int, limit: str | None = None) -> None:
    maximum = LIMITS[limit or field]
    _check(_is_int(value) and minimum <= value <= maximum, field, f"an integer in [{minimum}, {maximum}]", value)


@dataclass(frozen=True)
class Edge:
    op: str
    source: int

    def __post_init__(self):
        _check(self.op in OPS, "edge.op", f"one of {', '.join(OPS)}", self.op)
        _check(_is_int(self.source) and 0 <= self.source < MAX_NODES + 2, "edge.source",
               f"a state index in [0, {MAX_NODES + 1}]", self.source)

    def sort_key(self) -> tuple[int, int]:
        return self.source, OPS.index(self.op)

    def __str__(self) -> str:
        return f"{self.op}~{self.source}"


@dataclass(frozen=True)
class Node:
    """An intermediate node: the sum of its edges (zeros without any)."""

    edges: tuple[Edge, ...] = ()

    def __post_init__(self):
        edges = tuple(self.edges)
        _check(len(edges) <= MAX_EDGES, "node.edges", f"at most {MAX_EDGES} edges", len(edges))
        for edge in edges:
            _check(isinstance(edge, Edge), "node.edges", "Edge items", edge)
        object.__setattr__(self, "edges", tuple(sorted(edges, key=Edge.sort_key)))

    def __str__(self) -> str:
        return "_".join(["node", *map(str, self.edges)])


@dataclass(frozen=True)
class CellSpec:
    """A cell's genotype: its kind (``cell``, ``normal``, ``reduce``), output rule and nodes."""

    kind: str
    output: str
    nodes: tuple[Node, ...]
    inputs: int = 1  # states before the first node (the skeleton's cell inputs)

    def __post_init__(self):
        _check(self.kind in ("cell", "normal", "reduce"), "cell.kind", "one of cell, normal, reduce", self.kind)
        _check(self.output in OUTPUTS, "cell.output", f"one of {', '.join(OUTPUTS)}", self.output)
        _check(self.inputs in (1, 2) and _is_int(self.inputs), "cell.inputs", "1 or 2", self.inputs)
        nodes = tuple(self.nodes)
        _check(1 <= len(nodes) <= MAX_NODES, "cell.nodes", f"1 to {MAX_NODES} nodes", len(nodes))
        for index, node in enumerate(nodes):
            _check(isinstance(node, Node), "cell.nodes", "Node items", node)
            state = self.inputs + index
            for edge in node.edges:
                _check(edge.source < state, "edge.source", f"a state before node {state} (0..{state - 1})",
                       edge.source)
        object.__setattr__(self, "nodes", nodes)

    @property
    def states(self) -> int:
        return self.inputs + len(self.nodes)

    def concat(self) -> tuple[int, ...]:
        """The states whose channel concatenation is the cell's output (one state for ``last``)."""
        first = self.inputs
        if self.output == "last":
            return (self.states - 1,)
        if self.output == "all":
            return tuple(range(first, self.states))
        read = {edge.source for node in self.nodes for edge in node.edges}
        return tuple(s for s in range(first, self.states) if s not in read)

    def stride(self, source: int) -> int:
        """An edge's stride: 2 from a reduction cell's inputs, else 1."""
        return 2 if self.kind == "reduce" and source < self.inputs else 1

    def __str__(self) -> str:
        return SEPARATOR.join([f"{self.kind}_o{self.output}", *map(str, self.nodes)])


@dataclass(frozen=True)
class CellNet:
    """A cell network: header, skeleton (``nb201`` or ``darts``), width, depth and its cells."""

    resolution: int
    num_classes: int
    skeleton: str
    channels: int
    cells: int  # nb201: cells per stage; darts: layers
    genotypes: tuple[CellSpec, ...]
    in_channels: int = 3

    def __post_init__(self):
        _check_int(self.resolution, "resolution", 1)
        _check_int(self.num_classes, "num_classes", 1)
        _check_int(self.in_channels, "in_channels", 1)
        _check(self.skeleton in SKELETONS, "skeleton", f"one of {', '.join(SKELETONS)}", self.skeleton)
        _check_int(self.channels, "channels", 1)
        _check_int(self.cells, "cells", 1)
        _check(self.resolution % 4 == 0, "resolution",
               "a multiple of 4 (the network halves it exactly twice)", self.resolution)
        genotypes = tuple(self.genotypes)
        kinds = CELL_KINDS[self.skeleton]
        _check(tuple(getattr(g, "kind", None) for g in genotypes) == kinds, "genotypes",
               f"cells {', '.join(kinds)} for the {self.skeleton} skeleton", tuple(getattr(g, "kind", g) for g in genotypes))
        for genotype in genotypes:
            _check(genotype.inputs == INPUTS[self.skeleton], "cell.inputs",
                   f"{INPUTS[self.skeleton]} for the {self.skeleton} skeleton", genotype.inputs)
        if self.skeleton == "nb201":
            _check(genotypes[0].output == "last", "cell.output", "last for the nb201 skeleton (its cells keep the width)",
                   genotypes[0].output)
        else:
            # FactorizedReduce (a skip or preprocess across a reduction) splits the width in two halves.
            _check(self.channels % 2 == 0, "channels", "an even width for the darts skeleton (FactorizedReduce "
                   "halves it)", self.channels)
        object.__setattr__(self, "genotypes", genotypes)

    def cell(self, kind: str) -> CellSpec:
        return next(g for g in self.genotypes if g.kind == kind)

    def layout(self) -> list[tuple[str, int]]:
        """The network's layers after the stem, in order: (``cell``/``normal``/``reduce``/``resblock``,
        width C of the layer)."""
        if self.skeleton == "nb201":
            out = []
            for stage in range(3):
                if stage:
                    out.append(("resblock", self.channels << stage))
                out += [("cell", self.channels << stage)] * self.cells
            return out
        out, width = [], self.channels
        for i in range(self.cells):
            if i in (self.cells // 3, 2 * self.cells // 3):
                width *= 2
                out.append(("reduce", width))
            else:
                out.append(("normal", width))
        return out

    def __str__(self) -> str:
        header = ["cellnet", f"res{self.resolution}", f"cls{self.num_classes}"]
        if self.in_channels != 3:
            header.append(f"in{self.in_channels}")
        depth = "n" if self.skeleton == "nb201" else "l"
        skeleton = f"{self.skeleton}_c{self.channels}_{depth}{self.cells}"
        return SEPARATOR.join(["_".join(header), skeleton, *map(str, self.genotypes)])

    def replace(self, **changes) -> "CellNet":
        import dataclasses

        return dataclasses.replace(self, **changes)

    @staticmethod
    def parse(text: str) -> "CellNet":
        return parse(text)


def is_cellnet_string(text: str) -> bool:
    """Whether `text` is meant as a cell network (its first token is ``cellnet``), not a block string."""
    return isinstance(text, str) and text.strip().split(SEPARATOR, 1)[0].split("_", 1)[0] == "cellnet"


# ---------------------------------------------------------------------------------------------
# Parser

_INT = re.compile(r"0|[1-9][0-9]*")
_MAX_INT_DIGITS = 18
_PART_KEYS = {  # part -> (required keys, optional keys); key -> (field, limit name)
    "cellnet": (("res", "cls"), ("in",)),
    "nb201": (("c", "n"), ()),
    "darts": (("c", "l"), ()),
}
_KEY_MEANING = {"res": "resolution", "cls": "classes", "in": "input channels", "c": "channels",
                "n": "cells per stage", "l": "cells (layers)"}
_KEY_FIELD = {"res": "resolution", "cls": "num_classes", "in": "in_channels", "c": "channels", "n": "cells",
              "l": "cells"}


def _tokens(part: str, position: int):
    out = []
    for token in part.split("_"):
        out.append((token, position))
        position += len(token) + 1
    return out


def _int_value(raw: str, meaning: str, token: str, position: int) -> int:
    if not _INT.fullmatch(raw):
        raise ArchParseError(f"{meaning} must be a non-negative integer without leading zeros, got {raw!r}", token,
                             position)
    if len(raw) > _MAX_INT_DIGITS:
        raise ArchParseError(f"{meaning} is too large ({len(raw)} digits)", token, position)
    return int(raw)


def _keyed(kind: str, tokens, part: str, position: int) -> dict:
    """{key: (int value, token, position)} of a header or skeleton part."""
    required, optional = _PART_KEYS[kind]
    keys = sorted(required + optional, key=len, reverse=True)
    values = {}
    for token, token_position in tokens:
        if not token:
            raise ArchParseError(f"empty token in {kind!r} part", token, token_position)
        key = next((k for k in keys if token.startswith(k) and len(token) > len(k)), None)
        if key is None:
            expected = ", ".join(f"{k}<{_KEY_MEANING[k]}>" for k in required + optional)
            raise ArchParseError(f"unknown token for {kind!r}, expected {expected}", token, token_position)
        if key in values:
            raise ArchParseError(f"duplicate {_KEY_MEANING[key]} (key {key!r})", token, token_position)
        values[key] = (_int_value(token[len(key):], _KEY_MEANING[key], token, token_position), token, token_position)
    for key in required:
        if key not in values:
            raise ArchParseError(f"missing required token {key}<{_KEY_MEANING[key]}> in {kind!r} part", part, position)
    return values


def _check_bounds(values: dict) -> None:
    """Each integer within its field's bounds, the error naming its token."""
    for key, (value, token, token_position) in values.items():
        field = _KEY_FIELD[key]
        limit = LIMITS["cells" if field == "cells" else field]
        if not 1 <= value <= limit:
            raise ArchParseError(f"{field}: expected an integer in [1, {limit}], got {value}", token, token_position)


def _parse_edge(token: str, position: int, state: int) -> Edge:
    op, tilde, source = token.partition("~")
    if not tilde:
        raise ArchParseError(f"expected an edge <op>~<source> (op one of {', '.join(OPS)})", token, position)
    if op == "none":
        raise ArchParseError("'none' is written by leaving the edge out", token, position)
    if op not in OPS:
        raise ArchParseError(f"unknown op {op!r}, expected one of {', '.join(OPS)}", token, position)
    value = _int_value(source, "source state", token, position)
    if value >= state:
        raise ArchParseError(f"source state must be an earlier state of the cell (0..{state - 1}), got {value}",
                             token, position)
    return Edge(op, value)


def _parse_cell(kind: str, header, nodes, inputs: int) -> CellSpec:
    (part, position) = header
    tokens = _tokens(part, position)[1:]
    output = None
    for token, token_position in tokens:
        if not token:
            raise ArchParseError(f"empty token in {kind!r} part", token, token_position)
        if not (token.startswith("o") and token[1:] in OUTPUTS):
            raise ArchParseError(f"unknown token for {kind!r}, expected o<output> (olast, oall, oloose)", token,
                                 token_position)
        if output is not None:
            raise ArchParseError("duplicate output (key 'o')", token, token_position)
        output = token[1:]
    if output is None:
        raise ArchParseError(f"missing required token o<output> (olast, oall, oloose) in {kind!r} part", part, position)
    if not nodes:
        raise ArchParseError(f"expected at least one 'node' part after the {kind!r} part", part, position)
    if len(nodes) > MAX_NODES:
        extra, extra_position = nodes[MAX_NODES]
        raise ArchParseError(f"nodes: expected at most {MAX_NODES} nodes in a cell, got {len(nodes)}", extra,
                             extra_position)
    parsed = []
    for index, (node_part, node_position) in enumerate(nodes):
        edges = []
        node_tokens = _tokens(node_part, node_position)[1:]
        if len(node_tokens) > MAX_EDGES:
            extra, extra_position = node_tokens[MAX_EDGES]
            raise ArchParseError(f"edges: expected at most {MAX_EDGES} edges into a node, got {len(node_tokens)}",
                                 extra, extra_position)
        for token, token_position in node_tokens:
            if not token:
                raise ArchParseError("empty token in 'node' part", token, token_position)
            edges.append(_parse_edge(token, token_position, inputs + index))
        parsed.append(Node(tuple(edges)))
    return CellSpec(kind, output, tuple(parsed), inputs)


def parse(text: str) -> CellNet:
    """Parse a cell network's one-line form; ArchParseError (a ValueError) on any malformed input."""
    if not isinstance(text, str):
        raise TypeError(f"cell network string: expected str, got {type(text).__name__}")
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if not stripped:
        raise ArchParseError("empty cell network string", text, 0)
    refuse_characters(stripped, offset, "[^a-z0-9_:~]", "lowercase letters, digits, '_', '~', ':'")
    parts, position = [], offset
    for part in stripped.split(SEPARATOR):
        if not part:
            raise ArchParseError("empty part (two ':' in a row, or one at an end)", part, position)
        parts.append((part, position))
        position += len(part) + 1
    if len(parts) < 4:
        raise ArchParseError("expected cellnet, skeleton, cell and node parts separated by ':'", stripped, offset)
    (net, net_pos), (skel, skel_pos), *rest = parts

    net_tokens = _tokens(net, net_pos)
    if net_tokens[0][0] != "cellnet":
        raise ArchParseError("expected part 'cellnet' here", *net_tokens[0])
    header = _keyed("cellnet", net_tokens[1:], net, net_pos)
    _check_bounds(header)

    skel_tokens = _tokens(skel, skel_pos)
    skeleton = skel_tokens[0][0]
    if skeleton not in SKELETONS:
        raise ArchParseError(f"unknown skeleton, expected one of {', '.join(SKELETONS)}", *skel_tokens[0])
    values = _keyed(skeleton, skel_tokens[1:], skel, skel_pos)
    _check_bounds(values)

    # Group the remaining parts into cells: a cell part, then its node parts.
    kinds = CELL_KINDS[skeleton]
    groups: list[tuple[tuple[str, int], list]] = []
    for part, part_pos in rest:
        kind, kind_pos = _tokens(part, part_pos)[0]
        if kind == "node":
            if not groups:
                raise ArchParseError(f"expected part {kinds[0]!r} before the first node", kind, kind_pos)
            groups[-1][1].append((part, part_pos))
            continue
        expected = kinds[len(groups)] if len(groups) < len(kinds) else None
        if expected is None:
            raise ArchParseError(f"expected 'node' here (the {skeleton} skeleton has cells {', '.join(kinds)} only)",
                                 kind, kind_pos)
        if kind != expected:
            raise ArchParseError(f"expected part {expected!r} here (the {skeleton} skeleton's cells: "
                                 f"{', '.join(kinds)}, in order)", kind, kind_pos)
        groups.append(((part, part_pos), []))
    if len(groups) < len(kinds):
        last, last_pos = rest[-1]
        raise ArchParseError(f"missing the {kinds[len(groups)]!r} cell (the {skeleton} skeleton's cells: "
                             f"{', '.join(kinds)})", last, last_pos)
    genotypes = []
    for (kind, (header_part, nodes)) in zip(kinds, groups):
        genotypes.append(_parse_cell(kind, header_part, nodes, INPUTS[skeleton]))
        if skeleton == "nb201" and genotypes[-1].output != "last":
            token, token_pos = next((t, p) for t, p in _tokens(*header_part)[1:] if t.startswith("o"))
            raise ArchParseError("the nb201 skeleton's cell keeps its width: expected olast", token, token_pos)
    fields = {"resolution": header["res"], "num_classes": header["cls"], "in_channels": header.get("in"),
              "channels": values["c"], "cells": values["n" if skeleton == "nb201" else "l"]}
    try:
        return CellNet(resolution=fields["resolution"][0], num_classes=fields["num_classes"][0], skeleton=skeleton,
                       channels=fields["channels"][0], cells=fields["cells"][0], genotypes=tuple(genotypes),
                       in_channels=fields["in_channels"][0] if fields["in_channels"] else 3)
    except ValueError as error:
        field = str(error).split(":", 1)[0]
        if field in fields and fields[field] is not None:
            _, token, token_pos = fields[field]
            raise ArchParseError(str(error), token, token_pos) from None
        raise ArchParseError(str(error), stripped, offset) from None
