"""Regular conv kernels: every variant this CPU runs against the float64 reference.

Output channels straddle the SIMD widths and tiles (4 / 8 / 16 lanes, 16-channel packed blocks, the
32-channel AVX-512 tile), input channels 1 / 3 / 8 / 17 / 32, H and W from 1 up with odd sizes under
stride 2, every kernel size, activation and the residual add, and row-band calls as a fused block
makes them. A variant the CPU lacks is skipped, not failed.
"""
import numpy as np
import pytest

from pynas import _core
from pynas.native import reference

VARIANTS = [v for v in _core.kernel_variants() if v["op"] == "conv"]
COUTS = [1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 100]
CINS = [1, 3, 8, 17, 32]
SIZES = [(1, 1), (1, 4), (2, 2), (3, 5), (5, 3), (7, 7), (6, 9), (13, 12)]


@pytest.fixture(params=VARIANTS, ids=[v["name"] for v in VARIANTS])
def variant(request):
    if not request.param["runnable"]:
        pytest.skip(f"this CPU cannot run {request.param['isa']}")
    return request.param["name"]


def _assert_close(got, want, taps):
    tol = 1e-5 * np.sqrt(taps)  # fp32 sums of `taps` products, in whatever order / contraction the ISA uses
    scale = max(1.0, float(np.sqrt(np.mean(np.square(want)))))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _check(variant, h, w, cin, cout, k, stride, act="none", residual=False, rows_per_call=0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, k, k, cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    want = reference.conv2d(x, wt, b, stride, act=act)
    res = rng.standard_normal(want.shape).astype(np.float32) if residual else None
    if residual:
        want = want + res
    got = _core.conv2d(x, wt, b, stride, act, res, variant, rows_per_call)
    _assert_close(got, want, k * k * cin)


@pytest.mark.parametrize("cout", COUTS)
@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_kernels_strides_sizes(variant, cout, k, stride):
    for i, cin in enumerate(CINS):
        for j, (h, w) in enumerate(SIZES):
            if cout > 40 and (i + j) % 2:  # the wide outputs on half the shapes: same code paths, less time
                continue
            _check(variant, h, w, cin, cout, k, stride, seed=cout * 1000 + k * 100 + cin + j)


@pytest.mark.parametrize("act", reference.ACTIVATIONS)
@pytest.mark.parametrize("residual", [False, True])
def test_activations_and_residual(variant, act, residual):
    _check(variant, 9, 11, 5, 37, 3, 1, act, residual)
    _check(variant, 10, 7, 16, 16, 5, 2, act, residual)
    _check(variant, 6, 6, 3, 8, 1, 1, act, residual)


@pytest.mark.parametrize("rows_per_call", [1, 2, 3])
def test_row_bands_match_the_whole(variant, rows_per_call):
    """Output row bands, as a fused block or a thread calls them: the ring of padded rows restarts per call."""
    for k, stride in [(3, 1), (5, 2), (7, 1), (1, 2)]:
        _check(variant, 11, 10, 6, 20, k, stride, "re", True, rows_per_call, seed=k)


def test_stem_and_search_space_shapes(variant):
    _check(variant, 224, 224, 3, 32, 3, 2, "hs")   # the stem: 224x224x3 -> 112x112x32
    _check(variant, 28, 28, 40, 80, 5, 2, "re")    # a cn op, 5x5 stride 2
    _check(variant, 7, 7, 160, 96, 3, 1, "sw")    # late-stage widths at 7 px


@pytest.mark.parametrize("cout", [8, 16, 17, 32, 40])
def test_stem_shape_at_every_pixel_block(variant, cout):
    # 3 x 3, stride 2 on 3 channels has its own tiles on AVX-512 (the pixel stride and row length
    # fixed at compile time): output widths 1-25 reach every pixel block size (1-12) and splits.
    for w in range(1, 50, 2):
        _check(variant, 5, w, 3, cout, 3, 2, "r6", residual=(w % 4 == 1), rows_per_call=w % 3, seed=w)


def test_packed_weights_and_in_place_residual(variant):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 8, 12)).astype(np.float32)
    w = rng.standard_normal((20, 3, 3, 12)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    packed = _core.conv_pack(w)
    assert packed.shape == (2, 3, 3, 12, 16)
    res = rng.standard_normal((9, 8, 20)).astype(np.float32)
    want = reference.conv2d(x, w, b, 1, act="r6") + res
    out = _core.conv2d(x, packed, b, 1, "r6", res, variant, out=res)  # residual added in place
    assert out is res or np.shares_memory(out, res)
    _assert_close(res, want, 9 * 12)


def test_large_values_through_swish(variant):
    x = np.linspace(-120, 120, 4 * 4 * 16, dtype=np.float32).reshape(4, 4, 16)
    w = np.eye(16, dtype=np.float32)[:, None, None, :]
    got = _core.conv2d(x, w, np.zeros(16, np.float32), 1, "sw", variant=variant)
    np.testing.assert_allclose(got, reference.activation(x, "sw"), rtol=1e-5, atol=1e-30)


def test_bad_arguments():
    x = np.zeros((6, 6, 4), np.float32)
    w = np.zeros((8, 3, 3, 4), np.float32)
    b = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="stride: expected 1 or 2"):
        _core.conv2d(x, w, b, 3)
    with pytest.raises(ValueError, match="input: expected a 3-d array"):
        _core.conv2d(np.zeros((6, 4), np.float32), w, b)
    with pytest.raises(ValueError, match="weights: expected 4 input channels"):
        _core.conv2d(x, np.zeros((8, 3, 3, 5), np.float32), b)
    with pytest.raises(ValueError, match="weights: expected 8 output channels"):
        _core.conv2d(x, np.zeros((7, 3, 3, 4), np.float32), b)
    with pytest.raises(ValueError, match=r"weights: expected shape \(out_c, k, k, in_c\) with k in 1, 3, 5, 7"):
        _core.conv2d(x, np.zeros((8, 2, 2, 4), np.float32), b)
    with pytest.raises(ValueError, match=r"weights: expected shape \(out_c, k, k, in_c\)"):
        _core.conv2d(x, np.zeros((8, 3, 5, 4), np.float32), b)
    with pytest.raises(ValueError, match="weights: expected conv_pack output"):
        _core.conv2d(x, np.zeros((2, 3, 3, 4, 16), np.float32), b)
    with pytest.raises(ValueError, match="weights: expected \\(out_c, k, k, in_c\\) or conv_pack"):
        _core.conv2d(x, np.zeros((8, 9), np.float32), b)
    with pytest.raises(ValueError, match="bias: expected a 1-d array"):
        _core.conv2d(x, w, np.zeros((8, 1), np.float32))
    with pytest.raises(ValueError, match=r"residual: expected the output shape \(3, 3, 8\)"):
        _core.conv2d(x, w, b, 2, residual=np.zeros((6, 6, 8), np.float32))
    with pytest.raises(ValueError, match="act: expected one of"):
        _core.conv2d(x, w, b, act="relu")
    with pytest.raises(ValueError, match="kernel variant: expected one of"):
        _core.conv2d(x, w, b, variant="conv_c8__sse")
    with pytest.raises(ValueError, match=r"out: expected a writeable C-contiguous float32 array of shape \(6, 6, 8\)"):
        _core.conv2d(x, w, b, out=np.zeros((6, 6, 8), np.float64))
    with pytest.raises(ValueError, match=r"out: expected shape \(6, 6, 8\)"):
        _core.conv2d(x, w, b, out=np.zeros((6, 6, 9), np.float32))
    with pytest.raises(ValueError, match="out: must not overlap input"):
        same = np.zeros((6, 6, 8), np.float32)
        _core.conv2d(same, np.zeros((8, 3, 3, 8), np.float32), b, out=same)
    with pytest.raises(ValueError, match="input: expected a non-empty"):
        _core.conv2d(np.zeros((0, 6, 4), np.float32), w, b)


def test_reference_agrees_with_torch():
    """The reference itself, against an independent implementation."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 8, 6))
    w = rng.standard_normal((5, 5, 5, 6))
    b = rng.standard_normal(5)
    t = torch.nn.functional.conv2d(torch.tensor(x).permute(2, 0, 1)[None], torch.tensor(w).permute(0, 3, 1, 2),
                                   torch.tensor(b), stride=2, padding=2)
    np.testing.assert_allclose(reference.conv2d(x, w, b, 2), t[0].permute(1, 2, 0).numpy(), rtol=1e-10)
