"""IR operations: one tensor-producing op with full shapes and its cost counts.

Counting conventions (the ones the MnasNet / MobileNet papers use):

* ``macs``: multiply-accumulates of convolutions and fully connected layers (the SE's two FCs
  included). Pooling, activations, residual adds, channel shuffles and the SE channel scale count 0,
  and so do the cell networks' element-wise ops (a node's multi-input sum, a standalone BatchNorm,
  a concatenation, a crop, a zero tensor).
* ``params``: trainable parameters of the PyTorch model: conv/FC weights and biases, plus 2 per
  channel (gamma, beta) for each BatchNorm. BN running statistics are buffers, not counted.
* ``weight_bytes``: what an inference kernel reads after BN is folded: weights plus one bias per
  output channel, fp32.
* ``bytes_in`` / ``bytes_out``: fp32 activation tensors read (each input tensor once) and written.
"""
from __future__ import annotations

from dataclasses import dataclass

FLOAT_BYTES = 4
CONV_KINDS = ("conv", "dwconv", "pwconv")
# shuffle: ShuffleNet's channel shuffle after a grouped 1x1 conv (`groups` groups): output channel
# j * groups + g is input channel g * (C / groups) + j. A pure permutation: no MACs, no weights.
# Cell networks (pynas.cell, lowered by pynas.ir.cells) add: maxpool; zero (a tensor of zeros: a
# cell node with no edge, no input read); concat (channel concatenation of `groups` equal parts;
# `cin` is the total); bn (a standalone BatchNorm: NAS-Bench-201's last BN, a per-channel scale and
# shift at inference); crop (x[:, :, 1:, 1:], DARTS's FactorizedReduce's shifted path). An add may
# sum more than two inputs (a node with three edges).
KINDS = CONV_KINDS + ("fc", "se", "add", "avgpool", "gap", "act", "shuffle", "maxpool", "zero", "concat", "bn",
                      "crop")
GATES = ("sigmoid", "hsigmoid")
NETWORK_INPUT = -1


@dataclass(frozen=True)
class Op:
    """One op. `inputs` are producer op ids (NETWORK_INPUT for the image); `block` groups the ops
    of one block repeat (e.g. 's2.1') so fusion passes can keep a block together."""

    id: int
    kind: str
    name: str
    inputs: tuple[int, ...]
    n: int
    cin: int
    hin: int
    win: int
    cout: int
    hout: int
    wout: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1  # conv groups; a shuffle's groups; a concat's parts
    dilation: int = 1  # conv dilation (DARTS's dil_conv: 2)
    act: str | None = None  # the function of an 'act' op; the inner activation of an 'se' op
    bias: bool = False  # conv/FC with its own bias
    bn: bool = False  # conv followed by BatchNorm (folded into a bias at inference)
    se_channels: int = 0  # SE: reduced width
    gate: str | None = None  # SE: gate function
    block: str | None = None
    role: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"op.kind: expected one of {KINDS}, got {self.kind!r}")

    # -- counts -------------------------------------------------------------------------------
    @property
    def weight_count(self) -> int:
        """Weights only (no bias, no BN)."""
        if self.kind in CONV_KINDS:
            return self.cout * (self.cin // self.groups) * self.kernel * self.kernel
        if self.kind == "fc":
            return self.cin * self.cout
        if self.kind == "se":
            return 2 * self.cin * self.se_channels
        return 0

    @property
    def macs(self) -> int:
        if self.kind in CONV_KINDS:
            return self.weight_count * self.hout * self.wout * self.n
        if self.kind in ("fc", "se"):
            return self.weight_count * self.n
        return 0

    @property
    def params(self) -> int:
        if self.kind == "se":
            return self.weight_count + self.se_channels + self.cin  # both FCs have biases
        if self.kind == "bn":
            return 2 * self.cout
        return self.weight_count + (self.cout if self.bias else 0) + (2 * self.cout if self.bn else 0)

    @property
    def weight_bytes(self) -> int:
        if self.kind == "se":
            return FLOAT_BYTES * (self.weight_count + self.se_channels + self.cin)
        if self.kind == "bn":
            return FLOAT_BYTES * 2 * self.cout  # folded to a scale and a shift per channel
        if self.weight_count == 0:
            return 0
        has_bias = self.bias or self.bn
        return FLOAT_BYTES * (self.weight_count + (self.cout if has_bias else 0))

    @property
    def bytes_in(self) -> int:
        if self.kind == "concat":  # `cin` is the parts' total: each part read once
            return FLOAT_BYTES * self.n * self.cin * self.hin * self.win
        return FLOAT_BYTES * self.n * self.cin * self.hin * self.win * len(self.inputs)

    @property
    def bytes_out(self) -> int:
        return FLOAT_BYTES * self.n * self.cout * self.hout * self.wout

    # -- identity -----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Canonical key: identical for identical work, whatever the op's name or position."""
        parts = [self.kind, f"n{self.n}", f"i{self.cin}x{self.hin}x{self.win}", f"o{self.cout}x{self.hout}x{self.wout}"]
        if self.kind in CONV_KINDS or self.kind in ("avgpool", "maxpool"):
            parts += [f"k{self.kernel}", f"s{self.stride}", f"p{self.padding}"]
        if self.dilation != 1:  # only then: the keys of undilated ops stay as they were
            parts.append(f"d{self.dilation}")
        if self.kind in CONV_KINDS or self.kind in ("shuffle", "concat"):
            parts.append(f"g{self.groups}")
        if self.kind == "add" and len(self.inputs) != 2:  # a node's sum of three edges is more work
            parts.append(f"a{len(self.inputs)}")
        if self.kind == "se":
            parts += [f"r{self.se_channels}", self.act, self.gate]
        if self.kind == "act":
            parts.append(self.act)
        return "_".join(parts)


class OpTotals:
    """Totals over `self.ops`, and its first and last op, shared by graphs, kernels and segments."""

    ops: tuple[Op, ...]

    @property
    def first(self) -> Op:
        return self.ops[0]

    @property
    def last(self) -> Op:
        return self.ops[-1]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(op.weight_bytes for op in self.ops)
