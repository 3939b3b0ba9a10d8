"""Pointwise (1x1) conv on the GEMM kernels: every variant this CPU runs against the float64 reference.

Shapes straddle the register tiles and vector widths (N and K below, at, above and between 4, 8, 16,
24, 32; M around every tile's row count MR and the kernels' row chunks), every activation, the
residual (also in place), grouped convs with and without the channel shuffle, row ranges, and bad
arguments. A variant the CPU lacks is skipped, not failed.
"""
import math

import numpy as np
import pytest

from pynas import _core
from pynas.native import reference

VARIANTS = [v for v in _core.kernel_variants() if v["op"] == "gemm"]
NS = [1, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 41, 47, 48, 49, 64, 80, 95, 96, 97, 100, 112, 144, 160, 200]
KS = [1, 2, 3, 8, 16, 17, 64, 144]
MS = [1, 2, 3, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 49]


@pytest.fixture(params=VARIANTS, ids=[v["name"] for v in VARIANTS])
def variant(request):
    if not request.param["runnable"]:
        pytest.skip(f"this CPU cannot run {request.param['isa']}")
    return request.param["name"]


def _hw(m: int) -> tuple[int, int]:
    """An H x W factorisation of m pixels (a few shapes of each size are plenty)."""
    for h in (56, 7, 5, 3, 2):
        if m % h == 0 and m // h > 1:
            return h, m // h
    return 1, m


def _data(m, cin, cout, groups=1, residual=False, seed=0):
    rng = np.random.default_rng(seed)
    h, w = _hw(m)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, cin // groups)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    r = rng.standard_normal((h, w, cout)).astype(np.float32) if residual else None
    return x, wt, b, r


def _expected(x, wt, b, act="none", residual=None, groups=1, shuffle=False):
    """The float64 result, and the scale its fp32 error is relative to (the sum of |terms|)."""
    want = reference.pointwise(x, wt, b, act, groups=groups)
    scale = reference.pointwise(np.abs(x), np.abs(wt), np.abs(b), groups=groups)
    if shuffle:
        want, scale = reference.channel_shuffle(want, groups), reference.channel_shuffle(scale, groups)
    if residual is not None:
        want, scale = want + residual, scale + np.abs(residual)
    return want, scale


def _assert_close(got, want, scale, k):
    assert got.shape == want.shape and got.dtype == np.float32
    tol = 1e-5 * math.sqrt(max(k, 1))  # fp32 sums of k products; FMA contraction differs across ISAs
    err = np.abs(got.astype(np.float64) - want) / np.maximum(scale, 1e-30)
    assert err.max(initial=0.0) <= tol, f"max relative error {err.max():.3g} > {tol:.3g}"


def _check(variant, m, k, n, act="none", residual=False, groups=1, shuffle=False, seed=0):
    x, wt, b, r = _data(m, k * groups, n * groups, groups, residual, seed)
    got = _core.pointwise(x, wt, b, act, r, groups, shuffle, variant)
    _assert_close(got, *_expected(x, wt, b, act, r, groups, shuffle), k)


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("k", KS)
def test_channels(variant, n, k):
    for m in (1, 7, 13, 30):
        _check(variant, m, k, n, seed=100 * n + k)


@pytest.mark.parametrize("m", MS)
def test_rows_around_tiles(variant, m):
    for k, n in ((5, 8), (16, 16), (3, 24), (17, 32), (9, 40), (8, 100), (7, 48), (6, 80), (11, 41)):
        _check(variant, m, k, n, seed=m)


@pytest.mark.parametrize("k", [16, 144])
@pytest.mark.parametrize("n", [24, 144])
def test_large_images(variant, k, n):
    """56 x 56 pixels: many row chunks and tiles; the layers this kernel is tuned for."""
    _check(variant, 3136, k, n, "r6", residual=(n == 24))


