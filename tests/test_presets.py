"""pynas.presets: the named architectures, mobilenetv2-<width multiplier>, and resolve().

Parameter counts are checked elsewhere (IR tests); here: names resolve, strings are canonical,
MobileNetV2 widths match torchvision's for any multiplier, and bad names fail with a useful error.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pynas import presets
from pynas.arch import Arch, ArchParseError, parse
from pynas.presets import PRESETS, preset, resolve

# torchvision.models.MobileNetV2's inverted_residual_setting: expansion t, channels c, repeats n, stride s.
TORCHVISION_MOBILENETV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)]


def torchvision_make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision.models._utils._make_divisible, copied as an independent reference."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def torchvision_widths(width_mult: float) -> tuple[int, list[int], int]:
    """(stem, stage outputs, last channel) as torchvision's MobileNetV2(width_mult=...) computes them."""
    stem = torchvision_make_divisible(32 * width_mult)
    stages = [torchvision_make_divisible(c * width_mult) for _, c, _, _ in TORCHVISION_MOBILENETV2]
    last = torchvision_make_divisible(1280 * max(1.0, width_mult))
    return stem, stages, last


def widths(arch: Arch) -> tuple[int, list[int], int]:
    return arch.stem.channels, [s.channels for s in arch.stages], arch.head.channels


def test_preset_names():
    assert set(PRESETS) == {"mnasnet-a1", "mnasnet-b1", "mobilenetv2-1.0", "mobilenetv3-large"}


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_resolves_and_round_trips(name):
    arch = preset(name)
    assert isinstance(arch, Arch)
    assert resolve(name) == arch
    assert parse(str(arch)) == arch
    assert preset(name) == arch  # a fresh, equal object every call


@pytest.mark.parametrize("name", PRESETS)
def test_preset_strings_are_written_in_canonical_form(name):
    """The table in presets.py is spelled canonically (no explicit defaults, canonical order)."""
    text = presets._PRESET_STRINGS[name]
    assert str(parse(text)) == text


def test_mobilenetv2_matches_torchvision_setting():
    """mobilenetv2-1.0 is torchvision's MobileNetV2: same t, c, n, s per stage, ReLU6 everywhere."""
    arch = preset("mobilenetv2-1.0")
    assert [(s.expansion, s.channels, s.repeats, s.stride) for s in arch.stages] == TORCHVISION_MOBILENETV2
    assert [s.block for s in arch.stages] == ["ds"] + ["ir"] * 6
    assert all(s.kernel == 3 and s.se_ratio == 0 and s.skip == "identity" for s in arch.stages)
    assert {arch.stem.act, arch.head.act, *(s.act for s in arch.stages)} == {"r6"}
    assert (arch.stem.kernel, arch.stem.stride, arch.head.pool_first) == (3, 2, False)
    assert (arch.resolution, arch.num_classes, arch.se_style) == (224, 1000, "mnas")


def test_mobilenetv3_large_uses_v3_se_and_pool_first_head():
    arch = preset("mobilenetv3-large")
    assert arch.se_style == "v3" and arch.head.pool_first and arch.head.channels == 1280
    assert arch.stages[-1].block == "cn" and arch.stages[-1].channels == 960
    assert sorted({s.expansion for s in arch.stages if s.block == "ir"}) == [2.3, 2.5, 3.0, 4.0, 6.0]


