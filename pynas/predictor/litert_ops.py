"""The ops LiteRT runs for a NAS-Bench-201 network: its converter's graph passes, emulated.

    from pynas.predictor.litert_ops import executed_ops, ops_in_tflite

    executed_ops(space.network(tokens))   # Counter({"CONV_2D 32x32x16->32x32x16 k3": 16, ...})
    ops_in_tflite("model.tflite")          # the same count, read from a converted file

Why. NAS-Bench-201's cells often leave nodes without edges (zeros) or cut the input off from the
output, and LiteRT's converter (litert-torch, TFLite's MLIR passes) does not run what such a network
writes: a model of the cell's edges fitted on 480 timed networks held out only 52-61% within 10%
(a cell whose output ignores its input runs in 0.05 ms where its connected neighbours take 1-3 ms;
one whose output node has no edge runs nothing at all). What the converter does was read from 600
converted networks (their ops and shapes, `ops_in_tflite`) and is reproduced here exactly (a test
compares every one of them):

* dead code is removed: when a cell's output does not depend on its input, every layer before the
  last cell goes, and the last cell runs on constants;
* constant zeros fold through ReLU, sums, padding and BatchNorm (a node without edges is a zero
  tensor; x + 0 is x), but a convolution or an average pool *of* zeros still runs (the converter has
  no folder for them; a 3x3 conv of zeros reads them padded, as a VALID conv), and the pools of
  zeros at one shape are one op (common sub-expressions merge: the same op on the same input once,
  also the partial sums two nodes share);
* a ReLU fuses into the op that produced its input (conv, add, pool) when nothing else reads that
  input raw; a node read both raw (skip, pool) and through ReLU-Conv keeps one RELU op;
* BatchNorm folds into the conv before it when the conv's output goes nowhere else; the head's
  BatchNorm after a sum is a MUL (its shift is zero in the initialised networks pynas profiles, so
  its ADD folds away: one 8x8x64 add more in a trained network);
* NCHW input and the head's mean run as TRANSPOSE ops; a stride-2 conv pads with a PAD op.

Each op is named by its signature (`signature`: op, input and output shapes without the batch,
and a conv's kernel): the ops a cost model prices (`pynas.predictor.cellnet`'s ``litert-ops`` form).
"""
from __future__ import annotations

import collections
import functools
import itertools
from pathlib import Path

import numpy as np

# The nb201 cell's ops (pynas.cell's names): the ReLU-Conv-BN edges and the 3x3 average pool.
_CONV_KERNELS = {"conv1": 1, "conv3": 3}
_ZERO = "zero"  # a known zero tensor: folds away through ReLU, sums and BatchNorm


def signature(op: str, input_shape, output_shape, kernel: int | None = None) -> str:
    """An op's name in the counts: ``OP HxWxC->HxWxC`` (shapes without the batch) and `` kK`` for a
    convolution's kernel."""
    def dims(shape) -> str:
        return "x".join(str(int(d)) for d in shape)

    return f"{op} {dims(input_shape)}->{dims(output_shape)}" + (f" k{kernel}" if kernel is not None else "")


class _Graph:
    """The converted graph being built: ops by id, common sub-expressions merged as they are added."""

    def __init__(self):
        self.ops: dict[int, tuple] = {}  # id -> (op, input ids, input shape, output shape, kernel)
        self.shape: dict = {}  # value -> shape (H, W, C)
        self._seen: dict[tuple, int] = {}
        self._ids = itertools.count()

    def add(self, op: str, inputs: list, shape: tuple, kernel: int | None = None, weights: bool = False,
            in_shape: tuple | None = None):
        """The value of `op` on `inputs`; an op with its own weights (conv, BN) is never merged."""
        key = (op, tuple(inputs), shape, kernel)
        if not weights and key in self._seen:
            return self._seen[key]
        i = next(self._ids)
        self.ops[i] = (op, tuple(inputs), in_shape or self.shape[inputs[0]], shape, kernel)
        self.shape[i] = shape
        if not weights:
            self._seen[key] = i
        return i

    def relu(self, value):
        return _ZERO if value == _ZERO else self.add("RELU", [value], self.shape[value])

    def sum(self, terms: list):
        """Node sums: zeros dropped, the rest added left to right (so two nodes' common prefix merges)."""
        terms = [t for t in terms if t != _ZERO]
        if not terms:
            return _ZERO
        value = terms[0]
        for term in terms[1:]:
            value = self.add("ADD", [value, term], self.shape[value])
        return value


