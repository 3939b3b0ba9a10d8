"""The FBNet search space (Wu et al., CVPR 2019) as HW-NAS-Bench defines it (Li et al., ICLR 2021).

A fixed macro-architecture with 22 searchable layers in 7 stages: stem 3x3 conv to 16 channels,
stages of [1, 4, 4, 4, 4, 4, 1] layers with output channels [16, 24, 32, 64, 112, 184, 352] (only a
stage's first layer changes channels and stride), head 1x1 conv, global average pool, classifier;
ReLU throughout, no SE. Two settings:

===========  =======  ===========  =======================  =========  =======
setting      input    stem         stage strides            head conv  classes
===========  =======  ===========  =======================  =========  =======
imagenet     224x224  3x3 stride 2 1, 2, 2, 2, 1, 2, 1        1984       1000
cifar100     32x32    3x3 stride 1 1, 1, 2, 2, 1, 2, 1        1504       100
===========  =======  ===========  =======================  =========  =======

Each layer is one decision of 9 choices, in HW-NAS-Bench's order (its token is the index):

    k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip

``k<k>_e<e>[_g2]`` is HW-NAS-Bench's ConvBlock, an inverted residual: 1x1 conv in -> in * e
(grouped with g2; kept for e = 1 too), channel shuffle if g2, k x k depthwise with the layer's
stride, 1x1 conv to out (grouped with g2), residual where in == out and stride 1. It is the stage
``ir_r1_k<k>_s<s>_e<e>_c<out>[_g2]``. ``skip`` is the identity where the layer keeps the shape,
else a 1x1 conv with the stride + BN + ReLU (HW-NAS-Bench's Skip): the stage ``id_r1_s<s>_c<out>``.
An architecture has one stage per layer (22 stages of one repeat), so the tokens and the
architectures are in bijection (`decode`, `encode`), and so are the networks: no two token vectors
lower to the same network. Size 9^22 ~ 9.8e20.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from pynas.arch import Arch, Head, Stage, Stem
from pynas.space.base import Decision, SearchSpace
from pynas.space.layout import BlockSlot, TableCell, TableLayout, TableSpec

STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STEM_CHANNELS = 16
CHOICES = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP = "skip"
# Choice -> (block, kernel, expansion, groups) of its stage.
_OPS = {name: ("ir", int(name[1]), float(name.split("_")[1][1:]), 2 if name.endswith("_g2") else 1)
        for name in CHOICES if name != SKIP}
_OPS[SKIP] = ("id", 1, 1.0, 1)


@dataclass(frozen=True)
class Setting:
    resolution: int
    stem_stride: int
    stage_strides: tuple[int, ...]
    head_channels: int
    num_classes: int


SETTINGS = {
    "imagenet": Setting(224, 2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
    "cifar100": Setting(32, 1, (1, 1, 2, 2, 1, 2, 1), 1504, 100),
}


@dataclass(frozen=True)
class Layer:
    """One searchable layer: its stage, channels, stride and input size (H = W)."""

    index: int
    stage: int
    cin: int
    cout: int
    stride: int
    size: int

    @property
    def keeps_shape(self) -> bool:
        """A skip here is the identity (lowers to nothing)."""
        return self.cin == self.cout and self.stride == 1


def _out_size(size: int, stride: int) -> int:
    # Every conv here has an odd kernel k with padding k // 2 (the 1x1 ones padding 0), so the
    # output size depends on the stride only: (size - 1) // stride + 1 whatever the choice.
    return (size - 1) // stride + 1


class FBNetSpace(SearchSpace):
    name = "fbnet"

    def __init__(self, setting: str = "imagenet", resolution: int | None = None, num_classes: int | None = None,
                 in_channels: int = 3):
        """`setting` 'imagenet' or 'cifar100'; `resolution` and `num_classes` default to the
        setting's (other values, and `in_channels` other than 3, make architectures HW-NAS-Bench
        has no tables for)."""
        if setting not in SETTINGS:
            raise ValueError(f"setting: expected one of {', '.join(SETTINGS)}, got {setting!r}")
        self.setting = setting
        config = SETTINGS[setting]
        self.resolution = config.resolution if resolution is None else resolution
        self.num_classes = config.num_classes if num_classes is None else num_classes
        self.in_channels = in_channels
        self.stem = Stem(kernel=3, stride=config.stem_stride, channels=STEM_CHANNELS)
        self.head = Head(channels=config.head_channels)
        self.decisions = tuple(Decision(f"layer{i}", CHOICES) for i in range(sum(STAGE_LAYERS)))
        if not isinstance(self.resolution, int) or isinstance(self.resolution, bool) or self.resolution < 1:
            raise ValueError(f"resolution: expected an integer >= 1, got {self.resolution!r}")
        layers, cin, size = [], STEM_CHANNELS, _out_size(self.resolution, config.stem_stride)
        for stage, (count, cout, stride) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS, config.stage_strides)):
            for repeat in range(count):
                s = stride if repeat == 0 else 1
                layers.append(Layer(len(layers), stage, cin, cout, s, size))
                cin, size = cout, _out_size(size, s)
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.head_size = size  # the head conv's input H = W
        self.decode((0,) * len(self.decisions))  # a bad class count fails here, not later

    def options(self) -> dict:
        options = {"setting": self.setting, "resolution": self.resolution, "num_classes": self.num_classes}
        if self.in_channels != 3:  # written only when set, so RGB runs' configs stay as they were
            options["in_channels"] = self.in_channels
        return options

    def layer_stage(self, layer: int, choice: str) -> Stage:
        """The stage of layer `layer` (0..21) with choice `choice` (one of CHOICES)."""
        if choice not in _OPS:
            raise ValueError(f"choice: expected one of {', '.join(CHOICES)}, got {choice!r}")
        block, kernel, expansion, groups = _OPS[choice]
        spec = self.layers[layer]
        return Stage(block=block, repeats=1, kernel=kernel, stride=spec.stride, channels=spec.cout,
                     expansion=expansion, groups=groups)

    def decode(self, tokens: Sequence[int]) -> Arch:
        tokens = self.check_tokens(tokens)
        stages = tuple(self.layer_stage(i, CHOICES[t]) for i, t in enumerate(tokens))
        return Arch(self.resolution, self.num_classes, self.stem, stages, self.head, in_channels=self.in_channels)

    def choices(self, tokens: Sequence[int]) -> tuple[str, ...]:
        """The choice names of a token vector, e.g. ('k3_e1', 'skip', ...)."""
        return tuple(CHOICES[t] for t in self.check_tokens(tokens))

    def encode(self, arch: Arch) -> tuple[int, ...]:
        def expect(field, got, allowed):
            allowed = tuple(allowed)
            if got not in allowed:
                raise ValueError(f"architecture not in space {self.name!r} ({self.setting}): {field}: expected "
                                 f"one of {allowed}, got {got!r}")
            return allowed.index(got)

        expect("resolution", arch.resolution, (self.resolution,))
        expect("num_classes", arch.num_classes, (self.num_classes,))
        expect("in_channels", arch.in_channels, (self.in_channels,))
        expect("se_style", arch.se_style, ("mnas",))
        expect("stem", arch.stem, (self.stem,))
        expect("head", arch.head, (self.head,))
        expect("number of stages", len(arch.stages), (len(self.layers),))
        ops = tuple(_OPS[c] for c in CHOICES)
        tokens = []
        for layer, stage in zip(self.layers, arch.stages):
            name = f"layer {layer.index} ({stage})"
            expect(f"{name} repeats", stage.repeats, (1,))
            expect(f"{name} stride", stage.stride, (layer.stride,))
            expect(f"{name} channels", stage.channels, (layer.cout,))
            expect(f"{name} act", stage.act, ("re",))
            expect(f"{name} se_ratio", stage.se_ratio, (0.0,))
            token = expect(f"{name} (block, kernel, expansion, groups)",
                           (stage.block, stage.kernel, stage.expansion, stage.groups), ops)
            # ConvBlock adds its residual exactly where the identity skip does.
            expect(f"{name} skip", stage.skip, ("none" if CHOICES[token] == SKIP else "identity",))
            tokens.append(token)
        return tuple(tokens)

    def segment_archs(self) -> Iterator[tuple[Arch, str]]:
        """Every choice of every layer: a layer's input shape is fixed (no width choices, and a skip
        that keeps the shape is the identity), so its segment depends on its own choice only. A
        skip that keeps the shape lowers to nothing and has no segment."""
        base = [0] * len(self.decisions)
        yield self.decode(base), "stem"
        for layer in self.layers:
            for token, choice in enumerate(CHOICES):
                if choice == SKIP and layer.keeps_shape:
                    continue
                tokens = list(base)
                tokens[layer.index] = token
                yield self.decode(tokens), f"s{layer.index}.0"
        yield self.decode(base), "head"

    def table_layout(self) -> TableSpec:
        """22 slots l0..l21, one per layer: chunk = the layer's token (9 chunks), one repeat, one
        state (every layer's input shape is fixed). The stem is the constant, the head the head
        cell; a skip that is the identity is a cell with no segment (see `SearchSpace.table_layout`)."""
        n = len(self.decisions)
        slots = tuple(BlockSlot(name=f"l{i}", stage=i, chunk_tokens=(i,), repeats_token=None, repeats=(1,),
                                state_token=None, next_state=(0,)) for i in range(n))
        layout = TableLayout(space=f"{self.name}_{self.setting}_res{self.resolution}_cls{self.num_classes}"
                             + (f"_in{self.in_channels}" if self.in_channels != 3 else ""),
                             decision_names=tuple(d.name for d in self.decisions), cardinalities=self.cardinalities,
                             states=("fixed",), initial_state=0, blocks=slots)
        return TableSpec(layout, self._table_cells)

    def _table_cells(self) -> Iterator[TableCell]:
        base = [0] * len(self.decisions)
        arch = self.decode(base)
        yield TableCell("constant", arch, "stem")
        yield TableCell("head", arch, "head", state=0)
        for layer in self.layers:
            for token, choice in enumerate(CHOICES):
                tokens = list(base)
                tokens[layer.index] = token
                identity = choice == SKIP and layer.keeps_shape
                yield TableCell("first", self.decode(tokens), None if identity else f"s{layer.index}.0",
                                block=layer.index, state=0, chunk=token)

    def describe(self) -> str:
        config = SETTINGS[self.setting]
        lines = [super().describe(),
                 f"  setting {self.setting}: {self.resolution}x{self.resolution} input, stem 3x3 stride "
                 f"{config.stem_stride} to {STEM_CHANNELS}, head 1x1 to {self.head.channels}, "
                 f"{self.num_classes} classes",
                 "  stages (layers x channels, stride): " + ", ".join(
                     f"{n}x{c} s{s}" for n, c, s in zip(STAGE_LAYERS, STAGE_CHANNELS, config.stage_strides)),
                 f"  distinct networks: all {self.size:.3e} (every token vector lowers differently)"]
        return "\n".join(lines)
