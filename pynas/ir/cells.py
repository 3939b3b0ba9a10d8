"""Lowering of cell networks (`pynas.cell.CellNet`) to the op graph, as `pynas.ir.lower` does blocks.

    graph = pynas.ir.lower(pynas.cell.parse("cellnet_res32_cls10:nb201_c16_n5:cell_olast:node_conv3~0:..."))
    graph.macs, graph.params                                    # the built module's (tests/test_torch_cells.py)

How each part lowers (the module docstring of `pynas.cell` says what the network is):

* stem: conv 3x3 (no bias) + BN, no activation: ``conv`` with bn.
* an edge, on the cell width C, stride s (2 from a reduction cell's inputs):
  ``skip`` nothing (the node reads the state itself), or with s = 2 FactorizedReduce: ``act`` ReLU,
  ``pwconv`` C -> C/2 stride 2 + BN, ``crop`` of the ReLU's output by one pixel, ``pwconv`` stride
  2 + BN, ``concat`` of the two halves (the BN after DARTS's concat is per channel: each half's
  part folds into its conv, the same parameters and work); ``conv1``/``conv3``: ``act`` ReLU,
  ``conv``/``pwconv`` + BN; ``sepK``: (``act``, ``dwconv`` KxK without BN, ``pwconv`` + BN) twice,
  the first dwconv with stride s; ``dilK``: ``act``, ``dwconv`` KxK dilation 2 (padding K - 1),
  ``pwconv`` + BN; ``avg3``: ``avgpool`` 3x3 padding 1 (padding not counted); ``maxK``: ``maxpool``
  KxK padding K // 2.
* a node: ``add`` of its edges' outputs (any number of inputs); one edge: that edge's output; none:
  a ``zero`` op at the node's shape, emitted only where a later edge or the output reads it.
* a cell's output: its last node, or ``concat`` of its chosen nodes (one node: that node).
* darts preprocessing, first in each cell: the older input (cell k-2) through FactorizedReduce when
  the cell before was a reduction, else ReLU + 1x1 conv + BN to C; the newer (cell k-1) ReLU + 1x1
  conv + BN to C. Both are there even when the input already has C channels (as DARTS builds them).
* nb201's ResNet block: ``act``, ``conv`` 3x3 stride 2 + BN, ``act``, ``conv`` 3x3 + BN; shortcut
  ``avgpool`` 2x2 stride 2 and ``pwconv`` without BN or bias; ``add``.
* head: nb201 ``bn``, ``act`` ReLU, ``gap``, ``fc``; darts ``gap``, ``fc``.

Every edge is lowered, those of nodes that do not reach the cell's output included: the networks
compute them (NAS-Bench-201's benchmark counted and timed them). Ops of one layer carry ``block``
``c<i>`` (i: the layer's index after the stem, `CellNet.layout`), which the segments use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pynas.cell import CellNet, CellSpec, Edge
from pynas.ir.ops import NETWORK_INPUT, Op

Tensor = tuple[int, int, int, int]  # producer op id, channels, height, width


@dataclass
class _Ops:
    batch: int
    ops: list[Op] = field(default_factory=list)

    def add(self, kind: str, name: str, inputs: tuple[Tensor, ...], cout: int | None = None, *, kernel=1, stride=1,
            padding=0, dilation=1, groups=1, shape: tuple[int, int] | None = None, **attrs) -> Tensor:
        first = inputs[0]
        cin = sum(t[1] for t in inputs) if kind == "concat" else first[1]
        hin, win = first[2], first[3]
        if shape is not None:
            hout, wout = shape
        elif kind == "gap":
            hout = wout = 1
        elif kind == "crop":
            hout, wout = hin - 1, win - 1
        else:
            span = dilation * (kernel - 1) + 1
            hout = (hin + 2 * padding - span) // stride + 1
            wout = (win + 2 * padding - span) // stride + 1
        op = Op(id=len(self.ops), kind=kind, name=name, inputs=tuple(t[0] for t in inputs) if kind != "zero" else (),
                n=self.batch, cin=cin, hin=hin, win=win, cout=cin if cout is None else cout, hout=hout, wout=wout,
                kernel=kernel, stride=stride, padding=padding, groups=groups, dilation=dilation, **attrs)
        self.ops.append(op)
        return op.id, op.cout, op.hout, op.wout

    def relu(self, x: Tensor, name: str, block: str, role: str) -> Tensor:
        return self.add("act", f"{name}.relu", (x,), act="re", block=block, role=role)

    def conv(self, x: Tensor, name: str, cout: int, kernel: int, stride: int = 1, *, depthwise=False, dilation=1,
             bn=True, block: str, role: str) -> Tensor:
        kind = "dwconv" if depthwise else ("pwconv" if kernel == 1 else "conv")
        return self.add(kind, name, (x,), cout, kernel=kernel, stride=stride, padding=dilation * (kernel - 1) // 2,
                        dilation=dilation, groups=x[1] if depthwise else 1, bn=bn, block=block, role=role)

    def relu_conv_bn(self, x: Tensor, name: str, cout: int, kernel: int, stride: int, block: str, role: str) -> Tensor:
        return self.conv(self.relu(x, name, block, role), name, cout, kernel, stride, block=block, role=role)

    def factorized_reduce(self, x: Tensor, name: str, cout: int, block: str, role: str) -> Tensor:
        act = self.relu(x, name, block, role)
        half = cout // 2
        a = self.conv(act, f"{name}.conv_1", half, 1, 2, block=block, role=role)
        shifted = self.add("crop", f"{name}.crop", (act,), block=block, role=role)
        b = self.conv(shifted, f"{name}.conv_2", half, 1, 2, block=block, role=role)
        return self.add("concat", f"{name}.cat", (a, b), cout, groups=2, block=block, role=role)


def _edge(b: _Ops, x: Tensor, edge: Edge, stride: int, width: int, name: str, block: str) -> Tensor:
    op, k = edge.op, int(edge.op[-1]) if edge.op != "skip" else 1
    if op == "skip":
        return x if stride == 1 else b.factorized_reduce(x, name, width, block, "edge")
    if op.startswith("conv"):
        return b.relu_conv_bn(x, name, width, k, stride, block, "edge")
    if op.startswith("sep"):
        for i, s in ((1, stride), (2, 1)):
            x = b.relu(x, f"{name}.{i}", block, "edge")
            x = b.conv(x, f"{name}.dw{i}", x[1], k, s, depthwise=True, bn=False, block=block, role="edge")
            x = b.conv(x, f"{name}.pw{i}", width, 1, block=block, role="edge")
        return x
    if op.startswith("dil"):
        x = b.relu(x, name, block, "edge")
        x = b.conv(x, f"{name}.dw", x[1], k, stride, depthwise=True, dilation=2, bn=False, block=block, role="edge")
        return b.conv(x, f"{name}.pw", width, 1, block=block, role="edge")
    kind = "avgpool" if op.startswith("avg") else "maxpool"
    return b.add(kind, name, (x,), kernel=k, stride=stride, padding=k // 2, block=block, role="edge")


def lower_cell(b: _Ops, cell: CellSpec, inputs: tuple[Tensor, ...], width: int, block: str) -> Tensor:
    """The ops of one cell on its (preprocessed) inputs; returns its output tensor."""
    states: list[Tensor | None] = list(inputs)
    reduced = inputs[0][2] // (2 if cell.kind == "reduce" else 1), inputs[0][3] // (2 if cell.kind == "reduce" else 1)
    empty: dict[int, Tensor] = {}

    def state(index: int) -> Tensor:
        if states[index] is None:  # a node with no edge: zeros, made where something reads them
            if index not in empty:
                empty[index] = b.add("zero", f"{block}.n{index}.zero", (inputs[0],), width, shape=reduced, block=block,
                                     role="node")
            return empty[index]
        return states[index]

    for index, node in enumerate(cell.nodes):
        target = cell.inputs + index
        outs = [_edge(b, state(e.source), e, cell.stride(e.source), width, f"{block}.e{e.source}to{target}.{e.op}",
                      block) for e in node.edges]
        if not outs:
            states.append(None)
        elif len(outs) == 1:
            states.append(outs[0])
        else:
            states.append(b.add("add", f"{block}.n{target}", tuple(outs), block=block, role="node"))
    chosen = [state(i) for i in cell.concat()]
    if len(chosen) == 1:
        return chosen[0]
    return b.add("concat", f"{block}.cat", tuple(chosen), groups=len(chosen), block=block, role="concat")


def cellnet_ops(net: CellNet, batch: int = 1) -> tuple[Op, ...]:
    """The ordered ops of `net` for a batch of `batch` images (`pynas.ir.lower` makes the Graph)."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch: expected an integer >= 1, got {batch!r}")
    b = _Ops(batch)
    image: Tensor = (NETWORK_INPUT, net.in_channels, net.resolution, net.resolution)
    stem_width = net.channels * (1 if net.skeleton == "nb201" else 3)
    x = b.conv(image, "stem", stem_width, 3, role="stem", block=None)
    if net.skeleton == "nb201":
        for i, (kind, width) in enumerate(net.layout()):
            block = f"c{i}"
            if kind == "cell":
                x = lower_cell(b, net.genotypes[0], (x,), width, block)
                continue
            main = b.relu_conv_bn(x, f"{block}.conv_a", width, 3, 2, block, "resblock")
            main = b.relu_conv_bn(main, f"{block}.conv_b", width, 3, 1, block, "resblock")
            short = b.add("avgpool", f"{block}.pool", (x,), kernel=2, stride=2, block=block, role="shortcut")
            short = b.conv(short, f"{block}.proj", width, 1, bn=False, block=block, role="shortcut")
            x = b.add("add", f"{block}.add", (main, short), block=block, role="residual")
        x = b.add("bn", "lastact.bn", (x,), role="head")
        x = b.add("act", "lastact.relu", (x,), act="re", role="head")
    else:
        older, newer, reduction_before = x, x, False
        for i, (kind, width) in enumerate(net.layout()):
            block = f"c{i}"
            if reduction_before:
                s0 = b.factorized_reduce(older, f"{block}.pre0", width, block, "pre0")
            else:
                s0 = b.relu_conv_bn(older, f"{block}.pre0", width, 1, 1, block, "pre0")
            s1 = b.relu_conv_bn(newer, f"{block}.pre1", width, 1, 1, block, "pre1")
            older, newer = newer, lower_cell(b, net.cell(kind), (s0, s1), width, block)
            reduction_before = kind == "reduce"
        x = newer
    x = b.add("gap", "head.pool", (x,), role="pool")
    b.add("fc", "classifier", (x,), net.num_classes, bias=True, role="classifier")
    return tuple(b.ops)
