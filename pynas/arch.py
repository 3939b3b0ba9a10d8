"""Architectures as data, their one-line string form and its strict parser.

An architecture is a header (input resolution, classes, SE style), a stem conv, a list of stages
and a head. Each stage is one block type repeated, written as a timm-style block string::

    net_res224_cls1000:stem_k3_s2_c32:ds_r1_k3_s1_c16_noskip:ir_r2_k3_s2_e6_c24:...:head_c1280

Parts are separated by ``:``, tokens by ``_``; the first token of a part names it.

==========  ========================================================================
part        required tokens; optional tokens
==========  ========================================================================
``net``     ``res<int>`` input resolution, ``cls<int>`` classes; ``in<int>`` input channels; flag ``sev3``
``stem``    ``k s c``; ``n<act>``
``ir``      ``r k s e c``; ``g<groups> se<ratio> n<act>``; one skip flag
``ds``      ``r k s c``; ``se<ratio> n<act>``; one skip flag
``cn``      ``r k s c``; ``se<ratio> n<act>``; one skip flag
``id``      ``r s c``; ``n<act>``
``head``    ``c``; ``n<act>``; flag ``poolfirst``
==========  ========================================================================

The input is ``in`` channels (default 3, RGB, and then not written): ``in1`` for grey images
(Fashion-MNIST), ``in4`` for RGB-D, and so on; only the stem sees it.

Keys: ``r`` repeats (0 allowed: the stage is kept as data and lowers to nothing, which is how the
MnasNet space's "-1 layer" choice on a one-layer block is represented), ``k`` kernel, ``s`` stride
of the first repeat (later repeats use 1), ``e`` expansion (mid channels = round(in * e)), ``c``
output channels, ``se`` squeeze-and-excitation ratio (0 = none), ``n`` activation: ``re`` ReLU
(the default), ``r6`` ReLU6, ``hs`` h-swish, ``sw`` swish.

``g`` (``ir`` only, default 1) groups of the block's two 1x1 convs: with ``g2`` the expand and the
projection are grouped 1x1 convs and a channel shuffle (ShuffleNet) follows the expand's
activation, as in FBNet's ``e1_g2`` blocks. The groups must divide the output channels (and, when
lowered, the input and expanded channels).

``id`` is FBNet's ``skip`` layer, a block with no body of its own: each repeat is the identity
where it keeps the shape (stride 1, same channels), else a 1x1 conv with the repeat's stride + BN +
activation to the new shape (HW-NAS-Bench's ``Skip``). It takes no kernel (1), expansion, SE,
groups or skip flag.

Skip flags: ``skip`` identity residual on every repeat whose input and output shapes match (the
default for ``ir`` and ``ds``); ``noskip`` no shortcut (the default for ``cn``); ``poolskip`` a
pooling shortcut on every repeat: 3x3 average pool with the repeat's stride (padding 1, padding
not counted), then a 1x1 conv + BN when the channel count changes, added to the block output.

SE styles: by default (MnasNet, EfficientNet) the SE reduces to round(block input channels *
ratio) with the block's activation inside and a sigmoid gate; ``sev3`` (MobileNetV3) reduces to
make_divisible(expanded channels * ratio, 8) with ReLU inside and a hard-sigmoid gate.

Size limits. Every size has an upper bound, so that a typo fails at once with a one-line error
instead of lowering (or allocating) for minutes: ``r1000000`` used to run out of time and memory
in ``pynas.ir.lower``. The bounds leave several times the headroom of the largest networks of the
families pynas searches (MnasNet, FBNet, MobileNetV2/V3, EfficientNet up to B7):

============  =======  ===================================================================
field         maximum  largest in those networks
============  =======  ===================================================================
``res``          4096  600 (EfficientNet-B7; 800 for EfficientNet-L2); mobile nets 224-320
``cls``        100000  21841 (ImageNet-21k); ImageNet 1000, CIFAR-100 100
``c``, ``g``    16384  2560 (EfficientNet-B7's head; its widest stage 640, expanded 3840);
                       FBNet's head 1984; MnasNet's and MobileNetV2/V3's 1280
``r``              64  13 (EfficientNet-B7's deepest stage); MnasNet 4, FBNet 1 per stage
stages             64  22 (FBNet: one stage per searchable layer); MnasNet, EfficientNet 7
``k``               7  3/5/7 depthwise (MnasNet, FBNet, EfficientNet); 1/3/5/7 regular conv
============  =======  ===================================================================

At the limits (64 stages of 64 repeats) a string still lowers in seconds. The bounds are the
``MAX_*`` constants; ``LIMITS`` maps each bounded field to its maximum. Whether a network fits in
memory at its resolution is checked where memory is allocated (``pynas.native.runner``).

The parser is strict: an unknown, duplicate, conflicting or missing token, or an invalid value
(one out of the bounds above included), raises :class:`ArchParseError` (a ``ValueError``) naming
the token and its character position.
``parse(str(a)) == a`` for every valid architecture; ``str`` writes the canonical form, which
leaves out optional tokens that hold their default.
"""
from __future__ import annotations

