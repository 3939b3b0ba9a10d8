"""Segments: the units pynas measures and predicts.

A network is a chain of segments: the stem, every block repeat (all its ops, its shortcut
included), the head. Each segment reads one tensor and writes one, so it can be built and timed
alone on any backend (a native sub-network, a PyTorch sub-module converted for LiteRT or ONNX
Runtime), and a network's latency is the sum of its segments' plus a small per-network overhead.
Its `key` names exactly the work it does (shapes, channels, kernel, stride, activation, SE,
shortcut), so identical segments of different networks are measured once: the per-block lookup
tables of MnasNet, FBNet and HW-NAS-Bench work the same way.

The key of an inverted-residual or depthwise-separable repeat is the fused block kernel's key
(`pynas.ir.fusion.block_kernel_key`), the one the native runner executes as one step (grouped
repeats, ``g2``, as op-level steps). A repeat of an ``id`` layer (FBNet's skip) that changes the
shape is a 1x1 conv + act, kind ``convblock`` with a 1x1 ``cn`` block's key (the same work); one
that keeps the shape lowers to nothing and is no segment.

A cell network (`pynas.cell`, lowered by `pynas.ir.cells`) is the stem, one segment per layer
(``c<i>``: a cell, kind ``cell``, its preprocessing included; NAS-Bench-201's ResNet block between
stages, kind ``resblock``) and the head. A darts cell reads two tensors (the outputs of the two
layers before it); its key names both shapes. A cell key holds the cell's genotype as written
(`pynas.cell.CellSpec`, ``:`` written ``/``), its width and its input shapes: what determines the
work. A NAS-Bench-201 cell of skips only lowers to nothing and is no segment.
"""
from __future__ import annotations

from dataclasses import dataclass

from pynas.ir.fusion import BLOCK_KERNELS, block_kernel_key, conv_kernel_key
from pynas.ir.lower import Graph
from pynas.ir.ops import FLOAT_BYTES, Op, OpTotals

SEGMENT_KINDS = ("stem", "mbconv", "dsconv", "convblock", "head", "cell", "resblock")