@pytest.mark.parametrize("multiplier, stem, stages, head", [
    # literal values of torchvision.models.mobilenet_v2(width_mult=m)
    ("0.35", 16, [8, 8, 16, 24, 32, 56, 112], 1280),
    ("0.5", 16, [8, 16, 16, 32, 48, 80, 160], 1280),
    ("0.75", 24, [16, 24, 24, 48, 72, 120, 240], 1280),
    ("1.0", 32, [16, 24, 32, 64, 96, 160, 320], 1280),
    ("1.3", 40, [24, 32, 40, 80, 128, 208, 416], 1664),
    ("1.4", 48, [24, 32, 48, 88, 136, 224, 448], 1792),
])
def test_mobilenetv2_width_multipliers(multiplier, stem, stages, head):
    """stem make_divisible(32 m), stages make_divisible(c m), head 1280 unless m > 1."""
    arch = preset(f"mobilenetv2-{multiplier}")
    assert widths(arch) == (stem, stages, head)
    assert widths(arch) == torchvision_widths(float(multiplier))
    base = preset("mobilenetv2-1.0")
    shape = lambda a: [(s.block, s.repeats, s.kernel, s.stride, s.expansion, s.act) for s in a.stages]  # noqa: E731
    assert shape(arch) == shape(base)  # only widths change


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.decimals(min_value="0.01", max_value="4", places=3))
def test_mobilenetv2_any_multiplier_matches_torchvision(multiplier):
    """For any decimal multiplier the widths are torchvision's, and the result round-trips."""
    name = f"mobilenetv2-{multiplier.normalize():f}"
    arch = preset(name)
    assert widths(arch) == torchvision_widths(float(multiplier.normalize()))
    assert parse(str(arch)) == arch


@pytest.mark.parametrize("spelling", ["mobilenetv2-1", "mobilenetv2-1.00", "mobilenetv2-1.000"])
def test_mobilenetv2_other_spellings_of_one(spelling):
    """mobilenetv2-1.0 is a table entry; other spellings of 1 go through scale_width and give the
    same architecture (all MobileNetV2 widths are already multiples of 8)."""
    assert preset(spelling) == preset("mobilenetv2-1.0")


@pytest.mark.parametrize("name", [
    "resnet50", "", "mnasnet", "mnasnet-a2", "mnasnet-0.5", "mobilenetv3-large-0.75", "MobileNetV2-1.0",
    "mobilenetv2", "mobilenetv2-", "mobilenetv2-x", "mobilenetv2-01", "mobilenetv2-.5", "mobilenetv2-1.",
    "mobilenetv2--1", "mobilenetv2-1e-1", " mobilenetv2-1.0", "mobilenetv2-1.0 ", "mobilenetv2_1.0",
])
def test_unknown_names_raise_listing_presets(name):
    with pytest.raises(ValueError) as info:
        preset(name)
    message = str(info.value)
    assert message.startswith(f"unknown preset {name!r}")
    for known in PRESETS:
        assert known in message
    assert "mobilenetv2-<width multiplier>" in message


@pytest.mark.parametrize("name", ["mobilenetv2-0", "mobilenetv2-0.0", "mobilenetv2-0.000"])
def test_zero_width_multiplier_raises(name):
    with pytest.raises(ValueError, match=rf"preset '{name}': width multiplier must be > 0"):
        preset(name)


@pytest.mark.parametrize("digits", ["9" * 400, "1" + "0" * 400])
def test_infinite_width_multiplier_raises_value_error_regression(digits):
    """Regression: a multiplier that overflows float() to inf passed the > 0 check and scale_width
    raised OverflowError (int(inf)); now it is a ValueError about the width multiplier."""
    with pytest.raises(ValueError, match=r"^preset 'mobilenetv2-[0-9]+': width multiplier must be"):
        preset("mobilenetv2-" + digits)


def test_resolve_parses_strings_containing_colon():
    text = str(preset("mnasnet-b1"))
    assert resolve(text) == preset("mnasnet-b1")
    assert resolve("  " + text + "\n") == preset("mnasnet-b1")
    custom = "net_res160_cls10:stem_k3_s2_c16:ds_r1_k3_s1_c8:head_c64"
    assert str(resolve(custom)) == custom


def test_resolve_names_and_errors():
    """Without ':' it is a preset name; with ':' a malformed string is an ArchParseError, not an
    'unknown preset' error."""
    assert resolve("mobilenetv2-0.5") == preset("mobilenetv2-0.5")
    with pytest.raises(ValueError, match="^unknown preset 'net_res224_cls1000'"):
        resolve("net_res224_cls1000")
    with pytest.raises(ArchParseError) as info:
        resolve("mnasnet:stem_k3_s2_c32:ds_r1_k3_s1_c16:head_c1280")
    assert (info.value.token, info.value.position) == ("mnasnet", 0)