import dataclasses
import decimal
import math
import re
from dataclasses import dataclass

ACTIVATIONS = ("re", "r6", "hs", "sw")
BLOCK_TYPES = ("ir", "ds", "cn", "id")
SKIPS = ("identity", "pool", "none")
SE_STYLES = ("mnas", "v3")
STAGE_SEPARATOR = ":"

_SKIP_FLAGS = {"skip": "identity", "noskip": "none", "poolskip": "pool"}
# An id layer is itself a shortcut: it takes no other.
_DEFAULT_SKIP = {"ir": "identity", "ds": "identity", "cn": "none", "id": "none"}
_DEPTHWISE_KERNELS = (3, 5, 7)
_CONV_KERNELS = (1, 3, 5, 7)
_ID_KERNELS = (1,)  # an id layer's shape-changing projection is a 1x1 conv
_STRIDES = (1, 2)


class ArchParseError(ValueError):
    """A malformed architecture string: names the offending token and its character position."""

    def __init__(self, message: str, token: str, position: int):
        super().__init__(f"token {token!r} at position {position}: {message}")
        self.token = token
        self.position = position


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of divisor, never below 90% of value (MobileNet convention)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def round_half_up(value: float) -> int:
    # Not Python's round(): banker's rounding would make 2.5 -> 2, and products like 80 * 2.3
    # are 183.99999999999997 in binary floating point.
    return int(math.floor(value + 0.5 + 1e-9))


# Size limits (the module docstring says where they come from).
MAX_RESOLUTION = 4096
MAX_CLASSES = 100_000
MAX_CHANNELS = 16384
MAX_REPEATS = 64
MAX_STAGES = 64
# Each bounded integer field (as its ValueError names it) -> its maximum.
LIMITS = {"resolution": MAX_RESOLUTION, "num_classes": MAX_CLASSES, "in_channels": MAX_CHANNELS,
          "stem.channels": MAX_CHANNELS,
          "stage.channels": MAX_CHANNELS, "stage.groups": MAX_CHANNELS, "stage.repeats": MAX_REPEATS,
          "head.channels": MAX_CHANNELS, "stages": MAX_STAGES}


def _check(condition: bool, field: str, expected: str, got) -> None:
    if not condition:
        raise ValueError(f"{field}: expected {expected}, got {got!r}")


def _check_int(value, field: str, minimum: int) -> None:
    """An integer in [minimum, LIMITS[field]]."""
    maximum = LIMITS[field]
    _check(_is_int(value) and minimum <= value <= maximum, field, f"an integer in [{minimum}, {maximum}]", value)


def _format_number(value: float) -> str:
    """Shortest round-tripping decimal, never in exponent notation (the grammar has no exponents)."""
    if float(value).is_integer():
        return str(int(value))
    return format(decimal.Decimal(repr(float(value))), "f")


