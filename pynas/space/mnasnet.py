"""The MnasNet factorized hierarchical search space (Tan et al., CVPR 2019, Sec. 4.1).

Seven blocks on the MobileNetV2 skeleton (stem 3x3/2 conv 32, head 1x1 conv 1280, ReLU
throughout, as MnasNet). Block i has base output channels, base layers and stride

    channels 16, 24, 32, 64, 96, 160, 320;  layers 1, 2, 3, 4, 3, 3, 1;  stride 1, 2, 2, 2, 1, 2, 1

and six decisions, each lowering as follows:

* ``op``: ``conv`` a regular k x k conv (``cn``), ``dsconv`` depthwise separable (``ds``),
  ``mbconv3`` / ``mbconv6`` inverted residual with expansion 3 / 6 (``ir``).
* ``kernel``: 3 or 5 (the depthwise kernel, or the regular conv's kernel).
* ``se``: ratio 0 (none) or 0.25, reduced from the block's input channels.
* ``skip``: ``pool`` a pooling shortcut on every layer (3x3 average pool with the layer's stride,
  then a 1x1 conv + BN where channels change), ``identity`` a residual on every layer whose input
  and output shapes match (never the block's first layer here: it always changes the shape),
  ``none``.
* ``filters``: 0.75, 1.0 or 1.25 x base channels (all products are integers, and distinct).
* ``layers``: base - 1, base or base + 1. On blocks with one base layer, -1 gives a block of 0
  layers: it is kept in the architecture as data (``r0``) and lowers to nothing.

Size: 432 choices per block, 432^7 ~ 2.8e18 token vectors, a bijection with the architectures.
MnasNet's quoted ~1e13 is 432^5, its example with B = 5 blocks. Several token vectors lower to the
same network (a 0-layer block ignores its other choices; on a 1-layer block ``identity`` adds no
residual, like ``none``); `distinct_networks()` counts the networks.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterator, Sequence

from pynas.arch import Arch, Head, Stage, Stem, round_half_up
from pynas.space.base import Decision, SearchSpace
from pynas.space.layout import BlockSlot, TableCell, TableLayout, TableSpec

BASE_CHANNELS = (16, 24, 32, 64, 96, 160, 320)
BASE_LAYERS = (1, 2, 3, 4, 3, 3, 1)
STRIDES = (1, 2, 2, 2, 1, 2, 1)

OPS = ("conv", "dsconv", "mbconv3", "mbconv6")
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = ("pool", "identity", "none")
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
_FIELDS = ("op", "kernel", "se", "skip", "filters", "layers")
_OP_BLOCK = {"conv": ("cn", 1.0), "dsconv": ("ds", 1.0), "mbconv3": ("ir", 3.0), "mbconv6": ("ir", 6.0)}


class MnasNetSpace(SearchSpace):
    name = "mnasnet"

    def __init__(self, resolution: int = 224, num_classes: int = 1000, in_channels: int = 3):
        self.resolution = resolution
        self.num_classes = num_classes
        self.in_channels = in_channels  # 1 for grey images (Fashion-MNIST); only the stem sees it
        self.stem = Stem(kernel=3, stride=2, channels=32)
        self.head = Head(channels=1280)
        choices = dict(op=OPS, kernel=KERNELS, se=SE_RATIOS, skip=SKIPS, filters=FILTER_MULTIPLIERS,
                       layers=LAYER_DELTAS)
        self.decisions = tuple(Decision(f"b{b + 1}.{field}", choices[field])
                               for b in range(len(BASE_CHANNELS)) for field in _FIELDS)
        self.channel_choices = tuple(tuple(round_half_up(c * m) for m in FILTER_MULTIPLIERS) for c in BASE_CHANNELS)
        # Architecture -> token must be unique: the width choices of a block must differ.
        assert all(len(set(c)) == len(c) for c in self.channel_choices)
        self.decode((0,) * len(self.decisions))  # a bad resolution, class or channel count fails here, not later

    def options(self) -> dict:
        options = {"resolution": self.resolution, "num_classes": self.num_classes}
        if self.in_channels != 3:  # written only when set, so RGB runs' configs stay as they were
            options["in_channels"] = self.in_channels
        return options

    def _block_stage(self, block: int, choice: dict) -> Stage:
        kind, expansion = _OP_BLOCK[choice["op"]]
        return Stage(block=kind, repeats=BASE_LAYERS[block] + choice["layers"], kernel=choice["kernel"],
                     stride=STRIDES[block], channels=round_half_up(BASE_CHANNELS[block] * choice["filters"]),
                     expansion=expansion, se_ratio=choice["se"], skip=choice["skip"])

    def decode(self, tokens: Sequence[int]) -> Arch:
        tokens = self.check_tokens(tokens)
        stages = []
        for block in range(len(BASE_CHANNELS)):
            span = slice(block * len(_FIELDS), (block + 1) * len(_FIELDS))
            choice = {field: decision.choices[token]
                      for field, decision, token in zip(_FIELDS, self.decisions[span], tokens[span])}
            stages.append(self._block_stage(block, choice))
        return Arch(self.resolution, self.num_classes, self.stem, tuple(stages), self.head,
                    in_channels=self.in_channels)

    def encode(self, arch: Arch) -> tuple[int, ...]:
        def expect(field, got, allowed):
            if got not in allowed:
                raise ValueError(f"architecture not in space {self.name!r}: {field}: expected one of "
                                 f"{tuple(allowed)}, got {got!r}")
            return tuple(allowed).index(got)

        expect("resolution", arch.resolution, (self.resolution,))
        expect("num_classes", arch.num_classes, (self.num_classes,))
        expect("in_channels", arch.in_channels, (self.in_channels,))
        expect("se_style", arch.se_style, ("mnas",))
        expect("stem", arch.stem, (self.stem,))
        expect("head", arch.head, (self.head,))
        expect("number of stages", len(arch.stages), (len(BASE_CHANNELS),))
        tokens = []
        for block, stage in enumerate(arch.stages):
            name = f"stage {block} ({stage})"
            tokens.append(expect(f"{name} block/expansion", (stage.block, stage.expansion), _OP_BLOCK.values()))
            tokens.append(expect(f"{name} kernel", stage.kernel, KERNELS))
            tokens.append(expect(f"{name} se_ratio", stage.se_ratio, SE_RATIOS))
            tokens.append(expect(f"{name} skip", stage.skip, SKIPS))
            tokens.append(expect(f"{name} channels", stage.channels, self.channel_choices[block]))
            tokens.append(expect(f"{name} repeats", stage.repeats - BASE_LAYERS[block], LAYER_DELTAS))
            expect(f"{name} stride", stage.stride, (STRIDES[block],))
            expect(f"{name} act", stage.act, ("re",))
            expect(f"{name} groups", stage.groups, (1,))
        return tuple(tokens)

    def _input_contexts(self, block: int) -> Iterator[dict[int, int]]:
        """Token assignments of the blocks before `block` that give it every input width it can
        have: the previous block at each width, or (where that block can have 0 layers) empty,
        passing on what came before it."""
        width = len(_FIELDS)
        if block == 0:
            yield {}
            return
        prev = block - 1
        most_layers = len(LAYER_DELTAS) - 1
        for filters in range(len(FILTER_MULTIPLIERS)):
            yield {prev * width + 4: filters, prev * width + 5: most_layers}
        if BASE_LAYERS[prev] + LAYER_DELTAS[0] == 0:
            for context in self._input_contexts(prev):
                yield {**context, prev * width + 5: 0}

    def _segment_tokens(self) -> Iterator[tuple[str, list[int], str]]:
        """(table, tokens, segment id): every block choice at its most layers (so a first and a
        later repeat exist) after every input width; the stem; the head after every width the
        last blocks can give it. What both `segment_archs` and `table_layout` enumerate."""
        width = len(_FIELDS)
        most_layers = len(LAYER_DELTAS) - 1
        base = [0] * len(self.decisions)
        yield "constant", base, "stem"
        for block in range(len(BASE_CHANNELS)):
            for context in self._input_contexts(block):
                for chunk in itertools.product(*(range(d.cardinality) for d in self.decisions[:width - 1])):
                    tokens = list(base)
                    for index, token in context.items():
                        tokens[index] = token
                    tokens[block * width:(block + 1) * width] = [*chunk, most_layers]
                    yield "first", tokens, f"s{block}.0"
                    yield "rest", tokens, f"s{block}.1"
        for context in self._input_contexts(len(BASE_CHANNELS)):
            tokens = list(base)
            for index, token in context.items():
                tokens[index] = token
            yield "head", tokens, "head"

    def segment_archs(self) -> Iterator[tuple[Arch, str]]:
        """Every block choice at its most layers (so a first and a later repeat exist) after every
        input width; the stem; the head after every width the last blocks can give it."""
        arch, last = None, None
        for _, tokens, sid in self._segment_tokens():
            if tokens != last:  # a block's first and later repeat share one architecture
                arch, last = self.decode(tokens), tokens
            yield arch, sid

    def table_layout(self) -> TableSpec:
        """Seven slots b1..b7: chunk = (op, kernel, se, skip, filters) of the block (144 chunks),
        repeats from its layers token, next state from its filters token. States: the stem width
        and each block's three widths (22); block b sees the previous block's widths, and also
        those before it where that block can be empty (b2 after an empty b1 sees the stem; the head
        after an empty b7 sees b6's widths)."""
        width = len(_FIELDS)
        # A state is a width only: that holds because an empty block changes no resolution (the
        # blocks that can have 0 layers have stride 1), so every block's input resolution is fixed.
        for block, layers in enumerate(BASE_LAYERS):
            if layers + LAYER_DELTAS[0] == 0:
                assert STRIDES[block] == 1, f"block {block + 1} can be empty: a state would need its resolution"
        states = [f"stem:c{self.stem.channels}"]
        for block, channels in enumerate(self.channel_choices):
            states += [f"b{block + 1}:c{c}" for c in channels]
        slots = tuple(BlockSlot(
            name=f"b{block + 1}", stage=block, chunk_tokens=tuple(range(block * width, block * width + width - 1)),
            repeats_token=block * width + 5, repeats=tuple(BASE_LAYERS[block] + d for d in LAYER_DELTAS),
            state_token=block * width + 4,
            next_state=tuple(1 + len(FILTER_MULTIPLIERS) * block + f for f in range(len(FILTER_MULTIPLIERS))))
            for block in range(len(BASE_CHANNELS)))
        layout = TableLayout(space=f"{self.name}_res{self.resolution}_cls{self.num_classes}"
                             + (f"_in{self.in_channels}" if self.in_channels != 3 else ""),
                             decision_names=tuple(d.name for d in self.decisions), cardinalities=self.cardinalities,
                             states=tuple(states), initial_state=0, blocks=slots)
        return TableSpec(layout, lambda: self._table_cells(layout))

    def _table_cells(self, layout: TableLayout) -> Iterator[TableCell]:
        """The cells `_segment_tokens` prices, each placed by the layout's own trace of its tokens
        (the state and chunk block b reads), so cells and layout cannot disagree."""
        arch, last = None, None
        for table, tokens, sid in self._segment_tokens():
            if tokens != last:
                arch, last = self.decode(tokens), tokens
                trace, head_state = layout.trace(tokens)
            if table in ("first", "rest"):
                block = int(sid[1:].split(".")[0])
                yield TableCell(table, arch, sid, block=block, state=trace[block].state if table == "first" else None,
                                chunk=trace[block].chunk)
            elif table == "head":
                yield TableCell(table, arch, sid, state=head_state)
            else:
                yield TableCell(table, arch, sid)

    def network_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Tokens with choices that do not change the lowered network set to a fixed value, so
        two token vectors give the same network exactly when these are equal."""
        tokens = list(self.check_tokens(tokens))
        width = len(_FIELDS)
        for block in range(len(BASE_CHANNELS)):
            chunk = tokens[block * width:(block + 1) * width]
            layers = BASE_LAYERS[block] + LAYER_DELTAS[chunk[5]]
            if layers == 0:
                chunk = [0] * (width - 1) + [chunk[5]]
            elif layers == 1 and SKIPS[chunk[3]] == "identity":
                chunk[3] = SKIPS.index("none")
            tokens[block * width:(block + 1) * width] = chunk
        return tuple(tokens)

    def distinct_networks(self) -> int:
        """How many different networks the space holds (see `network_tokens`)."""
        width = len(_FIELDS)
        total = 1
        for block in range(len(BASE_CHANNELS)):
            per_block = set()
            for chunk in itertools.product(*(range(d.cardinality) for d in self.decisions[:width])):
                tokens = [0] * len(self.decisions)
                tokens[block * width:(block + 1) * width] = chunk
                per_block.add(self.network_tokens(tokens)[block * width:(block + 1) * width])
            total *= len(per_block)
        return total

    def describe(self) -> str:
        distinct = self.distinct_networks()
        return (super().describe() + f"\n  distinct networks: {distinct:.3e} "
                f"(log10 {math.log10(distinct):.2f}); MnasNet's ~1e13 is 432^5 = {432 ** 5:.2e}")