@pytest.mark.parametrize("m", [107, 108, 109, 215, 216, 217, 961])
def test_rows_around_chunks(variant, m):
    _check(variant, m, 144, 40)
    _check(variant, m, 16, 17)


def test_rows_that_fit_are_one_chunk():
    # MnasNet-A1's 7 x 7 K = 960 layers: 49 rows of 961 floats (188 KB) under the 192 KB of the x86
    # kernels. Rounding the 51 rows that fit down to the granule first split them 32 + 17, and every
    # weight (1.2 MB for 960 -> 320) was read twice: 202.7 us against 194.7 in one chunk (alone).
    for granule in (8, 12, 16):
        assert _core.gemm_row_chunk(49, 960, 192 * 1024, granule) >= 49
        assert _core.gemm_row_chunk(49, 960, 192 * 1024, granule) % granule == 0
    assert _core.gemm_row_chunk(51, 960, 192 * 1024, 16) >= 51
    assert _core.gemm_row_chunk(52, 960, 192 * 1024, 16) < 52  # 52 rows take 200 KB
    with pytest.raises(ValueError, match="granule: expected at least 1 row, got 0"):
        _core.gemm_row_chunk(49, 960, 192 * 1024, 0)


@pytest.mark.parametrize("rows", [1, 17, 49, 52, 107, 3136])
@pytest.mark.parametrize("k", [16, 960, 4000])
@pytest.mark.parametrize("granule", [8, 12, 16])
def test_row_chunks_are_granules_as_few_and_even_as_fit(rows, k, granule):
    budget = 192 * 1024
    chunk = _core.gemm_row_chunk(rows, k, budget, granule)
    fit = budget // (4 * (k + 1))
    assert chunk % granule == 0
    chunks = math.ceil(rows / chunk)
    if rows <= fit:
        assert chunks == 1
    else:  # as few chunks as granule-multiples under the budget allow, none over it (but one granule)
        most = max(granule, fit - fit % granule)
        assert chunk <= most
        assert chunks == math.ceil(rows / most)


@pytest.mark.parametrize("m", [48, 49, 51, 52])
def test_rows_around_one_chunk(variant, m):
    _check(variant, m, 960, 40)


@pytest.mark.parametrize("act", reference.ACTIVATIONS)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_activations_and_residual(variant, act, residual):
    for m, k, n in ((29, 19, 37), (12, 24, 24), (50, 3, 64), (7, 64, 9)):
        _check(variant, m, k, n, act, residual, seed=len(act))


@pytest.mark.parametrize("groups", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True], ids=["plain", "shuffle"])
@pytest.mark.parametrize("n", [4, 8, 12, 24, 33])
def test_groups(variant, groups, shuffle, n):
    for m, k in ((49, 12), (9, 5)):
        _check(variant, m, k, n, "re", groups=groups, shuffle=shuffle, seed=n * groups)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("shuffle", [False, True], ids=["plain", "shuffle"])
def test_residual_with_groups(variant, groups, shuffle):
    """The residual is added last: after the activation and after the shuffle."""
    for act in ("none", "hs"):
        _check(variant, 3136 if groups == 2 else 30, 24, 24, act, residual=True, groups=groups, shuffle=shuffle)


def test_shuffle_of_one_group_is_the_identity(variant):
    x, wt, b, _ = _data(20, 8, 12)
    np.testing.assert_array_equal(_core.pointwise(x, wt, b, shuffle=True, variant=variant),
                                  _core.pointwise(x, wt, b, variant=variant))