def _cell(graph: _Graph, genotype, x, shape: tuple):
    nodes = [x]
    for node in genotype.nodes:
        terms = []
        for edge in node.edges:
            source = nodes[edge.source]
            if edge.op == "skip":
                terms.append(source)
            elif edge.op == "avg3":  # runs on zeros too (once per shape: merged)
                terms.append(graph.add("AVERAGE_POOL_2D", [source], shape, in_shape=shape))
            elif edge.op in _CONV_KERNELS:  # ReLU-Conv-BN, BN folded; a conv of zeros runs
                k = _CONV_KERNELS[edge.op]
                h, w, c = shape  # zeros come padded (the PAD folds into the constant): a VALID conv
                in_shape = (h + k - 1, w + k - 1, c) if source == _ZERO else shape
                terms.append(graph.add("CONV_2D", [graph.relu(source)], shape, k, weights=True, in_shape=in_shape))
            else:
                raise ValueError(f"edge.op: expected one of skip, conv1, conv3, avg3 (nb201's), got {edge.op!r}")
        nodes.append(graph.sum(terms))
    return nodes[-1]


def _build(net) -> tuple[_Graph, object]:
    """The network's graph as the converter sees it before its passes, and its output value (None when
    the output is a constant: nothing runs)."""
    if getattr(net, "skeleton", None) != "nb201":
        got = getattr(net, "skeleton", net)
        raise ValueError(f"network: expected a cell network of the nb201 skeleton, got {got!r}")
    graph, size, width = _Graph(), net.resolution, net.channels
    graph.shape["input"] = (3, size, size)  # NCHW: transposed to NHWC first
    x = graph.add("TRANSPOSE", ["input"], (size, size, 3))
    x = graph.add("CONV_2D", [x], (size, size, width), 3, weights=True)  # stem conv, its BN folded
    genotype = net.cell("cell")
    for kind, c in net.layout():
        if kind == "resblock":
            padded = graph.add("PAD", [graph.relu(x)], (size + 2, size + 2, width))
            size, width = size // 2, c
            a = graph.add("CONV_2D", [padded], (size, size, width), 3, weights=True)
            b = graph.add("CONV_2D", [graph.relu(a)], (size, size, width), 3, weights=True)
            pooled = graph.add("AVERAGE_POOL_2D", [x], (size, size, graph.shape[x][2]))
            shortcut = graph.add("CONV_2D", [pooled], (size, size, width), 1, weights=True)
            x = graph.add("ADD", [b, shortcut], (size, size, width), weights=True)
        else:
            x = _cell(graph, genotype, x, (size, size, width))
            if x == _ZERO:  # the cell's output node has no edge: the network's output is a constant
                return graph, None
    x = graph.relu(graph.add("BN", [x], graph.shape[x], weights=True))
    x = graph.add("TRANSPOSE", [x], (width, size, size))
    x = graph.add("MEAN", [x], (width,))
    return graph, graph.add("FULLY_CONNECTED", [x], (net.num_classes,), weights=True)


