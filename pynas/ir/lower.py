"""Lowering: an architecture -> the ordered op graph with shapes.

How each block lowers (every conv has BatchNorm unless said otherwise; convs pad k // 2):

* stem: conv k x k stride s, act.
* ``ir`` repeat: 1x1 expand to mid = round(in * e), act; k x k depthwise (stride s on the first
  repeat), act; SE on mid channels; 1x1 linear projection (no act); shortcut. The expand conv is
  there for every e, e = 1 included (then in -> in channels): HW-NAS-Bench's FBNet ConvBlock has it
  too (its ``exp1`` keys), and the no-expand block is ``ds``. With groups g > 1 (``g2``) both 1x1
  convs are grouped and a channel shuffle (op kind ``shuffle``) follows the expand's act, as in
  FBNet / HW-NAS-Bench's ConvBlock; g must divide in, mid and out channels.
* ``ds`` repeat: k x k depthwise, act; SE on in channels; 1x1 linear projection; shortcut.
* ``cn`` repeat: k x k conv, act; SE on out channels; shortcut.
* ``id`` repeat (FBNet's skip layer): nothing when it keeps the shape (stride 1, in == out
  channels); else a 1x1 conv with the repeat's stride (padding 0), act: HW-NAS-Bench's ``Skip``.
  Its ops have roles ``conv`` / ``conv_act``, so its segment key is a 1x1 ``cn`` block's: the same
  work, the same key.
* shortcut: ``identity`` adds the block input when stride is 1 and channels match (else nothing);
  ``pool`` adds avgpool 3x3 (stride s, padding 1, padding not counted) of the block input, through
  a 1x1 conv + BN when channels change; ``none`` adds nothing.
* head: 1x1 conv, act, global average pool, FC; or with pool_first: global average pool, 1x1 conv
  with bias and no BN, act, FC.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pynas.arch import Arch, Stage, make_divisible, round_half_up
from pynas.ir.ops import NETWORK_INPUT, Op, OpTotals


@dataclass(frozen=True)
class Graph(OpTotals):
    arch: Arch  # or a pynas.cell.CellNet
    ops: tuple[Op, ...]
    batch: int

    @property
    def output(self) -> Op:
        return self.ops[-1]

    def consumers(self) -> dict[int, list[int]]:
        users: dict[int, list[int]] = {op.id: [] for op in self.ops}
        for op in self.ops:
            for source in op.inputs:
                if source != NETWORK_INPUT:
                    users[source].append(op.id)
        return users


def se_channels(arch: Arch, stage: Stage, block_in: int, se_width: int) -> int:
    """Reduced SE width: from the block input (MnasNet/EfficientNet) or the expanded width (V3)."""
    if arch.se_style == "v3":
        return make_divisible(se_width * stage.se_ratio, 8)
    return max(1, round_half_up(block_in * stage.se_ratio))


def expanded_channels(block_in: int, expansion: float) -> int:
    return max(1, round_half_up(block_in * expansion))


@dataclass
class _Builder:
    """Appends ops while tracking the current tensor (producer id and shape)."""

    batch: int
    ops: list[Op] = field(default_factory=list)
    current: int = NETWORK_INPUT
    channels: int = 3
    height: int = 0
    width: int = 0

    def add(self, kind: str, name: str, cout: int | None = None, *, inputs=None, shape=None, kernel=1,
            stride=1, padding=0, groups=1, **attrs) -> int:
        source, cin, hin, win = shape or (self.current, self.channels, self.height, self.width)
        if kind == "gap":
            hout = wout = 1
        else:
            hout = (hin + 2 * padding - kernel) // stride + 1
            wout = (win + 2 * padding - kernel) // stride + 1
        op = Op(id=len(self.ops), kind=kind, name=name, inputs=tuple(inputs or (source,)), n=self.batch,
                cin=cin, hin=hin, win=win, cout=cin if cout is None else cout, hout=hout, wout=wout,
                kernel=kernel, stride=stride, padding=padding, groups=groups, **attrs)
        self.ops.append(op)
        self.current, self.channels, self.height, self.width = op.id, op.cout, op.hout, op.wout
        return op.id

    def snapshot(self):
        return self.current, self.channels, self.height, self.width

    def conv(self, name, cout, kernel, stride=1, groups=1, act=None, block=None, role="", bn=True, bias=False):
        kind = "pwconv" if kernel == 1 else ("dwconv" if groups == self.channels == cout and groups > 1 else "conv")
        self.add(kind, name, cout, kernel=kernel, stride=stride, padding=kernel // 2, groups=groups, bn=bn,
                 bias=bias, block=block, role=role)
        if act is not None:
            self.add("act", f"{name}.act", act=act, block=block, role=f"{role}_act")


def _lower_block(b: _Builder, arch: Arch, stage: Stage, stride: int, block: str) -> None:
    block_input = b.snapshot()
    block_in = b.channels
    if stage.block == "id":
        if stride != 1 or block_in != stage.channels:
            b.conv(f"{block}.conv", stage.channels, 1, stride, act=stage.act, block=block, role="conv")
        return
    groups = stage.groups
    if stage.block == "ir":
        mid = expanded_channels(block_in, stage.expansion)
        if block_in % groups or mid % groups:
            raise ValueError(f"block {block} ({stage}): groups {groups} must divide the input channels "
                             f"{block_in} and the expanded channels {mid}")
        b.conv(f"{block}.expand", mid, 1, groups=groups, act=stage.act, block=block, role="expand")
        if groups > 1:
            b.add("shuffle", f"{block}.shuffle", groups=groups, block=block, role="shuffle")
        b.conv(f"{block}.dw", mid, stage.kernel, stride, groups=mid, act=stage.act, block=block, role="dw")
    elif stage.block == "ds":
        b.conv(f"{block}.dw", block_in, stage.kernel, stride, groups=block_in, act=stage.act, block=block, role="dw")
    else:
        b.conv(f"{block}.conv", stage.channels, stage.kernel, stride, act=stage.act, block=block, role="conv")
    if stage.se_ratio > 0:
        inner = "re" if arch.se_style == "v3" else stage.act
        gate = "hsigmoid" if arch.se_style == "v3" else "sigmoid"
        b.add("se", f"{block}.se", se_channels=se_channels(arch, stage, block_in, b.channels), act=inner,
              gate=gate, block=block, role="se")
    if stage.block != "cn":
        b.conv(f"{block}.project", stage.channels, 1, groups=groups, block=block, role="project")
    main = b.snapshot()

    if stage.skip == "identity" and stride == 1 and block_in == stage.channels:
        shortcut = block_input[0]
    elif stage.skip == "pool":
        b.add("avgpool", f"{block}.skip_pool", shape=block_input, kernel=3, stride=stride, padding=1,
              block=block, role="skip_pool")
        if block_in != stage.channels:
            b.conv(f"{block}.skip_proj", stage.channels, 1, block=block, role="skip_proj")
        shortcut = b.current
    else:
        return
    b.add("add", f"{block}.add", inputs=(main[0], shortcut), shape=main, block=block, role="residual")


def lower(arch, batch: int = 1) -> Graph:
    """The ordered op graph of `arch` (an Arch, or a cell network: `pynas.ir.cells`) for a batch of
    `batch` images."""
    from pynas.cell import CellNet

    if isinstance(arch, CellNet):
        from pynas.ir.cells import cellnet_ops

        return Graph(arch=arch, ops=cellnet_ops(arch, batch), batch=batch)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected an integer >= 1, got {batch!r}")
    b = _Builder(batch=batch, channels=arch.in_channels, height=arch.resolution, width=arch.resolution)
    b.conv("stem", arch.stem.channels, arch.stem.kernel, arch.stem.stride, act=arch.stem.act, role="stem")
    for index, stage in enumerate(arch.stages):
        for repeat in range(stage.repeats):
            _lower_block(b, arch, stage, stage.stride if repeat == 0 else 1, f"s{index}.{repeat}")
    head = arch.head
    if head.pool_first:
        b.add("gap", "head.pool", role="pool")
        b.conv("head.conv", head.channels, 1, act=head.act, bn=False, bias=True, role="head")
    else:
        b.conv("head.conv", head.channels, 1, act=head.act, role="head")
        b.add("gap", "head.pool", role="pool")
    b.add("fc", "classifier", arch.num_classes, bias=True, role="classifier")
    return Graph(arch=arch, ops=tuple(b.ops), batch=batch)