def test_large_values_through_swish(variant):
    """exp must not overflow or lose the tails: pre-activations far outside [-10, 10]."""
    x = np.linspace(-120, 120, 4 * 5 * 16, dtype=np.float32).reshape(4, 5, 16)
    wt = np.eye(16, dtype=np.float32)
    got = _core.pointwise(x, wt, np.zeros(16, np.float32), "sw", variant=variant)
    np.testing.assert_allclose(got, reference.activation(x, "sw"), rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("shuffle", [False, True], ids=["plain", "shuffle"])
def test_packed_layer_rows_out_and_in_place_residual(variant, groups, shuffle):
    """PackedPointwise: run == pointwise; out= is written and returned; residual=out adds in place;
    rows=(begin, end) computes only those pixels (how threads and fused blocks split a layer)."""
    x, wt, b, r = _data(3136 if groups == 1 else 98, 16 * groups, 24 * groups, groups, residual=True, seed=3)
    layer = _core.PackedPointwise(wt, b, groups, "r6", variant, shuffle)
    assert layer.variant == variant and (layer.cin, layer.cout, layer.groups) == x.shape[2:] + wt.shape[:1] + (groups,)
    mr, nr, nr_min = layer.tile
    assert mr >= 1 and nr >= nr_min >= 1
    # The name's tile is MR x NR (the packed panels' width), but AVX-512's spans a panel and a half.
    assert f"_{mr}x{nr if variant != 'gemm_8x48__avx512f' else nr * 3 // 2}__" in variant
    want, scale = _expected(x, wt, b, "r6", r, groups, shuffle and groups > 1)
    _assert_close(layer.run(x, r), want, scale, 16)

    out = np.full_like(r, np.nan)
    assert layer.run(x, r, out=out) is out
    _assert_close(out, want, scale, 16)

    inplace = r.copy()
    assert layer.run(x, inplace, out=inplace) is inplace
    _assert_close(inplace, want, scale, 16)

    m = x.shape[0] * x.shape[1]
    part = np.full_like(r, -7.0)
    for begin, end in ((0, 5), (5, 5), (5, m // 2 + 3), (m // 2 + 3, m)):
        layer.run(x, r, out=part, rows=(begin, end))
    _assert_close(part, want, scale, 16)
    part = np.full_like(r, -7.0)
    layer.run(x, r, out=part, rows=(7, 31))
    flat, wflat = part.reshape(m, -1), want.reshape(m, -1)
    _assert_close(flat[7:31], wflat[7:31], scale.reshape(m, -1)[7:31], 16)
    assert (flat[:7] == -7.0).all() and (flat[31:] == -7.0).all()

    assert layer.timeit([x, x.copy()], 3) > 0.0


def test_default_variant_is_the_selected_one():
    x, wt, b, _ = _data(10, 8, 8)
    assert _core.PackedPointwise(wt, b).variant == _core.selected_kernels()["gemm"]


def test_bad_arguments():
    x = np.zeros((4, 4, 8), np.float32)
    w = np.zeros((6, 8), np.float32)
    b = np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="input: expected a 3-d array"):
        _core.pointwise(np.zeros((4, 8), np.float32), w, b)
    with pytest.raises(ValueError, match="weights: expected a 2-d array"):
        _core.pointwise(x, np.zeros((6, 8, 1, 1), np.float32), b)
    with pytest.raises(ValueError, match=r"weights: expected shape \(Cout, 8\) for Cin = 8 and groups = 1"):
        _core.pointwise(x, np.zeros((6, 7), np.float32), b)
    with pytest.raises(ValueError, match=r"weights: expected shape \(Cout, 4\) for Cin = 8 and groups = 2"):
        _core.pointwise(x, w, b, groups=2)
    with pytest.raises(ValueError, match="bias: expected 6 values"):
        _core.pointwise(x, w, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="bias: expected a 1-d array"):
        _core.pointwise(x, w, np.zeros((6, 1), np.float32))
    with pytest.raises(ValueError, match="act: expected one of"):
        _core.pointwise(x, w, b, "relu")
    with pytest.raises(ValueError, match="groups: expected a positive integer, got 0"):
        _core.pointwise(x, w, b, groups=0)
    with pytest.raises(ValueError, match="groups: 4 does not divide Cout = 6"):
        _core.pointwise(x, np.zeros((6, 2), np.float32), b, groups=4)
    with pytest.raises(ValueError, match=r"weights: expected shape \(Cout, Cin / groups\) for Cin = 8 and groups = 3"):
        _core.pointwise(x, np.zeros((6, 2), np.float32), b, groups=3)
    with pytest.raises(ValueError, match=r"residual: expected shape \(4, 4, 6\), got \(4, 4, 8\)"):
        _core.pointwise(x, w, b, residual=x)
    with pytest.raises(ValueError, match="residual: expected a 3-d array"):
        _core.pointwise(x, w, b, residual=np.zeros((16, 6), np.float32))
    with pytest.raises(ValueError, match="weights: expected a non-empty"):
        _core.pointwise(np.zeros((4, 4, 0), np.float32), np.zeros((6, 0), np.float32), b)
    with pytest.raises(ValueError, match="kernel variant: expected one of"):
        _core.pointwise(x, w, b, variant="gemm_1x1__sse")
    with pytest.raises(ValueError, match="kernel variant: expected one of"):
        _core.pointwise(x, w, b, variant="dwconv_c1__scalar")

    layer = _core.PackedPointwise(w, b)
    with pytest.raises(ValueError, match=r"input: expected 8 channels \(Cin = groups \* 8\), got shape \(4, 4, 7\)"):
        layer.run(np.zeros((4, 4, 7), np.float32))
    with pytest.raises(ValueError, match=r"out: expected a writable C-contiguous float32 array of shape \(4, 4, 6\)"):
        layer.run(x, out=np.zeros((4, 4, 6), np.float64))
    with pytest.raises(ValueError, match="out: expected a writable C-contiguous float32"):
        layer.run(x, out=np.zeros((4, 6, 4), np.float32).transpose(0, 2, 1))
    with pytest.raises(ValueError, match="out: expected a numpy array"):
        layer.run(x, out=[0.0])
    with pytest.raises(ValueError, match="rows: needs out"):
        layer.run(x, rows=(0, 4))
    with pytest.raises(ValueError, match=r"rows: expected \(begin, end\) with 0 <= begin <= end <= H \* W = 16"):
        layer.run(x, out=np.zeros((4, 4, 6), np.float32), rows=(3, 17))
    with pytest.raises(ValueError, match="rows: expected"):
        layer.run(x, out=np.zeros((4, 4, 6), np.float32), rows=(5, 4))
    square = np.zeros((4, 4, 8), np.float32)
    with pytest.raises(ValueError, match="out: must not overlap the input"):
        _core.PackedPointwise(np.zeros((8, 8), np.float32), np.zeros(8, np.float32)).run(square, out=square)
    with pytest.raises(ValueError, match="inputs: expected at least one"):
        layer.timeit([], 1)


def test_reference_agrees_with_torch():
    """The references themselves (grouped 1x1 conv, channel shuffle), against PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 8))
    w = rng.standard_normal((12, 4))
    b = rng.standard_normal(12)
    t = torch.nn.functional.conv2d(torch.tensor(x).permute(2, 0, 1)[None], torch.tensor(w)[:, :, None, None],
                                   torch.tensor(b), groups=2)
    np.testing.assert_allclose(reference.pointwise(x, w, b, groups=2), t[0].permute(1, 2, 0).numpy(), rtol=1e-10)
    shuffled = torch.nn.ChannelShuffle(3)(t)
    np.testing.assert_array_equal(reference.channel_shuffle(t[0].permute(1, 2, 0).numpy(), 3),
                                  shuffled[0].permute(1, 2, 0).numpy())


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_gemm_check_program(native_check, target):
    """tests/native/gemm_check.cc, every variant of PYNAS_GEMM_VARIANTS the target compiles against a
    float64 reference without Python: this machine's (one the CPU lacks is skipped, by the program),
    and aarch64's NEON ones cross-compiled and run under qemu."""
    run = native_check(target, "gemm_check")
    run.assert_variants(["gemm"])
    assert any(line.startswith("OK: ") for line in run.lines), run.output[-4000:]
