"""Depthwise conv kernels: every variant this CPU runs against the float64 reference.

Shapes straddle the channel tiles (1, 4, 8, 16 lanes: below, at, above and between them, and several
full tiles plus a tail), H and W from 1 up, odd sizes with stride 2, every kernel size and activation.
Row widths sweep 1..40 so that each variant's interior pixel steps (8 or 4 output pixels at a time,
halved or overlapped for the remainder) and its border pixels meet every split. A variant the CPU
lacks is skipped, not failed. tests/native/dwconv_check.cc checks the same kernels without Python,
with guard pages around every buffer, on this machine and for aarch64 under qemu
(test_dwconv_check_program).
"""
import numpy as np
import pytest

from pynas import _core
from pynas.native import reference

VARIANTS = [v for v in _core.kernel_variants() if v["op"] == "dwconv"]
CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 49, 63, 64, 65, 144]
SIZES = [(1, 1), (1, 7), (2, 2), (3, 5), (5, 3), (7, 7), (8, 9), (13, 13), (16, 17)]


def _tolerance(k: int) -> float:
    return 1e-5 * k  # fp32 sums of k*k products; FMA contraction differs across ISAs


@pytest.fixture(params=VARIANTS, ids=[v["name"] for v in VARIANTS])
def variant(request):
    if not request.param["runnable"]:
        pytest.skip(f"this CPU cannot run {request.param['isa']}")
    return request.param["name"]


def _check(variant, h, w, c, k, stride, act, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w, c)).astype(np.float32)
    wt = rng.standard_normal((k, k, c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    got = _core.dwconv(x, wt, b, stride, act, variant)
    want = reference.dwconv(x, wt, b, stride, act)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=_tolerance(k), atol=_tolerance(k))


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_kernels_strides(variant, c, k, stride):
    for h, w in SIZES:
        _check(variant, h, w, c, k, stride, "none", seed=c * 100 + k)


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_row_widths(variant, k, stride):
    for w in range(1, 41):
        _check(variant, k + 2, w, 17, k, stride, "none", seed=w)
        _check(variant, 1, w, 8, k, stride, "r6", seed=w)


@pytest.mark.parametrize("offset", [4, 8, 12, 36])
def test_unaligned_buffers(variant, offset):
    """numpy only promises 16-byte (often less for views) alignment: kernels must not assume more."""
    rng = np.random.default_rng(offset)
    h, w, c, k = 9, 13, 20, 5

    def at_offset(a):
        raw = np.empty(a.nbytes + 64 + offset, np.uint8)
        start = (-raw.ctypes.data) % 64 + offset
        out = raw[start:start + a.nbytes].view(np.float32).reshape(a.shape)
        out[...] = a
        return out
    x = at_offset(rng.standard_normal((h, w, c)).astype(np.float32))
    wt = at_offset(rng.standard_normal((k, k, c)).astype(np.float32))
    b = at_offset(rng.standard_normal(c).astype(np.float32))
    for stride in (1, 2):
        got = _core.dwconv(x, wt, b, stride, "hs", variant)
        np.testing.assert_allclose(got, reference.dwconv(x, wt, b, stride, "hs"), rtol=_tolerance(k), atol=_tolerance(k))


@pytest.mark.parametrize("act", reference.ACTIVATIONS)
@pytest.mark.parametrize("c", [5, 16, 37])
def test_activations(variant, act, c):
    _check(variant, 9, 11, c, 3, 1, act)
    _check(variant, 10, 7, c, 5, 2, act)


def test_large_values_through_swish(variant):
    """exp must not overflow or lose the tails: inputs far outside [-10, 10]."""
    x = np.linspace(-120, 120, 3 * 3 * 16, dtype=np.float32).reshape(3, 3, 16)
    wt = np.zeros((3, 3, 16), np.float32)
    wt[1, 1] = 1.0
    got = _core.dwconv(x, wt, np.zeros(16, np.float32), 1, "sw", variant)
    np.testing.assert_allclose(got, reference.activation(x, "sw"), rtol=1e-5, atol=1e-30)


def test_time_dwconv_runs_every_variant():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((6, 7, 20)).astype(np.float32) for _ in range(3)]
    wt, b = rng.standard_normal((3, 3, 20)).astype(np.float32), np.zeros(20, np.float32)
    for v in VARIANTS:
        if v["runnable"]:
            seconds = _core.time_dwconv(xs, wt, b, 2, "sw", v["name"], calls=5, warmup_seconds=0)
            assert len(seconds) == 5 and all(t > 0 for t in seconds)
    with pytest.raises(ValueError, match="inputs: expected arrays of one shape"):
        _core.time_dwconv([xs[0], xs[0][:, :3]], wt, b)


def test_bad_arguments():
    x = np.zeros((4, 4, 8), np.float32)
    with pytest.raises(ValueError, match="stride: expected 1 or 2"):
        _core.dwconv(x, np.zeros((3, 3, 8), np.float32), np.zeros(8, np.float32), 3)
    with pytest.raises(ValueError, match=r"weights: expected shape \(k, k, 8\)"):
        _core.dwconv(x, np.zeros((3, 3, 4), np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="input: expected a 3-d array"):
        _core.dwconv(np.zeros((4, 8), np.float32), np.zeros((3, 3, 8), np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="act: expected one of"):
        _core.dwconv(x, np.zeros((3, 3, 8), np.float32), np.zeros(8, np.float32), 1, "relu")
    with pytest.raises(ValueError, match="kernel variant: expected one of"):
        _core.dwconv(x, np.zeros((3, 3, 8), np.float32), np.zeros(8, np.float32), variant="dwconv_c3__sse")


def test_reference_agrees_with_torch():
    """The reference itself, against an independent implementation."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 8, 6))
    w = rng.standard_normal((5, 5, 6))
    b = rng.standard_normal(6)
    t = torch.nn.functional.conv2d(torch.tensor(x).permute(2, 0, 1)[None], torch.tensor(w).permute(2, 0, 1)[:, None],
                                   torch.tensor(b), stride=2, padding=2, groups=6)
    np.testing.assert_allclose(reference.dwconv(x, w, b, 2), t[0].permute(1, 2, 0).numpy(), rtol=1e-10)


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_dwconv_check_program(native_check, target):
    """tests/native/dwconv_check.cc: every variant of PYNAS_DWCONV_VARIANTS the target compiles
    against a float64 reference, buffers against guard pages; aarch64's NEON one under qemu."""
    run = native_check(target, "dwconv_check")
    run.assert_variants(["dwconv"])
    assert "OK" in run.lines, run.output[-4000:]