@dataclass(frozen=True)
class Segment(OpTotals):
    id: str  # "stem", "s<stage>.<repeat>", "head"
    kind: str  # one of SEGMENT_KINDS
    key: str
    ops: tuple[Op, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """H, W, C of the segment's input."""
        return self.first.hin, self.first.win, self.first.cin

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return self.last.hout, self.last.wout, self.last.cout

    @property
    def bytes_in(self) -> int:
        h, w, c = self.input_shape
        return FLOAT_BYTES * self.first.n * h * w * c

    @property
    def bytes_out(self) -> int:
        h, w, c = self.output_shape
        return FLOAT_BYTES * self.last.n * h * w * c

    def features(self) -> dict[str, int | float | str]:
        """Descriptors of the work: the raw material of the latency predictor's features."""
        by_role = {op.role: op for op in self.ops}
        main = by_role.get("dw") or by_role.get("conv") or by_role.get("stem") or by_role.get("head")
        se = by_role.get("se")
        if "skip_pool" in by_role:
            skip = "poolproj" if "skip_proj" in by_role else "pool"
        else:
            skip = "identity" if "residual" in by_role else "none"
        act_op = next((op for op in self.ops if op.kind == "act"), None)
        h, w, cin = self.input_shape
        ho, wo, cout = self.output_shape
        mid = by_role["expand"].cout if "expand" in by_role else cin
        pointwise = by_role.get("project") or by_role.get("expand")
        return {
            "kind": self.kind, "cin": cin, "h": h, "w": w, "cout": cout, "hout": ho, "wout": wo,
            "mid": mid, "expansion": mid / cin, "kernel": main.kernel if main else 1,
            "stride": main.stride if main else 1, "groups": main.groups if main else 1,
            "pw_groups": pointwise.groups if pointwise else 1,
            "se": se.se_channels if se else 0, "act": act_op.act if act_op else "none",
            "skip": skip, "macs": self.macs, "params": self.params, "weight_bytes": self.weight_bytes,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "ops": len(self.ops),
        }


def segment_of(op: Op) -> str:
    if op.block is not None:
        return op.block
    return "stem" if op.role.startswith("stem") else "head"


def convblock_key(ops: list[Op]) -> str:
    """Key of a regular-conv (`cn`) block repeat, in the style of block_kernel_key."""
    by_role = {op.role: op for op in ops}
    conv, first, last = by_role["conv"], ops[0], ops[-1]
    se = by_role.get("se")
    if "skip_pool" in by_role:
        skip = "pool" + ("proj" if "skip_proj" in by_role else "")
    else:
        skip = "identity" if "residual" in by_role else "none"
    se_token = f"se{se.se_channels}.{se.act}.{se.gate}" if se else "se0"
    return "_".join(["convblock", f"n{first.n}", f"i{first.cin}x{first.hin}x{first.win}",
                     f"o{conv.cout}x{last.hout}x{last.wout}", f"k{conv.kernel}", f"s{conv.stride}",
                     by_role["conv_act"].act, se_token, f"skip{skip}"])


def head_key(ops: list[Op]) -> str:
    by_role = {op.role: op for op in ops}
    conv, fc, first = by_role["head"], by_role["classifier"], ops[0]
    order = "poolfirst" if ops[0].role == "pool" else "convfirst"
    return "_".join(["head", f"n{first.n}", f"i{first.cin}x{first.hin}x{first.win}", f"c{conv.cout}",
                     by_role["head_act"].act, order, f"cls{fc.cout}"])


def cell_segment_keys(net) -> dict[str, str]:
    """Segment id -> key of a cell network's layers (`pynas.cell.CellNet`), from the network itself:
    the key of a layer holds even when its cell lowers to no op."""
    keys, size = {}, net.resolution
    width_before = net.channels * (1 if net.skeleton == "nb201" else 3)
    shapes = [(width_before, size), (width_before, size)]  # outputs of the two layers before: (channels, size)
    for i, (kind, width) in enumerate(net.layout()):
        if kind == "resblock":
            c, h = shapes[-1]
            keys[f"c{i}"] = f"resblock_n1_i{c}x{h}x{h}_o{width}x{h // 2}x{h // 2}"
            shapes.append((width, h // 2))
            continue
        cell = net.cell(kind)
        read = shapes[-cell.inputs:]
        inputs = "_".join(f"i{c}x{h}x{h}" for c, h in read)
        genotype = str(cell).replace(":", "/")
        keys[f"c{i}"] = f"cell_n1_{inputs}_c{width}_{genotype}"
        out = read[-1][1] // (2 if kind == "reduce" else 1)
        shapes.append((width * len(cell.concat()), out))
    c, h = shapes[-1]
    keys["head"] = f"cellhead_n1_i{c}x{h}x{h}_{'bnrelu' if net.skeleton == 'nb201' else 'plain'}_cls{net.num_classes}"
    return keys


def _batched(key: str, batch: int) -> str:
    return key.replace("_n1_", f"_n{batch}_", 1)


def segments(graph: Graph) -> list[Segment]:
    """The graph's segments in execution order."""
    groups: dict[str, list[Op]] = {}
    if not hasattr(graph.arch, "stages"):  # a cell network
        for op in graph.ops:
            groups.setdefault(segment_of(op), []).append(op)
        keys = cell_segment_keys(graph.arch)
        out = []
        for sid, ops in groups.items():
            if sid == "stem":
                kind, key = "stem", "stem_" + conv_kernel_key(ops)
            else:
                kind = "head" if sid == "head" else keys[sid].split("_", 1)[0]
                key = _batched(keys[sid], graph.batch)
            out.append(Segment(id=sid, kind=kind, key=key, ops=tuple(ops)))
        return out
    for op in graph.ops:
        groups.setdefault(segment_of(op), []).append(op)
    out = []
    for sid, ops in groups.items():
        if sid == "stem":
            kind, key = "stem", "stem_" + conv_kernel_key(ops)
        elif sid == "head":
            kind, key = "head", head_key(ops)
        else:
            block = graph.arch.stages[int(sid[1:].split(".")[0])].block
            if block in BLOCK_KERNELS:
                kind = BLOCK_KERNELS[block]
                key = block_kernel_key(kind, ops)
            else:
                kind, key = "convblock", convblock_key(ops)
        out.append(Segment(id=sid, kind=kind, key=key, ops=tuple(ops)))
    return out