@dataclass(frozen=True)
class Stem:
    """Regular kxk conv from the input image (its channels: `Arch.in_channels`), with BN and activation."""

    kernel: int
    stride: int
    channels: int
    act: str = "re"

    def __post_init__(self):
        _check(_is_int(self.kernel) and self.kernel in _CONV_KERNELS, "stem.kernel", f"one of {_CONV_KERNELS}",
               self.kernel)
        _check(_is_int(self.stride) and self.stride in _STRIDES, "stem.stride", f"one of {_STRIDES}", self.stride)
        _check_int(self.channels, "stem.channels", 1)
        _check(self.act in ACTIVATIONS, "stem.act", f"one of {ACTIVATIONS}", self.act)

    def __str__(self) -> str:
        tokens = ["stem", f"k{self.kernel}", f"s{self.stride}", f"c{self.channels}"]
        if self.act != "re":
            tokens.append(f"n{self.act}")
        return "_".join(tokens)


@dataclass(frozen=True)
class Stage:
    """One block type repeated `repeats` times; only the first repeat has `stride` and changes channels."""

    block: str
    repeats: int
    kernel: int
    stride: int
    channels: int
    expansion: float = 1.0
    se_ratio: float = 0.0
    act: str = "re"
    skip: str | None = None  # None means the block type's default
    groups: int = 1  # ir: groups of the 1x1 convs, with a channel shuffle after the expand if > 1

    def __post_init__(self):
        _check(self.block in BLOCK_TYPES, "stage.block", f"one of {BLOCK_TYPES}", self.block)
        _check_int(self.repeats, "stage.repeats", 0)
        kernels = {"cn": _CONV_KERNELS, "id": _ID_KERNELS}.get(self.block, _DEPTHWISE_KERNELS)
        _check(_is_int(self.kernel) and self.kernel in kernels, "stage.kernel", f"one of {kernels} for {self.block}",
               self.kernel)
        _check(_is_int(self.stride) and self.stride in _STRIDES, "stage.stride", f"one of {_STRIDES}", self.stride)
        _check_int(self.channels, "stage.channels", 1)
        _check(_is_number(self.expansion) and math.isfinite(self.expansion) and self.expansion > 0,
               "stage.expansion", "a finite number > 0", self.expansion)
        _check(self.block == "ir" or self.expansion == 1, "stage.expansion",
               f"1 for block type {self.block} (only ir expands)", self.expansion)
        _check(_is_number(self.se_ratio) and 0 <= self.se_ratio <= 1, "stage.se_ratio",
               "a number in [0, 1]", self.se_ratio)
        _check(self.block != "id" or self.se_ratio == 0, "stage.se_ratio", "0 for block type id (no SE)",
               self.se_ratio)
        _check(self.act in ACTIVATIONS, "stage.act", f"one of {ACTIVATIONS}", self.act)
        skip = _DEFAULT_SKIP.get(self.block) if self.skip is None else self.skip
        _check(skip in SKIPS, "stage.skip", f"one of {SKIPS}", self.skip)
        _check(self.block != "id" or skip == "none", "stage.skip",
               "none for block type id (the layer is itself a shortcut)", self.skip)
        _check_int(self.groups, "stage.groups", 1)
        _check(self.block == "ir" or self.groups == 1, "stage.groups",
               f"1 for block type {self.block} (only ir has grouped 1x1 convs)", self.groups)
        # The projection's output channels split into the groups; the input and expanded channels
        # are only known when lowering (pynas.ir.lower checks them).
        _check(self.channels % self.groups == 0, "stage.groups",
               f"a divisor of the stage's {self.channels} output channels", self.groups)
        object.__setattr__(self, "skip", skip)
        object.__setattr__(self, "expansion", float(self.expansion))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))

    def __str__(self) -> str:
        tokens = [self.block, f"r{self.repeats}"]
        if self.block != "id":  # an id layer's kernel is always 1 and not written
            tokens.append(f"k{self.kernel}")
        tokens.append(f"s{self.stride}")
        if self.block == "ir":
            tokens.append(f"e{_format_number(self.expansion)}")
        tokens.append(f"c{self.channels}")
        if self.groups != 1:
            tokens.append(f"g{self.groups}")
        if self.se_ratio:
            tokens.append(f"se{_format_number(self.se_ratio)}")
        if self.act != "re":
            tokens.append(f"n{self.act}")
        if self.skip != _DEFAULT_SKIP[self.block]:
            tokens.append({v: k for k, v in _SKIP_FLAGS.items()}[self.skip])
        return "_".join(tokens)


