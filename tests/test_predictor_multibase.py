"""Multi-base few-shot calibration (pynas.predictor.multibase): never a negative cell or a network
<= 0 from valid data, whatever the data; an exact positive combination of bases recovered; the
right base preferred; the calibrated table equal to the fit; errors naming the field.
Bases are made-up tables of the FBNet space (CIFAR-100 setting), so no data file is needed; the
HW-NAS-Bench table is used where it is installed."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pynas.predictor import multibase as mb
from pynas.predictor.metrics import accuracy
from pynas.space import FBNetSpace

# Small grid for the property test (the default one is ~2x larger; same code paths).
QUICK = mb.Grid(op=(0.0, 0.1), pos=(0.0, 0.03), noise=(1e-4, 1e-2))


@pytest.fixture(scope="module")
def space():
    return FBNetSpace("cifar100")


@pytest.fixture(scope="module")
def cells(space):
    return mb.space_cells(space)


def made_up(cells, seed: int, name: str, zeros: float = 0.0) -> mb.Base:
    """A device base: log-normal cell prices, a share `zeros` of them 0 (as fpga's skips are)."""
    rng = np.random.default_rng(seed)
    prices = np.exp(rng.normal(-1.0, 1.0, len(cells)))
    prices[rng.random(len(cells)) < zeros] = 0.0
    return mb.Base(name, prices, False, cells.layout.space)


@pytest.fixture(scope="module")
def bases(cells):
    return [made_up(cells, 1, "a"), made_up(cells, 2, "b", zeros=0.1), made_up(cells, 3, "c")]


def test_cells_match_compiled_tables(space, cells, bases):
    """Cells.reads/sums price token rows as the compiled table does; compiled() round-trips."""
    tokens = space.sample_tokens(300, seed=0)
    table = cells.compiled(bases[0].prices, overhead_ms=0.25)
    assert np.allclose(cells.prices_of(table), bases[0].prices, rtol=1e-6)
    got = cells.sums(cells.reads(tokens), bases[0].prices) + 0.25
    assert np.allclose(got, table.predict_batch(tokens), rtol=1e-5)
    # Arch objects work like token rows.
    archs = [space.decode(t) for t in tokens[:5]]
    assert np.allclose(cells.sums(cells.reads(archs), bases[0].prices), got[:5] - 0.25)
    # The cheapest network of the space: per slot the cheapest choice (FBNet's slots are independent).
    prices = bases[1].prices
    slot_min = sum(prices[cells.first_id[b][0]].min() for b in range(len(cells.layout.blocks)))
    assert mb.min_network(cells, prices, 0.5) == pytest.approx(slot_min + prices[cells.head_id[0]]
                                                               + prices[cells.stem_id] + 0.5)
    assert set(cells.op) >= {"stem", "head", "identity", "mbconv_k3_e1_g2", "mbconv_k5_e6", "convblock_k1_e1"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(2, 20), kind=st.sampled_from(["unrelated", "scaled", "wild"]))
def test_valid_data_never_fails_nor_prices_below_zero(space, cells, bases, seed, k, kind):
    """Any k >= 2 valid networks with any positive latencies: the fit succeeds, every cell of the
    calibrated table is >= 0 (the table's own check), every network of the space > 0 (exact)."""
    rng = np.random.default_rng(seed)
    tokens = space.sample_tokens(k, seed=seed)
    if kind == "unrelated":  # latencies that have nothing to do with the bases
        y = np.exp(rng.normal(0, 2, k))
    elif kind == "scaled":  # a base, noisy
        y = cells.sums(cells.reads(tokens), bases[1].prices) * np.exp(rng.normal(0, 0.3, k))
    else:  # a decreasing function of a base: the bases rank the networks backwards
        y = 1e3 / (1 + cells.sums(cells.reads(tokens), bases[0].prices)) + rng.random(k) * 1e-3
    analytic = mb.analytic_bases(cells) if seed % 2 else []
    f = mb.fit(cells, bases + analytic, tokens, y, grid=QUICK)
    assert np.all(np.isfinite(f.prices)) and f.prices.min() >= 0 and f.overhead_ms >= 0
    assert mb.min_network(cells, f.prices, f.overhead_ms) > 0
    table = f.table()  # CompiledTable checks every reachable cell is finite and >= 0
    held = space.sample_tokens(200, seed=seed + 1)
    assert np.all(table.predict_batch(held) > 0)


def test_recovers_a_positive_combination_of_bases(space, cells, bases):
    """Target = 0.6 a + 1.5 c + 0.3 ms per network: 10 networks suffice to rank and price the
    others (the default grid, the analytic bases in)."""
    target = 0.6 * bases[0].prices + 1.5 * bases[2].prices
    tokens = space.sample_tokens(10, seed=3)
    y = cells.sums(cells.reads(tokens), target) + 0.3
    f = mb.fit(cells, bases + mb.analytic_bases(cells), tokens, y)
    held = space.sample_tokens(1000, seed=4)
    want = cells.sums(cells.reads(held), target) + 0.3
    acc = accuracy(f.predict(held), want)
    assert acc["spearman"] > 0.99 and acc["rmspe"] < 1.0, acc
    assert f.base_weight["a"] + f.base_weight["c"] > 0.9, f.base_weight
    assert np.allclose(f.table().predict_batch(held), f.predict(held), rtol=1e-5)


def test_prefers_the_right_base(space, cells, bases):
    """Target = 2 x base b, 5% noise: b ranks first by similarity, is the prior base of the
    heaviest model and carries most of the weight."""
    rng = np.random.default_rng(0)
    tokens = space.sample_tokens(8, seed=5)
    y = 2.0 * cells.sums(cells.reads(tokens), bases[1].prices) * np.exp(rng.normal(0, 0.05, 8))
    f = mb.fit(cells, bases + mb.analytic_bases(cells), tokens, y)
    assert f.similarity[0]["base"] == "b"
    assert f.models[0]["prior_base"] == "b"
    assert max(f.base_weight, key=f.base_weight.get) == "b" and f.base_weight["b"] > 0.8, f.base_weight
    assert sum(m["weight"] for m in f.models) == pytest.approx(1.0)
    one = mb.fit(cells, bases, tokens, y, select="evidence")
    assert len(one.models) == 1 and one.models[0]["prior_base"] == "b"
    assert mb.fit(cells, bases, tokens, y, select="loo").models[0]["prior_base"] == "b"


def test_errors_name_the_field(space, cells, bases):
    tokens = space.sample_tokens(5, seed=6)
    y = np.ones(5)

    def fails(field_name, *args, **kwargs):
        with pytest.raises(mb.MultiBaseError) as info:
            mb.fit(*args, **kwargs)
        assert info.value.field == field_name, str(info.value)
        return str(info.value)

    assert "at least 2" in fails("measured", cells, bases, tokens[:1], y[:1])
    assert "one latency per network (5)" in fails("measured", cells, bases, tokens, np.ones(4))
    assert "> 0" in fails("measured[2]", cells, bases, tokens, np.array([1, 1, 0.0, 1, 1]))
    assert "nan" in fails("measured[1]", cells, bases, tokens, np.array([1, np.nan, 1, 1, 1]))
    fails("measured[0]", cells, bases, tokens, np.array([np.inf, 1, 1, 1, 1]))
    bad = tokens.copy()
    bad[3, 7] = 9
    assert "0..8" in fails("tokens[3][7] (layer7)", cells, bases, bad, y)
    fails("tokens", cells, bases, tokens[:, :5], y)
    fails("tokens", cells, bases, tokens.astype(float), y)
    imagenet = mb.space_cells(FBNetSpace("imagenet"))
    other = mb.Base("other", np.ones(len(imagenet)), False, imagenet.layout.space)
    assert "fbnet_cifar100" in fails("bases[other]", cells, bases + [other], tokens, y)
    fails("bases[short]", cells, [mb.Base("short", np.ones(3))], tokens, y)
    fails("bases[neg]", cells, [mb.Base("neg", -np.ones(len(cells)))], tokens, y)
    fails("bases", cells, [], tokens, y)
    fails("bases", cells, [bases[0], bases[0]], tokens, y)
    fails("bases", cells, mb.analytic_bases(cells), tokens, y)
    fails("select", cells, bases, tokens, y, select="best")
    fails("levels", cells, bases, tokens, y, levels=("op",))
    fails("levels", cells, bases, tokens, y, levels=("total", "stage"))
    for field_name, bad_grid in (("grid.noise", {"noise": (0.0,)}), ("grid.op", {"op": (-0.1,)}),
                                 ("grid.mix", {"mix": ()}), ("grid.analytic_prior", {"analytic_prior": 1.0}),
                                 ("grid.keep", {"keep": 0})):
        with pytest.raises(mb.MultiBaseError) as info:
            mb.Grid(**bad_grid)
        assert info.value.field == field_name
    # A table of another space is refused when made into a base.
    with pytest.raises(mb.MultiBaseError) as info:
        mb.table_base("x", cells, imagenet.compiled(np.ones(len(imagenet))))
    assert info.value.field == "bases"


def test_fpga_base_is_data_not_a_model(space):
    """HW-NAS-Bench's fpga table (skips, stem and head at 0) serves as a base or target although
    it is no latency model: its cells are priced as HW-NAS-Bench sums them."""
    from pynas.predictor import hwnasbench

    tokens = space.sample_tokens(20, seed=7)
    fpga = hwnasbench.compile_device_table("fpga", "cifar100", latency_model=False)
    want = [hwnasbench.table_latency(space.decode(t), "fpga") for t in tokens]
    assert np.allclose(fpga.predict_batch(tokens), want, rtol=1e-5)
    base = mb.table_base("fpga", mb.space_cells(space), fpga)
    assert base.prices.min() == 0.0 and not base.analytic


def test_stateful_layout_mnasnet():
    """MnasNet's table has states (a block's input width) and repeats (rest cells read repeats - 1
    times): Cells reads token rows as the C++ table does, and min_network is a lower bound that
    the cheapest of many sampled networks approaches."""
    from pynas.space import MnasNetSpace

    space = MnasNetSpace()
    cells = mb.space_cells(space)
    prices = np.exp(np.random.default_rng(0).normal(0, 1, len(cells)))
    table = cells.compiled(prices, overhead_ms=0.1)
    tokens = space.sample_tokens(2000, seed=0)
    got = cells.sums(cells.reads(tokens), prices) + 0.1
    assert np.allclose(got, table.predict_batch(tokens), rtol=1e-5)
    low = mb.min_network(cells, prices, 0.1)
    assert 0 < low <= got.min() + 1e-9
    assert {"stem", "head", "mbconv_k5_e6_se", "dsconv_k3_e1_poolproj"} <= set(cells.op)
