"""Cell search spaces: DARTS, NASNet and ENAS cells on the darts skeleton (`pynas.cell`).

    space = get_space("darts")                      # DARTS's CIFAR-10 network: C 36, 20 cells
    net = space.sample(1, seed=0)[0]                # a pynas.cell.CellNet: lower(net), build_torch(net)
    space.encode(net) -> tokens; space.distinct_networks -> how many different networks the tokens make

A network has a normal and a reduction cell of the same form; each cell's node i (i = 0..B-1, state
i + 2; states 0 and 1 are the cell's two inputs) sums two edges, each an op applied to an earlier
state. Decisions, for ``normal`` then ``reduce``, node by node:

* ``darts`` (Liu et al. 2019): B = 4; ``<cell>.node<i>.inputs`` the pair of distinct states the node
  reads (C(i + 2, 2) choices, written ``a+b``, a < b), ``<cell>.node<i>.op_a`` / ``op_b`` the op on a
  / on b, each one of the 8 ops of DARTS (``none`` first: that edge absent, then ``max3`` ``avg3``
  ``skip`` ``sep3`` ``sep5`` ``dil3`` ``dil5``); the output concatenates all four nodes (``oall``).
* ``nasnet`` (Zoph et al. 2018, NASNet-A's search space): B = 5; ``<cell>.node<i>.input_a`` /
  ``input_b`` any earlier state each (the same one allowed), ``op_a`` / ``op_b`` one of 11 ops:
  ``skip``, ``conv1``, ``conv3``, ``sep3`` ``sep5`` ``sep7``, ``dil3``, ``avg3``, ``max3`` ``max5``
  ``max7``; the output concatenates the nodes no other node reads (``oloose``). Simplified: the
  factorised 1x7-7x1 and 1x3-3x1 convs are left out (pynas's ops have square kernels), a node only
  sums (NASNet's controller could also concatenate), the output never includes an unused cell input,
  and the skeleton is DARTS's CIFAR network (NASNet-A's CIFAR network is the same stack: N normal
  cells, a reduction, N, a reduction, N; l = 3N + 2 puts the reductions there).
* ``enas`` (Pham et al. 2018, the micro space): B = 5, inputs as NASNet's, ops ``skip``, ``sep3``,
  ``sep5``, ``avg3``, ``max3``; ``oloose``. Simplified as NASNet's: the darts skeleton, and ENAS's
  separable convs are DARTS's (two stacked).

Tokens to networks: a DARTS token vector names a network, but not every network by one vector: a
node whose two edges are ``none`` is the same whatever pair it reads, one ``none`` edge leaves its
source irrelevant, and NASNet's and ENAS's two edges of a node may be swapped. `size` counts token
vectors, `distinct_networks` networks (structurally different), and `encode` gives the canonical
vector of a network (`decode(encode(n)) == n`). As in `pynas.space.nb201`, `lowerable` is False:
the networks lower (`pynas.ir.lower`) and build (`build_torch`), but profiling, XGBoost bundles
and compiled tables, made for block networks, do not take them yet; `segment_archs` and
`table_layout` say why.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

from pynas.cell import CellNet, CellSpec, Edge, Node
from pynas.space.base import Decision, SearchSpace

DARTS_OPS = ("none", "max3", "avg3", "skip", "sep3", "sep5", "dil3", "dil5")  # DARTS's PRIMITIVES, in order
NASNET_OPS = ("skip", "conv1", "conv3", "sep3", "sep5", "sep7", "dil3", "avg3", "max3", "max5", "max7")
ENAS_OPS = ("skip", "sep3", "sep5", "avg3", "max3")
CELLS = ("normal", "reduce")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CellSpace(SearchSpace):
    """A space of two-input cells of `nodes` nodes with two edges each, on the darts skeleton."""

    name = ""
    nodes = 4
    ops: tuple[str, ...] = ()
    pairs = True  # True: a node reads a pair of distinct states (DARTS); False: two states, each any
    output = "all"
    lowerable = False
    default_channels, default_cells = 36, 20

    def __init__(self, resolution: int = 32, num_classes: int = 10, in_channels: int = 3, channels: int | None = None,
                 cells: int | None = None):
        channels = self.default_channels if channels is None else channels
        cells = self.default_cells if cells is None else cells
        # The skeleton checks every field (naming it) when a network is made: make one now.
        self._example = CellNet(resolution, num_classes, "darts", channels, cells,
                                tuple(CellSpec(k, self.output, tuple(Node() for _ in range(self.nodes)), 2)
                                      for k in CELLS), in_channels)
        self.resolution, self.num_classes, self.in_channels = resolution, num_classes, in_channels
        self.channels, self.cells = channels, cells
        decisions = []
        for cell in CELLS:
            for i in range(self.nodes):
                states = i + 2
                prefix = f"{cell}.node{i}"
                if self.pairs:
                    choices = tuple(f"{a}+{b}" for a, b in itertools.combinations(range(states), 2))
                    decisions.append(Decision(f"{prefix}.inputs", choices))
                else:
                    decisions += [Decision(f"{prefix}.input_a", tuple(range(states))),
                                  Decision(f"{prefix}.input_b", tuple(range(states)))]
                decisions += [Decision(f"{prefix}.op_a", self.ops), Decision(f"{prefix}.op_b", self.ops)]
        self.decisions = tuple(decisions)

    def options(self) -> dict:
        return {"resolution": self.resolution, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "channels": self.channels, "cells": self.cells}

    def layout_name(self) -> str:
        return f"{self.name}_res{self.resolution}_cls{self.num_classes}_c{self.channels}_l{self.cells}"

    def decode(self, tokens: Sequence[int]) -> CellNet:
        tokens = self.check_tokens(tokens)
        it = iter(tokens)
        genotypes = []
        for cell in CELLS:
            nodes = []
            for i in range(self.nodes):
                if self.pairs:
                    a, b = list(itertools.combinations(range(i + 2), 2))[next(it)]
                else:
                    a, b = next(it), next(it)
                op_a, op_b = self.ops[next(it)], self.ops[next(it)]
                nodes.append(Node(tuple(Edge(op, s) for op, s in ((op_a, a), (op_b, b)) if op != "none")))
            genotypes.append(CellSpec(cell, self.output, tuple(nodes), 2))
        return self._example.replace(genotypes=tuple(genotypes))

    def network(self, arch) -> CellNet:
        """The network pynas lowers and builds for an architecture of the space: itself."""
        self.encode(arch)
        return arch

    def encode(self, net) -> tuple[int, ...]:
        """The canonical tokens of `net`; ValueError naming what is not of this space."""
        what = f"architecture not in space {self.name!r}"
        if not isinstance(net, CellNet):
            raise ValueError(f"{what}: expected a cell network (pynas.cell.CellNet), got {type(net).__name__} "
                             f"{_short(str(net))}")
        for field in ("resolution", "num_classes", "in_channels", "channels", "cells", "skeleton"):
            want = "darts" if field == "skeleton" else getattr(self, field)
            if getattr(net, field) != want:
                raise ValueError(f"{what}: {field}: expected {want}, got {getattr(net, field)!r}")
        tokens = []
        for genotype in net.genotypes:
            if genotype.output != self.output or len(genotype.nodes) != self.nodes:
                raise ValueError(f"{what}: {genotype.kind} cell: expected {self.nodes} nodes and output "
                                 f"{self.output}, got {len(genotype.nodes)} and {genotype.output}")
            for i, node in enumerate(genotype.nodes):
                tokens += self._node_tokens(node, i, genotype.kind)
        return tuple(tokens)

    def _node_tokens(self, node: Node, i: int, kind: str) -> list[int]:
        where = f"architecture not in space {self.name!r}: {kind}.node{i}"
        for edge in node.edges:
            if edge.op not in self.ops:
                raise ValueError(f"{where}: op: expected one of {', '.join(o for o in self.ops if o != 'none')}, "
                                 f"got {edge.op}")
        edges = list(node.edges)
        if self.pairs:
            if len(edges) > 2 or (len(edges) == 2 and edges[0].source == edges[1].source):
                raise ValueError(f"{where}: expected at most 2 edges from distinct states, got "
                                 f"{'_'.join(map(str, edges)) or 'none'}")
            pairs = list(itertools.combinations(range(i + 2), 2))
            if len(edges) == 2:  # sorted by source: a's is the lower
                (a, b), pair = edges, (edges[0].source, edges[1].source)
                ops = (a.op, b.op)
            elif len(edges) == 1:  # a lone edge's canonical pair: (0, 1) from state 0, else (0, its source)
                e = edges[0]
                pair, ops = ((0, 1), (e.op, "none")) if e.source == 0 else ((0, e.source), ("none", e.op))
            else:
                pair, ops = (0, 1), ("none", "none")
            return [pairs.index(pair), self.ops.index(ops[0]), self.ops.index(ops[1])]
        if len(edges) != 2:
            raise ValueError(f"{where}: expected 2 edges, got {len(edges)}")
        a, b = edges  # canonical order: by source, then op
        return [a.source, b.source, self.ops.index(a.op), self.ops.index(b.op)]

    @property
    def distinct_networks(self) -> int:
        """Structurally different networks the tokens make (`size` counts token vectors)."""
        per_cell = 1
        for i in range(self.nodes):
            n = i + 2
            real = len([o for o in self.ops if o != "none"])
            if self.pairs:  # both edges, one edge (source, op), or none
                per_cell *= math.comb(n, 2) * real * real + (n * real if "none" in self.ops else 0) + \
                    (1 if "none" in self.ops else 0)
            else:  # an unordered pair of (source, op) edges, repetition allowed
                m = n * real
                per_cell *= m * (m + 1) // 2
        return per_cell ** len(CELLS)

    def _not_itemised(self, what: str) -> ValueError:
        return ValueError(f"space {self.name!r}: {what}: expected a space whose networks have few enough distinct "
                          f"segments to measure each (mnasnet, fbnet), got {self.name} cells: about "
                          f"{self.distinct_networks ** 0.5:.1e} different cells at each of the skeleton's positions; "
                          f"price them per op (pynas.ir.lower(network).ops) instead")

    def segment_archs(self):
        raise self._not_itemised("segment_archs (what profiling measures)")

    def table_layout(self):
        raise self._not_itemised("table_layout (a compiled latency table)")

    def describe(self) -> str:
        return "\n".join([super().describe(),
                          f"  {self.nodes} nodes per cell, normal + reduction, on the darts skeleton (C {self.channels}, "
                          f"{self.cells} cells, {self.resolution}x{self.resolution}, {self.num_classes} classes)",
                          f"  distinct networks: {self.distinct_networks:.3e}"])


class DARTSSpace(CellSpace):
    name = "darts"
    nodes = 4
    ops = DARTS_OPS
    pairs = True
    output = "all"


class NASNetSpace(CellSpace):
    name = "nasnet"
    nodes = 5
    ops = NASNET_OPS
    pairs = False
    output = "loose"


class ENASSpace(CellSpace):
    name = "enas"
    nodes = 5
    ops = ENAS_OPS
    pairs = False
    output = "loose"


__all__ = ["CellSpace", "DARTSSpace", "DARTS_OPS", "ENASSpace", "ENAS_OPS", "NASNetSpace", "NASNET_OPS"]