@dataclass(frozen=True)
class Head:
    """1x1 conv + BN + act, global average pool, classifier; `pool_first` is MobileNetV3's
    efficient last stage: global average pool, 1x1 conv with bias (no BN) + act, classifier."""

    channels: int
    act: str = "re"
    pool_first: bool = False

    def __post_init__(self):
        _check_int(self.channels, "head.channels", 1)
        _check(self.act in ACTIVATIONS, "head.act", f"one of {ACTIVATIONS}", self.act)
        _check(isinstance(self.pool_first, bool), "head.pool_first", "a bool", self.pool_first)

    def __str__(self) -> str:
        tokens = ["head", f"c{self.channels}"]
        if self.act != "re":
            tokens.append(f"n{self.act}")
        if self.pool_first:
            tokens.append("poolfirst")
        return "_".join(tokens)


@dataclass(frozen=True)
class Arch:
    resolution: int
    num_classes: int
    stem: Stem
    stages: tuple[Stage, ...]
    head: Head
    se_style: str = "mnas"
    in_channels: int = 3

    def __post_init__(self):
        _check_int(self.resolution, "resolution", 1)
        _check_int(self.num_classes, "num_classes", 1)
        _check_int(self.in_channels, "in_channels", 1)
        _check(isinstance(self.stem, Stem), "stem", "a Stem", self.stem)
        object.__setattr__(self, "stages", tuple(self.stages))
        _check(1 <= len(self.stages) <= MAX_STAGES, "stages", f"1 to {MAX_STAGES} stages", len(self.stages))
        for stage in self.stages:
            _check(isinstance(stage, Stage), "stages", "Stage items", stage)
        _check(isinstance(self.head, Head), "head", "a Head", self.head)
        _check(self.se_style in SE_STYLES, "se_style", f"one of {SE_STYLES}", self.se_style)

    def __str__(self) -> str:
        header = ["net", f"res{self.resolution}", f"cls{self.num_classes}"]
        if self.in_channels != 3:
            header.append(f"in{self.in_channels}")
        if self.se_style == "v3":
            header.append("sev3")
        parts = ["_".join(header), str(self.stem), *map(str, self.stages), str(self.head)]
        return STAGE_SEPARATOR.join(parts)

    def replace(self, **changes) -> "Arch":
        return dataclasses.replace(self, **changes)

    @staticmethod
    def parse(text: str) -> "Arch":
        return parse(text)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scale_width(arch: Arch, multiplier: float, divisor: int = 8) -> Arch:
    """Width multiplier (MobileNet): every stem and stage width becomes make_divisible(c * m);
    the head widens only for multipliers above 1, as in MobileNetV2."""
    _check(_is_number(multiplier) and math.isfinite(multiplier) and multiplier > 0, "multiplier",
           "a finite number > 0", multiplier)
    scale = lambda c: make_divisible(c * multiplier, divisor)  # noqa: E731
    return arch.replace(
        stem=dataclasses.replace(arch.stem, channels=scale(arch.stem.channels)),
        stages=tuple(dataclasses.replace(s, channels=scale(s.channels)) for s in arch.stages),
        head=dataclasses.replace(arch.head, channels=scale(arch.head.channels) if multiplier > 1 else arch.head.channels),
    )


# ---------------------------------------------------------------------------------------------
# Parser

_INT = re.compile(r"0|[1-9][0-9]*")
_NUMBER = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")

