"""Fusion passes: group ops of a lowered graph into the kernels a runtime would execute.

* ``fuse(graph)``: every conv (BN already folded into its bias) absorbs the activation that alone
  consumes it, then a channel shuffle that alone consumes that (a grouped expand conv's: the
  kernel writes its output shuffled, as ``pynas._core.pointwise(..., shuffle=True)`` does), then a
  residual add that alone consumes that (the add's other input becomes a kernel input); every
  other op is a kernel of its own.
* Cell networks (`pynas.ir.cells`) fuse the same way: a conv absorbs its activation and an add
  that alone consumes it (a node's sum); their pools, concats, crops, zeros and standalone BN are
  kernels of their own, and ``blocks=True`` changes nothing (a cell has no fused block kernel).
* ``fuse(graph, blocks=True)``: additionally every ``ir`` (MBConv) and ``ds`` (depthwise-
  separable) block repeat, shortcut included, is one kernel, as a row-tiled fused block kernel
  would run it. Later passes can split a block kernel back into its ops (``Kernel.ops``); the
  native runner does so for grouped blocks (``g2``), which its fused block step does not run.

Kernel bytes count only tensors crossing the kernel boundary: intermediates stay on chip, which is
the point of fusing. A tensor read from outside by two ops of a kernel (a block input feeding both
the expand conv and the residual add) counts twice: the reads happen at different times, and this
keeps a kernel's bytes a function of its key.
"""
from __future__ import annotations

from dataclasses import dataclass

from pynas.ir.lower import Graph
from pynas.ir.ops import CONV_KINDS, FLOAT_BYTES, NETWORK_INPUT, Op, OpTotals

BLOCK_KERNELS = {"ir": "mbconv", "ds": "dsconv"}


@dataclass(frozen=True)
class Kernel(OpTotals):
    kind: str
    key: str
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]  # producer op ids read from outside the kernel
    outputs: tuple[int, ...]  # op ids whose tensors leave the kernel
    bytes_in: int
    bytes_out: int

    @property
    def name(self) -> str:
        return self.ops[0].block if self.kind in BLOCK_KERNELS.values() else self.ops[0].name


def _tensor_bytes(graph: Graph, op_id: int) -> int:
    if op_id == NETWORK_INPUT:
        return FLOAT_BYTES * graph.batch * graph.arch.in_channels * graph.arch.resolution ** 2
    return graph.ops[op_id].bytes_out


def _make_kernel(graph: Graph, kind: str, key: str, ops: list[Op], consumers: dict[int, list[int]]) -> Kernel:
    inside = {op.id for op in ops}
    inputs = tuple(dict.fromkeys(src for op in ops for src in op.inputs if src not in inside))
    outputs = tuple(op.id for op in ops
                    if any(user not in inside for user in consumers[op.id]) or op.id == graph.output.id)
    return Kernel(kind=kind, key=key, ops=tuple(ops), inputs=inputs, outputs=outputs,
                  bytes_in=sum(_tensor_bytes(graph, src) for op in ops for src in op.inputs if src not in inside),
                  bytes_out=sum(_tensor_bytes(graph, o) for o in outputs))


def _conv_chain(graph: Graph, op: Op, consumers: dict[int, list[int]]) -> list[Op]:
    """op, then its activation, its channel shuffle and its residual add, while each is the sole
    consumer of the one before and in op's segment (its `block`; each is optional)."""
    chain = [op]
    for kind in ("act", "shuffle", "add"):
        users = consumers[chain[-1].id]
        user = graph.ops[users[0]] if len(users) == 1 else None
        # An add absorbed into a conv takes one other input (a residual): a cell node's sum of
        # three or more edges stays a kernel of its own. Never across a segment boundary (the
        # stem's conv and the first cell's node sum, a cell's last conv and the next cell's ReLU):
        # a kernel belongs to one segment, so segments time and key alone what a network runs.
        if user is not None and user.kind == kind and user.inputs[0] == chain[-1].id and \
                (kind != "add" or len(user.inputs) == 2) and user.block == op.block:
            chain.append(graph.ops[users[0]])
    return chain


def conv_kernel_key(chain: list[Op]) -> str:
    act = next((op.act for op in chain if op.kind == "act"), "linear")
    shuffle = "_shuffle" if any(op.kind == "shuffle" for op in chain) else ""
    residual = "_res" if chain[-1].kind == "add" else ""
    return f"{chain[0].key}_{act}{shuffle}{residual}"


def block_kernel_key(kind: str, ops: list[Op]) -> str:
    """Readable key of a whole block from the ops it holds: shapes, mid width, groups of the 1x1
    convs (``g<groups>`` after the mid width, only when grouped: a grouped block always shuffles
    after its expand, and ungrouped keys stay as they were), kernel, stride, activation, SE and the
    shortcut actually applied."""
    first, last = ops[0], ops[-1]
    by_role = {op.role: op for op in ops}
    dw = by_role["dw"]
    se = by_role.get("se")
    main_out = by_role["project"]
    if "skip_pool" in by_role:
        skip = "pool" + ("proj" if "skip_proj" in by_role else "")
    else:
        skip = "identity" if "residual" in by_role else "none"
    se_token = f"se{se.se_channels}.{se.act}.{se.gate}" if se else "se0"
    groups = [f"g{main_out.groups}"] if main_out.groups > 1 else []
    return "_".join([kind, f"n{first.n}", f"i{first.cin}x{first.hin}x{first.win}",
                     f"o{main_out.cout}x{last.hout}x{last.wout}", f"m{dw.cin}", *groups, f"k{dw.kernel}",
                     f"s{dw.stride}", by_role["dw_act"].act, se_token, f"skip{skip}"])


def fuse(graph: Graph, blocks: bool = False) -> list[Kernel]:
    """The graph's kernels in an executable (topological) order."""
    consumers = graph.consumers()
    kernels: list[Kernel] = []
    taken: set[int] = set()
    if blocks and hasattr(graph.arch, "stages"):  # cell networks have no block kernels: op-level kernels
        groups: dict[str, list[Op]] = {}
        for op in graph.ops:
            if op.block is not None and graph.arch.stages[int(op.block[1:].split(".")[0])].block in BLOCK_KERNELS:
                groups.setdefault(op.block, []).append(op)
        for block_ops in groups.values():
            kind = BLOCK_KERNELS[graph.arch.stages[int(block_ops[0].block[1:].split(".")[0])].block]
            kernels.append(_make_kernel(graph, kind, block_kernel_key(kind, block_ops), block_ops, consumers))
            taken.update(op.id for op in block_ops)
    for op in graph.ops:
        if op.id in taken:
            continue
        if op.kind in CONV_KINDS:
            chain = _conv_chain(graph, op, consumers)
            kernels.append(_make_kernel(graph, op.kind, conv_kernel_key(chain), chain, consumers))
            taken.update(o.id for o in chain)
        else:
            kernels.append(_make_kernel(graph, op.kind, op.key, [op], consumers))
            taken.add(op.id)
    # A kernel's last op consumes everything the kernel reads from outside, and intermediates never
    # leave a kernel, so ordering by last op id is a topological order.
    kernels.sort(key=lambda k: k.last.id)
    return kernels
