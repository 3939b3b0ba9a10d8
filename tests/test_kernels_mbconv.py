"""Fused row-banded blocks (cpp/kernels/mbconv.*, `Network.block`) against a float64 reference built
from the single-op references: inverted residual (expand) and depthwise-separable (no expand), with
and without SE and residual, on band sizes that split the rows evenly, unevenly and not at all,
heights from 1 up, odd sizes with stride 2, every kernel size, 1-3 threads, every ISA the CPU runs."""
import itertools

import numpy as np
import pytest

from pynas import _core
from pynas.native import reference as ref

ACTS = ["none", "re", "r6", "hs", "sw"]


def _block_case(rng, h, w, cin, mid, cout, k, stride, expand, se, residual):
    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    if not expand:
        mid = cin
    p = {"x": rand(h, w, cin), "dw_w": rand(k, k, mid, scale=1 / k), "dw_b": rand(mid, scale=0.1),
         "project_w": rand(cout, mid, scale=mid ** -0.5), "project_b": rand(cout, scale=0.1)}
    if expand:
        p.update(expand_w=rand(mid, cin, scale=cin ** -0.5), expand_b=rand(mid, scale=0.1))
    if se:
        r = max(1, mid // 4)
        p.update(se_w_reduce=rand(r, mid, scale=mid ** -0.5), se_b_reduce=rand(r, scale=0.1),
                 se_w_expand=rand(mid, r, scale=r ** -0.5), se_b_expand=rand(mid, scale=0.1))
    if residual:  # an identity shortcut: the block input is added to the projection
        assert stride == 1 and cin == cout
        p["residual"] = True
    return p


def _reference(p, stride, act, se_gate="sigmoid"):
    f64 = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x = f64["x"]
    if "expand_w" in f64:
        x = ref.pointwise(x, f64["expand_w"], f64["expand_b"], act)
    x = ref.dwconv(x, f64["dw_w"], f64["dw_b"], stride, act)
    if "se_w_reduce" in f64:
        x = ref.squeeze_excite(x, f64["se_w_reduce"], f64["se_b_reduce"], f64["se_w_expand"], f64["se_b_expand"],
                               "re", se_gate)
    y = ref.pointwise(x, f64["project_w"], f64["project_b"], "none")
    return y + f64["x"] if "residual" in p else y


def _run(p, stride, act, threads=1, band_rows=0, se_gate="sigmoid"):
    net = _core.Network(threads)
    x = net.input(*p["x"].shape)
    kwargs = {k: p[k] for k in ("expand_w", "expand_b", "se_w_reduce", "se_b_reduce", "se_w_expand", "se_b_expand")
              if k in p}
    y = net.block(x, p["project_w"].shape[0], dw_w=p["dw_w"], dw_b=p["dw_b"], stride=stride, dw_act=act,
                  expand_act=act, se_gate=se_gate, project_w=p["project_w"], project_b=p["project_b"],
                  residual=x if "residual" in p else -1, band_rows=band_rows, **kwargs)
    net.finalize(y)
    return net.run(p["x"]).astype(np.float64)


def _check(p, stride, act, **kw):
    want = _reference(p, stride, act, kw.get("se_gate", "sigmoid"))
    got = _run(p, stride, act, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


# Heights around the band sizes (1, 2, 3, uneven splits), odd sizes with stride 2, every kernel.
SHAPES = [(1, 1), (1, 5), (2, 3), (3, 7), (5, 5), (7, 9), (9, 4), (13, 11), (16, 16)]


@pytest.mark.parametrize("h,w", SHAPES)
@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (5, 1), (5, 2), (7, 1), (7, 2)])
@pytest.mark.parametrize("band_rows", [1, 2, 3, 0])
def test_inverted_residual_bands(h, w, k, stride, band_rows):
    rng = np.random.default_rng(h * 1000 + w * 10 + k + stride + band_rows)
    _check(_block_case(rng, h, w, 8, 24, 16, k, stride, True, False, False), stride, "r6", band_rows=band_rows)