# Per part: required keys, optional keys, allowed flags.
_INT_KEYS = {"r", "k", "s", "c", "g", "res", "cls", "in"}  # the others are decimals, except n (a name)
_PART_GRAMMAR = {
    "net": (("res", "cls"), ("in",), ("sev3",)),
    "stem": (("k", "s", "c"), ("n",), ()),
    "ir": (("r", "k", "s", "e", "c"), ("g", "se", "n"), tuple(_SKIP_FLAGS)),
    "ds": (("r", "k", "s", "c"), ("se", "n"), tuple(_SKIP_FLAGS)),
    "cn": (("r", "k", "s", "c"), ("se", "n"), tuple(_SKIP_FLAGS)),
    "id": (("r", "s", "c"), ("n",), ()),
    "head": (("c",), ("n",), ("poolfirst",)),
}
# The largest value each integer key may have (the dataclasses check it, and for k and s the
# allowed values); a value of more than _MAX_INT_DIGITS digits is refused before int() reads it.
_MAX_INT_DIGITS = 18
_KEY_LIMITS = {"r": MAX_REPEATS, "k": max(_CONV_KERNELS), "s": max(_STRIDES), "c": MAX_CHANNELS, "g": MAX_CHANNELS,
               "res": MAX_RESOLUTION, "cls": MAX_CLASSES, "in": MAX_CHANNELS}
_KEY_MEANING = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expansion", "c": "channels",
                "g": "groups", "se": "SE ratio", "n": "activation", "res": "resolution", "cls": "classes",
                "in": "input channels"}


def _split(text: str, separator: str, offset: int):
    """Yield (piece, absolute position) for each piece of text split on separator."""
    position = offset
    for piece in text.split(separator):
        yield piece, position
        position += len(piece) + 1


def _parse_value(key: str, raw: str, token: str, position: int):
    meaning = _KEY_MEANING[key]
    if key == "n":
        if raw not in ACTIVATIONS:
            raise ArchParseError(f"{meaning} must be one of {', '.join(ACTIVATIONS)}, got {raw!r}", token, position)
        return raw
    if key in _INT_KEYS:
        if not _INT.fullmatch(raw):
            raise ArchParseError(f"{meaning} must be a non-negative integer without leading zeros, got {raw!r}",
                                 token, position)
        if len(raw) > _MAX_INT_DIGITS:  # int() itself refuses over 4300 digits; the dataclasses check the rest
            raise ArchParseError(f"{meaning} must be at most {_KEY_LIMITS[key]}, got {raw[:20]}... ({len(raw)} digits)",
                                 token, position)
        return int(raw)
    if not _NUMBER.fullmatch(raw):
        raise ArchParseError(f"{meaning} must be a non-negative decimal number like 6 or 0.25, got {raw!r}",
                             token, position)
    return float(raw)


def _parse_part(part: str, position: int, expected_kind: str | None):
    """Parse one non-empty part into (kind, {key: (value, token, position)}, flags)."""
    tokens = list(_split(part, "_", position))
    kind, kind_position = tokens[0]
    if expected_kind is not None and kind != expected_kind:
        raise ArchParseError(f"expected part {expected_kind!r} here", kind, kind_position)
    if expected_kind is None and kind not in BLOCK_TYPES:
        raise ArchParseError(f"unknown block type, expected one of {', '.join(BLOCK_TYPES)}", kind, kind_position)
    required, optional, flags_allowed = _PART_GRAMMAR[kind]
    keys = sorted(required + optional, key=len, reverse=True)  # longest first: 'se' before 's'
    values, flags, seen = {}, [], {}
    for token, token_position in tokens[1:]:
        if not token:
            raise ArchParseError(f"empty token in {kind!r} part", token, token_position)
        if token in flags_allowed:
            name = "skip flag" if token in _SKIP_FLAGS else token
            if name in seen:
                raise ArchParseError(f"conflicts with {seen[name]!r} earlier in the part" if seen[name] != token
                                     else "duplicate flag", token, token_position)
            seen[name] = token
            flags.append(token)
            continue
        key = next((k for k in keys if token.startswith(k) and len(token) > len(k)), None)
        if key is None:
            expected = ", ".join([f"{k}<{_KEY_MEANING[k]}>" for k in required + optional] + list(flags_allowed))
            raise ArchParseError(f"unknown token for {kind!r}, expected {expected}", token, token_position)
        if key in values:
            raise ArchParseError(f"duplicate {_KEY_MEANING[key]} (key {key!r})", token, token_position)
        values[key] = (_parse_value(key, token[len(key):], token, token_position), token, token_position)
    for key in required:
        if key not in values:
            raise ArchParseError(f"missing required token {key}<{_KEY_MEANING[key]}> in {kind!r} part",
                                 part, position)
    return kind, values, flags


