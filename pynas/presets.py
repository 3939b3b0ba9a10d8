"""Published architectures as strings, and the lookup that accepts a preset name or an arch string.

Block strings follow timm's definitions of the same networks (its `_gen_mnasnet`,
`_gen_mobilenet_v2` and `_gen_mobilenet_v3`), so parameter counts match the papers.
"""
from __future__ import annotations

import re

from pynas.arch import Arch, parse, scale_width

_HEADER = "net_res224_cls1000"

_PRESET_STRINGS = {
    # MnasNet-A1 (Tan et al. 2019, Fig. 7): 3.9M params, 312M MACs.
    "mnasnet-a1": ":".join([
        _HEADER, "stem_k3_s2_c32",
        "ds_r1_k3_s1_c16_noskip", "ir_r2_k3_s2_e6_c24", "ir_r3_k5_s2_e3_c40_se0.25", "ir_r4_k3_s2_e6_c80",
        "ir_r2_k3_s1_e6_c112_se0.25", "ir_r3_k5_s2_e6_c160_se0.25", "ir_r1_k3_s1_e6_c320",
        "head_c1280"]),
    # MnasNet-B1 (no SE): 4.4M params, 315M MACs.
    "mnasnet-b1": ":".join([
        _HEADER, "stem_k3_s2_c32",
        "ds_r1_k3_s1_c16_noskip", "ir_r3_k3_s2_e3_c24", "ir_r3_k5_s2_e3_c40", "ir_r3_k5_s2_e6_c80",
        "ir_r2_k3_s1_e6_c96", "ir_r4_k5_s2_e6_c192", "ir_r1_k3_s1_e6_c320_noskip",
        "head_c1280"]),
    # MobileNetV2 1.0 (Sandler et al. 2018): 3.5M params, 300M MACs; ReLU6 throughout.
    "mobilenetv2-1.0": ":".join([
        _HEADER, "stem_k3_s2_c32_nr6",
        "ds_r1_k3_s1_c16_nr6", "ir_r2_k3_s2_e6_c24_nr6", "ir_r3_k3_s2_e6_c32_nr6", "ir_r4_k3_s2_e6_c64_nr6",
        "ir_r3_k3_s1_e6_c96_nr6", "ir_r3_k3_s2_e6_c160_nr6", "ir_r1_k3_s1_e6_c320_nr6",
        "head_c1280_nr6"]),
    # MobileNetV3-Large 1.0 (Howard et al. 2019): 5.4M params, 217M MACs. timm's multi-block stages
    # are split into one stage per block type; SE in the V3 style; pool-first head.
    "mobilenetv3-large": ":".join([
        _HEADER + "_sev3", "stem_k3_s2_c16_nhs",
        "ds_r1_k3_s1_c16", "ir_r1_k3_s2_e4_c24", "ir_r1_k3_s1_e3_c24", "ir_r3_k5_s2_e3_c40_se0.25",
        "ir_r1_k3_s2_e6_c80_nhs", "ir_r1_k3_s1_e2.5_c80_nhs", "ir_r2_k3_s1_e2.3_c80_nhs",
        "ir_r2_k3_s1_e6_c112_se0.25_nhs", "ir_r3_k5_s2_e6_c160_se0.25_nhs", "cn_r1_k1_s1_c960_nhs",
        "head_c1280_nhs_poolfirst"]),
}

# Families that take any width multiplier as a suffix, e.g. mobilenetv2-0.75 or mobilenetv2-1.4.
_WIDTH_FAMILIES = {"mobilenetv2": "mobilenetv2-1.0"}
_WIDTH_NAME = re.compile(r"(?P<family>[a-z0-9]+)-(?P<mult>(0|[1-9][0-9]*)(\.[0-9]+)?)")

PRESETS = tuple(_PRESET_STRINGS)


def preset(name: str) -> Arch:
    """A named architecture; mobilenetv2-<multiplier> accepts any width multiplier > 0."""
    if name in _PRESET_STRINGS:
        return parse(_PRESET_STRINGS[name])
    match = _WIDTH_NAME.fullmatch(name)
    if match and match["family"] in _WIDTH_FAMILIES:
        multiplier = float(match["mult"])
        if not 0 < multiplier < 100:
            raise ValueError(f"preset {name!r}: width multiplier must be > 0 and < 100, got {match['mult']}")
        return scale_width(parse(_PRESET_STRINGS[_WIDTH_FAMILIES[match['family']]]), multiplier)
    raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)} "
                     f"(or mobilenetv2-<width multiplier>)")


def resolve(text: str) -> Arch:
    """A preset name or a full architecture string (anything containing ':' is parsed as one)."""
    return parse(text) if ":" in text else preset(text)
