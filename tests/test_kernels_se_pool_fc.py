"""Global average pool, fully connected, squeeze-and-excitation, 3x3 average pool and add kernels:
every variant this CPU runs against the float64 reference, channels straddling the SIMD widths and
channel tiles (4 / 8 / 16 lanes, 32 / 64-channel tiles), H and W from 1 up, odd sizes under stride
2, every activation and both gates, and the staged (row-band) SE calls of a fused block.
"""
import numpy as np
import pytest

from pynas import _core
from pynas.native import reference

CHANNELS = [1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64, 100]
SIZES = [(1, 1), (1, 5), (2, 2), (3, 5), (7, 7), (8, 9), (14, 13)]


def _variants(op):
    vs = [v for v in _core.kernel_variants() if v["op"] == op]
    return pytest.mark.parametrize("variant", [
        pytest.param(v["name"], marks=[] if v["runnable"] else pytest.mark.skip(reason=f"this CPU cannot run {v['isa']}"))
        for v in vs])


def _assert_close(got, want, terms):
    tol = 1e-5 * np.sqrt(terms)
    scale = max(1.0, float(np.sqrt(np.mean(np.square(want)))))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- global average pool -------------------------------------------------------------------------

@_variants("gap")
@pytest.mark.parametrize("c", CHANNELS + [1280])
def test_gap(variant, c):
    rng = np.random.default_rng(c)
    for h, w in SIZES:
        x = _rand(rng, h, w, c)
        _assert_close(_core.global_avg_pool(x, variant), reference.global_avg_pool(x), h * w)


# ---- fully connected ------------------------------------------------------------------------------

@_variants("fc")
@pytest.mark.parametrize("out_c", CHANNELS + [1000])
def test_fc(variant, out_c):
    rng = np.random.default_rng(out_c)
    for i, in_c in enumerate([1, 3, 8, 17, 32, 100, 1280]):
        act = reference.ACTIVATIONS[(i + out_c) % len(reference.ACTIVATIONS)]
        x, w, b = _rand(rng, in_c), _rand(rng, out_c, in_c), _rand(rng, out_c)
        want = reference.fully_connected(x, w, b, act)
        _assert_close(_core.fully_connected(x, w, b, act, variant), want, in_c)
        _assert_close(_core.fully_connected(x, _core.fc_pack(w), b, act, variant), want, in_c)


@_variants("fc")
@pytest.mark.parametrize("act", reference.ACTIVATIONS)
def test_fc_activations(variant, act):
    rng = np.random.default_rng(7)
    x, w, b = _rand(rng, 40), _rand(rng, 33, 40), _rand(rng, 33)
    _assert_close(_core.fully_connected(x, w, b, act, variant), reference.fully_connected(x, w, b, act), 40)


# ---- squeeze-and-excitation -----------------------------------------------------------------------

def _se_case(rng, h, w, c, r):
    return _rand(rng, h, w, c), _rand(rng, r, c) * 0.3, _rand(rng, r), _rand(rng, c, r) * 0.3, _rand(rng, c)