def _build(factory, values: dict, fields: dict, part: str, position: int, **extra):
    """Construct a dataclass; a field-level ValueError is re-raised against the token that set it."""
    kwargs = {field: values[key][0] for key, field in fields.items() if key in values}
    try:
        return factory(**kwargs, **extra)
    except ValueError as error:
        field = str(error).split(":", 1)[0].rsplit(".", 1)[-1]
        key = next((k for k, f in fields.items() if f == field and k in values), None)
        if key is None:
            raise ArchParseError(str(error), part, position) from None
        _, token, token_position = values[key]
        raise ArchParseError(str(error), token, token_position) from None


def refuse_characters(stripped: str, offset: int, pattern: str, allowed: str) -> None:
    """ArchParseError at the first character of `stripped` that `pattern` (a negated class) matches,
    naming the token holding it: the run between the separators around it."""
    bad = re.search(pattern, stripped)
    if bad:
        start = max(stripped.rfind("_", 0, bad.start()), stripped.rfind(":", 0, bad.start())) + 1
        end = min([i for i in (stripped.find("_", bad.start()), stripped.find(":", bad.start())) if i >= 0],
                  default=len(stripped))
        raise ArchParseError(f"character {bad.group()!r} is not allowed ({allowed})", stripped[start:end],
                             offset + start)


def parse(text: str) -> Arch:
    """Parse the one-line form. Raises ArchParseError (a ValueError) on any malformed input."""
    if not isinstance(text, str):
        raise TypeError(f"architecture string: expected str, got {type(text).__name__}")
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if not stripped:
        raise ArchParseError("empty architecture string", text, 0)
    refuse_characters(stripped, offset, "[^a-z0-9_.:]", "lowercase letters, digits, '_', '.', ':'")
    parts = list(_split(stripped, STAGE_SEPARATOR, offset))
    for part, part_pos in parts:
        if not part:
            raise ArchParseError("empty part (two ':' in a row, or one at an end)", part, part_pos)
    if len(parts) < 4:
        raise ArchParseError("expected net, stem, at least one stage and head parts separated by ':'",
                             stripped, offset)
    (net, net_pos), (stem, stem_pos), *stage_parts, (head, head_pos) = parts
    if len(stage_parts) > MAX_STAGES:  # before any stage is parsed: a string may hold millions
        extra, extra_pos = stage_parts[MAX_STAGES]
        raise ArchParseError(f"stages: expected at most {MAX_STAGES} stages, got {len(stage_parts)}", extra, extra_pos)

    _, net_values, net_flags = _parse_part(net, net_pos, "net")

    _, values, _ = _parse_part(stem, stem_pos, "stem")
    stem_obj = _build(Stem, values, {"k": "kernel", "s": "stride", "c": "channels", "n": "act"}, stem, stem_pos)

    stages = []
    stage_fields = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expansion", "c": "channels",
                    "g": "groups", "se": "se_ratio", "n": "act"}
    for part, part_pos in stage_parts:
        kind, values, flags = _parse_part(part, part_pos, None)
        skip = _SKIP_FLAGS[flags[0]] if flags else None
        fixed = {"kernel": _ID_KERNELS[0]} if kind == "id" else {}  # not written for id
        stages.append(_build(Stage, values, stage_fields, part, part_pos, block=kind, skip=skip, **fixed))

    _, values, flags = _parse_part(head, head_pos, "head")
    head_obj = _build(Head, values, {"c": "channels", "n": "act"}, head, head_pos, pool_first="poolfirst" in flags)

    return _build(Arch, net_values, {"res": "resolution", "cls": "num_classes", "in": "in_channels"}, net, net_pos, stem=stem_obj,
                  stages=tuple(stages), head=head_obj, se_style="v3" if "sev3" in net_flags else "mnas")