def executed_ops(net) -> collections.Counter:
    """The ops LiteRT runs for cell network `net` (nb201 skeleton), counted by `signature`."""
    graph, output = _build(net)
    counts = collections.Counter()
    if output is None:
        return counts
    live, stack = set(), [output]
    while stack:  # dead code: only what the output reads
        i = stack.pop()
        if isinstance(i, int) and i not in live:
            live.add(i)
            stack.extend(graph.ops[i][1])
    readers = collections.defaultdict(list)
    for i in live:
        for source in graph.ops[i][1]:
            readers[source].append(i)
    for i in sorted(live):
        op, inputs, in_shape, out_shape, kernel = graph.ops[i]
        source = inputs[0]
        if op == "RELU" and graph.ops.get(source, ("",))[0] in ("CONV_2D", "ADD", "AVERAGE_POOL_2D", "BN") \
                and all(graph.ops[r][0] == "RELU" for r in readers[source]):
            continue  # fused into the op that produced its input
        if op == "BN":
            if graph.ops[source][0] == "CONV_2D" and len(readers[source]) == 1:
                continue  # folded into that conv
            op = "MUL"  # its shift is zero: the ADD folds away (module docstring)
        counts[signature(op, in_shape, out_shape, kernel)] += 1
    return counts


def ops_in_tflite(path: str | Path) -> collections.Counter:
    """The ops of a converted .tflite file counted by `signature` (LiteRT's interpreter reads it;
    shapes in its NHWC layout), to check `executed_ops` against the converter in hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    counts = collections.Counter()
    for op in interpreter._get_ops_details():  # no public listing of a model's ops in LiteRT's Python API
        inputs = [tensors[i]["shape"] for i in op["inputs"] if i >= 0]
        output = tensors[op["outputs"][0]]["shape"]
        kernel = int(inputs[1][1]) if op["op_name"] == "CONV_2D" else None  # weights O x kH x kW x I
        counts[signature(op["op_name"], inputs[0][1:], output[1:], kernel)] += 1
    return counts


@functools.lru_cache(maxsize=None)
def space_signatures(space_name: str = "nb201") -> tuple[str, ...]:
    """Every signature some network of the space runs, sorted: the feature columns of a model."""
    return tuple(sorted(set().union(*_space_counts(space_name))))


@functools.lru_cache(maxsize=None)
def _space_counts(space_name: str) -> tuple[collections.Counter, ...]:
    """The executed ops of every network of the space, in the space's index order (15,625: ~10 s,
    once per process)."""
    from pynas.space import get_space

    space = get_space(space_name)
    rows = space.tokens_of(range(space.size))
    return tuple(executed_ops(space.network(tuple(int(t) for t in row))) for row in rows)


def op_counts(space, tokens) -> np.ndarray:
    """N x len(space_signatures()) counts of the ops LiteRT runs for the networks of N token rows
    of `space` (nb201)."""
    names = space_signatures(space.name)
    column = {name: i for i, name in enumerate(names)}
    table = _table(space.name, names)
    return table[space.index_of(tokens)] if len(tokens) else np.zeros((0, len(column)))


@functools.lru_cache(maxsize=None)
def _table(space_name: str, names: tuple[str, ...]) -> np.ndarray:
    column = {name: i for i, name in enumerate(names)}
    table = np.zeros((len(_space_counts(space_name)), len(names)))
    for row, counts in enumerate(_space_counts(space_name)):
        for name, n in counts.items():
            table[row, column[name]] = n
    return table


def converted_ops(net, folder: str | Path) -> collections.Counter:
    """The ops of `net` as LiteRT's converter in hand leaves them: the network built, its BatchNorm
    folded and converted as `pynas profile --backend litert` converts it (into `folder`), then read
    (`ops_in_tflite`); what tests compare `executed_ops` with."""
    from pynas import runtimes
    from pynas.torch_builder import build_torch, fold_batchnorm

    module = fold_batchnorm(build_torch(net)).eval()
    example = np.random.default_rng(0).standard_normal((1, 3, net.resolution, net.resolution), dtype=np.float32)
    path = Path(folder) / "network.tflite"
    runtimes.convert_to_file("litert", module, example, path)
    return ops_in_tflite(path)