@_variants("se")
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("gate", ["sigmoid", "hsigmoid"])
def test_se_channels_reductions_gates(variant, c, gate):
    rng = np.random.default_rng(c)
    for i, r in enumerate(sorted({1, 4, max(1, c // 4), c + 9})):
        for h, w in SIZES[i::2]:
            act = reference.ACTIVATIONS[(i + c) % len(reference.ACTIVATIONS)]
            x, wr, br, we, be = _se_case(rng, h, w, c, r)
            want = reference.squeeze_excite(x, wr, br, we, be, act, gate)
            _assert_close(_core.squeeze_excite(x, wr, br, we, be, act, gate, variant=variant), want, c + r)


@_variants("se")
@pytest.mark.parametrize("act", reference.ACTIVATIONS)
@pytest.mark.parametrize("gate", ["sigmoid", "hsigmoid"])
def test_se_activations(variant, act, gate):
    rng = np.random.default_rng(5)
    x, wr, br, we, be = _se_case(rng, 9, 7, 40, 10)
    want = reference.squeeze_excite(x, wr, br, we, be, act, gate)
    _assert_close(_core.squeeze_excite(x, wr, br, we, be, act, gate, variant=variant), want, 50)


@_variants("se")
@pytest.mark.parametrize("rows_per_call", [1, 2, 5])
def test_se_stages_in_row_bands(variant, rows_per_call):
    """kPool per band, kExcite once, kScale per band (a fused MBConv's call pattern) == the one-shot kernel."""
    rng = np.random.default_rng(rows_per_call)
    for h, w, c, r in [(14, 14, 112, 28), (7, 7, 960, 240), (5, 3, 17, 4)]:
        x, wr, br, we, be = _se_case(rng, h, w, c, r)
        want = reference.squeeze_excite(x, wr, br, we, be, "sw", "hsigmoid")
        got = _core.squeeze_excite(x, _core.fc_pack(wr), br, _core.fc_pack(we), be, "sw", "hsigmoid",
                                   variant=variant, rows_per_call=rows_per_call)
        _assert_close(got, want, c + r)


@_variants("se")
def test_se_in_place(variant):
    rng = np.random.default_rng(11)
    x, wr, br, we, be = _se_case(rng, 6, 5, 33, 8)
    want = reference.squeeze_excite(x, wr, br, we, be)
    got = _core.squeeze_excite(x, wr, br, we, be, inplace=True, variant=variant)
    assert np.shares_memory(got, x)
    _assert_close(x, want, 41)


# ---- 3x3 average pool and add ---------------------------------------------------------------------

@_variants("avgpool")
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_avgpool(variant, c, stride):
    rng = np.random.default_rng(c)
    for h, w in SIZES:
        x = _rand(rng, h, w, c)
        _assert_close(_core.avg_pool_3x3(x, stride, variant), reference.avg_pool_3x3(x, stride), 9)
    x = _rand(rng, 9, 8, c)
    _assert_close(_core.avg_pool_3x3(x, stride, variant, rows_per_call=2), reference.avg_pool_3x3(x, stride), 9)


@_variants("add")
@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000])
def test_add(variant, n):
    rng = np.random.default_rng(n)
    a, b = _rand(rng, n), _rand(rng, n)
    np.testing.assert_array_equal(_core.add(a, b, variant), a + b)
    a3, b3 = _rand(rng, 3, n, 2), _rand(rng, 3, n, 2)
    np.testing.assert_array_equal(_core.add(a3, b3, variant), a3 + b3)


# ---- arguments and the reference ------------------------------------------------------------------

def test_bad_arguments():
    x = np.zeros((4, 4, 8), np.float32)
    wr, br, we, be = np.zeros((2, 8), np.float32), np.zeros(2, np.float32), np.zeros((8, 2), np.float32), np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="input: expected a 3-d array"):
        _core.global_avg_pool(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="kernel variant: expected one of"):
        _core.global_avg_pool(x, "gap_c8__sse")
    with pytest.raises(ValueError, match=r"weights: expected shape \(3, 8\)"):
        _core.fully_connected(np.zeros(8, np.float32), np.zeros((3, 9), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="input: expected a 1-d array"):
        _core.fully_connected(np.zeros((1, 8), np.float32), np.zeros((3, 8), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="act: expected one of"):
        _core.fully_connected(np.zeros(8, np.float32), np.zeros((3, 8), np.float32), np.zeros(3, np.float32), "tanh")
    with pytest.raises(ValueError, match=r"w_reduce: expected shape \(2, 8\)"):
        _core.squeeze_excite(x, np.zeros((2, 7), np.float32), br, we, be)
    with pytest.raises(ValueError, match=r"w_expand: expected shape \(8, 2\)"):
        _core.squeeze_excite(x, wr, br, np.zeros((2, 8), np.float32), be)
    with pytest.raises(ValueError, match="b_expand: expected 8 values"):
        _core.squeeze_excite(x, wr, br, we, np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="gate: expected sigmoid or hsigmoid"):
        _core.squeeze_excite(x, wr, br, we, be, gate="tanh")
    with pytest.raises(ValueError, match="act: expected one of"):
        _core.squeeze_excite(x, wr, br, we, be, act="relu")
    with pytest.raises(ValueError, match="input: inplace=True needs a writeable array"):
        ro = x.copy()
        ro.flags.writeable = False
        _core.squeeze_excite(ro, wr, br, we, be, inplace=True)
    with pytest.raises(ValueError, match="stride: expected 1 or 2"):
        _core.avg_pool_3x3(x, 3)
    with pytest.raises(ValueError, match="b: expected the shape of a"):
        _core.add(np.zeros(4, np.float32), np.zeros(5, np.float32))


def test_references_agree_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 9, 5))
    xt = torch.tensor(x).permute(2, 0, 1)[None]
    for stride in (1, 2):
        t = torch.nn.functional.avg_pool2d(xt, 3, stride, 1, count_include_pad=False)
        np.testing.assert_allclose(reference.avg_pool_3x3(x, stride), t[0].permute(1, 2, 0).numpy(), rtol=1e-12)
    wr, br, we, be = rng.standard_normal((2, 5)), rng.standard_normal(2), rng.standard_normal((5, 2)), rng.standard_normal(5)
    s = torch.relu(torch.nn.functional.linear(xt.mean((2, 3)), torch.tensor(wr), torch.tensor(br)))
    g = torch.nn.functional.hardsigmoid(torch.nn.functional.linear(s, torch.tensor(we), torch.tensor(be)))
    np.testing.assert_allclose(reference.squeeze_excite(x, wr, br, we, be, "re", "hsigmoid"),
                               (xt * g[:, :, None, None])[0].permute(1, 2, 0).numpy(), rtol=1e-12)
