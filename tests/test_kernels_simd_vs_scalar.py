"""tests/native/simd_vs_scalar.cc: every SIMD variant of the conv, gap, avgpool, add, se and fc
families (their X-macro lists) against the family's scalar variant on many shapes, without Python:
this machine's variants (AVX2, AVX-512F where the CPU has it) and aarch64's NEON ones, cross-compiled
and run under qemu. Skipped where the cross compiler or qemu is missing, or on an aarch64 host (where
the host run covers NEON).
"""
import pytest

FAMILIES = ["conv", "gap", "avgpool", "add", "se", "fc"]


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_simd_kernels_match_scalar(native_check, target):
    run = native_check(target, "simd_vs_scalar")
    run.assert_variants(FAMILIES, with_scalar=False)  # the scalar ones are the reference
    assert run.lines and any(line.startswith("simd_vs_scalar: ") and line.endswith(" 0 failed") for line in run.lines)