@pytest.mark.parametrize("expand,se", list(itertools.product([True, False], [True, False])))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("band_rows", [1, 4, 0])
def test_block_kinds_threads(expand, se, stride, threads, band_rows):
    rng = np.random.default_rng(17 * threads + band_rows + 2 * stride + 4 * se + 8 * expand)
    # Channels below, at, above and between SIMD widths (4, 8, 16) and the GEMM tiles (24, 32).
    for cin, mid, cout in [(3, 5, 7), (16, 48, 24), (24, 72, 40), (20, 120, 33)]:
        _check(_block_case(rng, 11, 10, cin, mid, cout, 3, stride, expand, se, False), stride, "sw",
               threads=threads, band_rows=band_rows)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("gate", ["sigmoid", "hsigmoid"])
def test_activations_and_gates(act, gate):
    rng = np.random.default_rng(len(act) + len(gate))
    _check(_block_case(rng, 14, 14, 16, 40, 16, 5, 1, True, True, True), 1, act, se_gate=gate, band_rows=3)


@pytest.mark.parametrize("expand,se", list(itertools.product([True, False], [True, False])))
@pytest.mark.parametrize("threads", [1, 2])
def test_identity_residual(expand, se, threads):
    rng = np.random.default_rng(5 + threads)
    _check(_block_case(rng, 12, 12, 16, 64, 16, 3, 1, expand, se, True), 1, "re", threads=threads, band_rows=5)


def test_describe_names_the_block_kernels():
    rng = np.random.default_rng(0)
    p = _block_case(rng, 8, 8, 8, 16, 8, 3, 1, True, True, False)
    net = _core.Network(1)
    x = net.input(8, 8, 8)
    y = net.block(x, 8, expand_w=p["expand_w"], expand_b=p["expand_b"], dw_w=p["dw_w"], dw_b=p["dw_b"], stride=1,
                  se_w_reduce=p["se_w_reduce"], se_b_reduce=p["se_b_reduce"], se_w_expand=p["se_w_expand"],
                  se_b_expand=p["se_b_expand"], project_w=p["project_w"], project_b=p["project_b"], band_rows=2)
    net.finalize(y)
    (step,) = net.describe()
    chosen = _core.selected_kernels()
    assert step == f"mbconv[{chosen['gemm']}+{chosen['dwconv']}+{chosen['se']}+{chosen['gemm']}] band2 8x8x8"


@pytest.mark.parametrize("field,kwargs,message", [
    ("expand_b", {"expand_b": None}, "give both"),
    ("dw_w", {"dw_w": np.zeros((3, 4, 16), np.float32)}, "dw_w"),
    ("stride", {"stride": 3}, "stride"),
    ("project_w", {"project_w": np.zeros((8, 15), np.float32)}, "project_w"),
    ("se", {"se_b_reduce": None}, "all four"),
    ("se_gate", {"se_gate": "tanh"}, "se_gate"),
])
def test_bad_arguments_name_the_field(field, kwargs, message):
    rng = np.random.default_rng(1)
    p = _block_case(rng, 6, 6, 8, 16, 8, 3, 1, True, True, False)
    args = dict(expand_w=p["expand_w"], expand_b=p["expand_b"], dw_w=p["dw_w"], dw_b=p["dw_b"], stride=1,
                se_w_reduce=p["se_w_reduce"], se_b_reduce=p["se_b_reduce"], se_w_expand=p["se_w_expand"],
                se_b_expand=p["se_b_expand"], project_w=p["project_w"], project_b=p["project_b"])
    args.update(kwargs)
    net = _core.Network(1)
    x = net.input(6, 6, 8)
    with pytest.raises(ValueError, match=message):
        net.block(x, 8, **args)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512", "neon"])
def test_every_isa(isa, monkeypatch):
    """PYNAS_ISA (read whenever a kernel is selected, i.e. when a step is built) forces every kernel
    of the block to one ISA: each the CPU runs gives the reference's results."""
    if isa not in _core.supported_isas():
        pytest.skip(f"this CPU has no {isa}")
    monkeypatch.setenv("PYNAS_ISA", isa)
    test_block_kinds_threads(True, True, 2, 2, 0)
    test_block_kinds_threads(False, False, 1, 1, 1)
    test_inverted_residual_bands(7, 9, 5, 2, 2)
    test_identity_residual(True, False, 2)
