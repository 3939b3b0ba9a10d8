"""NAS-Bench-201 latency decomposition and few-shot calibration (`pynas.predictor.cell_decomposition`):
exact recovery of known prices, strict errors, the calibrated bundle's round trip, the bench's
functions on a subset."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pynas.predictor import cell_decomposition as cd
from pynas.predictor.metrics import kendall, nnls
from pynas.space import nb201

ROOT = Path(__file__).resolve().parent.parent
TOKENS = nb201.benchmark().tokens.astype(np.int64)


def synthetic_prices(seed: int) -> tuple[float, np.ndarray]:
    """A base and canonical prices (each edge's cheapest op 0, none the cheapest), all > 0 else."""
    rng = np.random.default_rng(seed)
    prices = rng.uniform(0.1, 5.0, size=(6, 5))
    prices[:, 0] = 0.0
    return float(rng.uniform(0.5, 2.0)), prices


def additive_ms(tokens, base, prices):
    return base + prices[np.arange(6), tokens].sum(axis=1)


def test_fit_recovers_known_prices_exactly():
    base, prices = synthetic_prices(0)
    ms = additive_ms(TOKENS, base, prices)
    model = cd.fit(TOKENS, ms, "additive", "synthetic")
    joined = model.regimes["connected"]
    np.testing.assert_allclose(joined.prices, prices, atol=1e-6)
    assert joined.base == pytest.approx(base, rel=1e-7)
    np.testing.assert_allclose(model.predict(TOKENS), ms, rtol=1e-7)
    apart = model.regimes["disconnected"]  # edge0to3 is none in every disconnected cell: no other price there
    assert apart.networks == int((~cd.connected(TOKENS)).sum()) == 341
    assert np.isnan(apart.prices[3, 1:]).all() and not np.isnan(np.delete(apart.prices, 3, axis=0)).any()
    report = cd.additivity(TOKENS, ms)
    for regime in ("connected", "disconnected", "all"):
        assert report[regime]["rel_rms"] < 1e-10 and report[regime]["additive"]["rmspe"] < 1e-5


def test_fit_on_a_subset_and_per_regime_prices():
    """Different prices per regime, a random subset of 400 cells: the connected prices come back."""
    base, prices = synthetic_prices(1)
    base2, prices2 = synthetic_prices(2)
    joined = cd.connected(TOKENS)
    ms = np.where(joined, additive_ms(TOKENS, base, prices), additive_ms(TOKENS, base2, prices2) * 0.01)
    rows = np.random.default_rng(3).choice(len(TOKENS), 400, replace=False)
    rows = np.r_[rows, np.flatnonzero(~joined)[:60]]  # enough disconnected cells to fit their regime
    model = cd.fit(TOKENS[rows], ms[rows])
    np.testing.assert_allclose(model.regimes["connected"].prices, prices, atol=1e-6)
    np.testing.assert_allclose(model.predict(TOKENS[rows]), ms[rows], rtol=1e-6)


def test_pairwise_variant_explains_interactions_the_additive_cannot():
    base, prices = synthetic_prices(4)
    ms = additive_ms(TOKENS, base, prices)
    both = (TOKENS[:, 0] == 3) & (TOKENS[:, 5] == 3)  # two 3x3 convs fuse: a saving
    ms = ms - 1.5 * both
    report = cd.additivity(TOKENS, ms)["connected"]
    assert report["rel_rms"] > 0.01
    assert report["pairwise"]["rmspe"] < 0.2 * report["additive"]["rmspe"]
    assert report["pairwise"]["kendall"] > report["additive"]["kendall"]


def test_hwnasbench_simulators_are_additive_and_phones_are_not():
    for device in ("eyeriss", "fpga"):
        model = cd.fit_device(device)
        assert cd.accuracy(model.predict(TOKENS), nb201.benchmark().latency(device))["rmspe"] < 1e-6
    pixel3 = cd.additivity(TOKENS, nb201.benchmark().latency("pixel3"))["connected"]
    assert pixel3["rel_rms"] > 0.1 and pixel3["pairwise"]["rmspe"] < pixel3["additive"]["rmspe"]


@pytest.mark.parametrize("tokens, ms, match", [
    (np.zeros((3, 5), dtype=int), [1.0, 1.0, 1.0], "tokens: expected an N x 6 integer array"),
    (np.full((2, 6), 5), [1.0, 1.0], r"tokens: row 0, edge0to1: expected 0..4, got 5"),
    (np.ones((2, 6), dtype=float), [1.0, 1.0], "tokens: expected an N x 6 integer array"),
    (np.ones((2, 6), dtype=int), [1.0], r"ms: expected one latency per cell \(2\)"),
    (np.ones((2, 6), dtype=int), [1.0, -2.0], r"ms\[1\]: expected a latency in ms > 0, got -2.0"),
    (np.ones((2, 6), dtype=int), [1.0, np.nan], r"ms\[1\]: expected a latency in ms > 0"),
    (np.zeros((0, 6), dtype=int), [], "tokens: expected at least one cell"),
])
def test_fit_bad_input(tokens, ms, match):
    with pytest.raises(ValueError, match=match):
        cd.fit(tokens, ms)


def test_bad_variant_method_and_bases():
    with pytest.raises(ValueError, match="variant: expected one of additive, pairwise, got 'cubic'"):
        cd.fit(TOKENS[:10], np.ones(10), "cubic")
    with pytest.raises(ValueError, match="method: expected one of auto, bases\\+prices, bases, scale, scratch"):
        cd.calibrate([], TOKENS[:3], np.ones(3), "magic")
    with pytest.raises(ValueError, match="bases: expected at least one base"):
        cd.calibrate([], TOKENS[:3], np.ones(3), "bases")
    with pytest.raises(ValueError, match="tokens: expected distinct cells"):
        cd.calibrate([], TOKENS[[0, 0, 1]], np.ones(3), "scratch")
    with pytest.raises(ValueError, match=r"measured\[2\]: expected a latency in ms > 0"):
        cd.calibrate([], TOKENS[:3], [1.0, 2.0, 0.0], "scratch")
    with pytest.raises(ValueError, match="bases: short: expected 15625 latencies"):
        cd.calibrate([cd.Basis("short", np.ones(10))], TOKENS[:3], np.ones(3), "bases")
    with pytest.raises(ValueError, match="exclude: expected one of pixel3, raspi4, eyeriss, fpga, got 'edgegpu'"):
        cd.hwnasbench_bases("edgegpu")
    with pytest.raises(ValueError, match="source: expected additive, pairwise or measured"):
        cd.hwnasbench_bases(None, "xgboost")
    model = cd.fit(TOKENS[cd.connected(TOKENS)][:200], np.ones(200))
    with pytest.raises(ValueError, match="a disconnected cell, but decomposition '' was fitted on no disconnected"):
        model.predict(TOKENS[~cd.connected(TOKENS)][:1])


def test_decomposition_json_round_trip_and_strict_reading():
    model = cd.fit_device("fpga", "pairwise")
    data = json.loads(json.dumps(model.to_json()))  # NaN prices are written as null
    back = cd.Decomposition.from_json(data)
    np.testing.assert_array_equal(back.predict(TOKENS), model.predict(TOKENS))
    bad = json.loads(json.dumps(data))
    bad["regimes"]["connected"]["prices_ms"][0][1] = "x"
    with pytest.raises(ValueError, match=r"decomposition.regimes.connected.prices_ms: expected finite numbers"):
        cd.Decomposition.from_json(bad)
    bad = json.loads(json.dumps(data))
    bad["regimes"]["connected"]["base_ms"] = None
    with pytest.raises(ValueError, match=r"decomposition.regimes.connected.base_ms: expected finite numbers"):
        cd.Decomposition.from_json(bad)
    with pytest.raises(ValueError, match="decomposition: expected format 'pynas.cell-decomposition' version 1"):
        cd.Decomposition.from_json({**data, "version": 2})
    with pytest.raises(ValueError, match="decomposition.variant: expected one of additive, pairwise"):
        cd.Decomposition.from_json({**data, "variant": "cubic"})


def combination_target(bases, weights, overhead):
    return sum(w * b.ms for w, b in zip(weights, bases)) + overhead


def test_calibration_recovers_a_combination_of_bases():
    bases = cd.hwnasbench_bases("pixel3", "additive")  # raspi4, eyeriss, fpga
    target = combination_target(bases, [0.0, 2.0, 0.5], 0.3)
    pool = np.flatnonzero(cd.connected(TOKENS))
    chosen = np.random.default_rng(0).choice(pool, 10, replace=False)
    cal = cd.calibrate(bases, TOKENS[chosen], target[chosen], "bases")
    assert cd.accuracy(cal.ms, target)["rmspe"] < 1.0
    # A combination of decompositions is one: its prices price every cell as the lookup does.
    np.testing.assert_allclose(cal.decomposition.predict(TOKENS), cal.ms, rtol=1e-9)
    np.testing.assert_allclose(cal.predict(TOKENS[:5]), cal.ms[nb201.NB201Space().index_of(TOKENS[:5])])


def test_bases_plus_prices_learns_what_the_bases_miss():
    """Target: an additive device the bases do not span (eyeriss's prices with conv3x3 3x dearer);
    20 cells: the corrections find it, the combination alone cannot."""
    eyeriss = cd.fit_device("eyeriss")
    regime = eyeriss.regimes["connected"]
    prices = regime.prices.copy()
    prices[:, 3] *= 3
    target = additive_ms(TOKENS, regime.base, np.nan_to_num(prices))
    bases = cd.hwnasbench_bases("eyeriss", "additive")
    chosen = np.random.default_rng(1).choice(np.flatnonzero(cd.connected(TOKENS)), 20, replace=False)
    alone = cd.calibrate(bases, TOKENS[chosen], target[chosen], "bases")
    corrected = cd.calibrate(bases, TOKENS[chosen], target[chosen], "bases+prices")
    auto = cd.calibrate(bases, TOKENS[chosen], target[chosen], "auto")
    joined = cd.connected(TOKENS)
    err = {name: cd.accuracy(c.ms[joined], target[joined])["rmspe"] for name, c in
           (("alone", alone), ("corrected", corrected), ("auto", auto))}
    assert err["corrected"] < 5.0 and err["alone"] > 15.0 and err["auto"] < 1.0
    assert (corrected.ms > 0).all() and corrected.info["correction_ridge"] is not None
    np.testing.assert_allclose(corrected.decomposition.predict(TOKENS), corrected.ms, rtol=1e-8)
    assert auto.method == "auto" and auto.info["auto"]["picked"] in ("bases+prices", "scratch")


@pytest.mark.parametrize("k", [1, 2])
def test_calibration_with_one_or_two_cells(k):
    bases = cd.hwnasbench_bases("raspi4", "measured")
    y = nb201.benchmark().latency("raspi4")
    chosen = np.flatnonzero(cd.connected(TOKENS))[:k]
    for method in ("auto", "bases", "scale", "scratch"):
        cal = cd.calibrate(bases, TOKENS[chosen], y[chosen], method)
        assert cal.k == k and np.isfinite(cal.ms).all()
    scale = cd.calibrate(bases, TOKENS[chosen], y[chosen], "scale")
    assert sum(w > 0 for w in scale.weights) == 1 and scale.info["nearest"] in ("pixel3", "eyeriss", "fpga")


def test_calibrated_bundle_round_trip(tmp_path):
    from pynas import predictor
    from pynas.predictor import bundle
    from pynas.predictor.manifest import BundleError

    bases = cd.hwnasbench_bases("fpga", "pairwise")
    y = nb201.benchmark().latency("fpga")
    chosen = np.random.default_rng(2).choice(np.flatnonzero(cd.connected(TOKENS)), 12, replace=False)
    cal = cd.calibrate(bases, TOKENS[chosen], y[chosen], "bases+prices")
    measured = [{"arch": str(nb201.NB201Space().decode(t)), "ms": float(v)} for t, v in zip(TOKENS[chosen], y[chosen])]
    folder = cd.save_calibrated(tmp_path / "board", cal, device={"name": "board"}, backend="tflite",
                                measured=measured)
    loaded = bundle.load(folder)
    manifest = loaded.manifest
    assert manifest.kind == "lookup" and manifest.units == "ms" and manifest.device == {"name": "board"}
    assert manifest.backend == "tflite" and "few-shot calibration (bases+prices)" in manifest.source
    assert manifest.space["name"] == "nb201" and set(manifest.files) == {"lookup.npz", "report.json"}
    assert all(len(h) == 64 for h in manifest.files.values())  # sha256 of each file
    cell = measured[0]["arch"]
    assert loaded.predict(cell) == pytest.approx(float(cal.predict(TOKENS[chosen[:1]])[0]))
    model = predictor.latency_model(str(folder), "nb201")
    np.testing.assert_allclose(model.predict_batch(TOKENS[:50]), cal.ms[nb201.NB201Space().index_of(TOKENS[:50])])
    report, decomposition = cd.read_calibration(folder)
    assert report["method"] == "bases+prices" and report["weights"] == pytest.approx(cal.weights)
    assert report["bases"] == ["pixel3", "raspi4", "eyeriss"]
    np.testing.assert_allclose(decomposition.predict(TOKENS), cal.ms, rtol=1e-9)
    assert json.loads((folder / "report.json").read_text())["measured"] == measured
    with pytest.raises(BundleError, match="a bundle is already there"):
        cd.save_calibrated(folder, cal, device={"name": "board"})
    (folder / "report.json").write_text("{}\n")  # tampered: its hash no longer matches the manifest
    with pytest.raises(BundleError, match="report.json"):
        bundle.load(folder)


def test_save_refuses_a_non_positive_latency(tmp_path):
    cal = cd.CellCalibration("scratch", [], [], 0.0, 3, np.ones(nb201.SIZE))
    cal.ms[7] = -0.5
    with pytest.raises(ValueError, match=r"calibration: cell .* \(index 7\): calibrated latency -0.5 ms, expected > 0"):
        cd.save_calibrated(tmp_path / "x", cal, device={"name": "x"})
    with pytest.raises(ValueError, match="device: expected a dict with the new device's name"):
        cd.save_calibrated(tmp_path / "x", cal, device={})
    assert not (tmp_path / "x").exists()


def test_kendall_and_nnls():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 300).astype(float)
    b = a + rng.integers(0, 3, 300)
    assert kendall(a, a) == pytest.approx(1.0) and kendall(a, -a) == pytest.approx(-1.0)
    assert np.isnan(kendall(np.ones(5), np.arange(5.0)))
    stats = pytest.importorskip("scipy.stats")
    assert kendall(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    c = rng.normal(size=1000)
    d = c + rng.normal(size=1000)
    assert kendall(c, d) == pytest.approx(stats.kendalltau(c, d).statistic, abs=1e-12)
    m = rng.normal(size=(30, 8))
    x_true = np.r_[np.abs(rng.normal(size=4)), np.zeros(4)]
    np.testing.assert_allclose(nnls(m, m @ x_true), x_true, atol=1e-10)
    x = nnls(m, rng.normal(size=30))
    assert (x >= 0).all()
    with pytest.raises(ValueError, match="a, b: expected an m x n matrix and m values"):
        nnls(m, np.ones(3))


def load_bench():
    spec = importlib.util.spec_from_file_location("nb201_decomposition_bench", ROOT / "bench" / "nb201_decomposition.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_functions_on_a_subset():
    bench = load_bench()
    rows = np.random.default_rng(5).choice(len(TOKENS), 3000, replace=False)
    data = nb201.benchmark()
    latencies = {d: data.latency(d)[rows] for d in ("eyeriss", "pixel3", "raspi4")}
    table = bench.additivity_rows(("eyeriss", "pixel3"), TOKENS[rows], latencies)
    assert {(r["device"], r["regime"]) for r in table} >= {("eyeriss", "connected"), ("pixel3", "all")}
    eyeriss = next(r for r in table if r["device"] == "eyeriss" and r["regime"] == "connected")
    assert eyeriss["rel_rms"] < 1e-9 and eyeriss["additive_within10"] == 100.0
    lines = bench.format_additivity(table)
    assert len(lines) == len(table) + 1 and lines[1].startswith("eyeriss")
    assert 0.5 < bench.shared_residual(TOKENS[rows], latencies) <= 1.0
    assert bench.format_prices(cd.fit_device("eyeriss"))[-1].startswith("  base 1.6795")
    pool = np.flatnonzero(cd.connected(TOKENS))[:300]
    methods = (("scale", "scale", "measured"), ("scratch", "scratch", None), ("auto", "auto", "measured"),
               ("b+p", "bases+prices", "measured"))
    few = bench.fewshot_rows(("eyeriss",), (3,), draws=1, seed=0, methods=methods, pool=pool)
    assert [(r["target"], r["method"], r["k"]) for r in few] == [("eyeriss", m[0], 3) for m in methods]
    assert all(0 <= r["within10"] <= 100 and -1 <= r["kendall"] <= 1 for r in few)
    by = {r["method"]: r for r in few}
    assert by["auto"]["rmspe"] in (by["scratch"]["rmspe"], by["b+p"]["rmspe"])  # auto picks one of the two
    assert len(bench.format_fewshot(few)) == 5 and len(bench.best_per_k(few)) == 1
    args = bench.parse_args(["--ks", "1,20", "--devices", "fpga", "--sections", "prices"])
    assert args.ks == (1, 20) and args.devices == ("fpga",) and args.sections == ("prices",)
    for argv in (["--ks", "0"], ["--ks", "a"], ["--devices", "edgegpu"], ["--sections", "x"], ["--draws", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)


def test_evaluate_on_a_device_measured_on_a_sample_of_the_space():
    """A machine times a sample of the space: NaN elsewhere; draws and scores are over the measured."""
    base, prices = synthetic_prices(3)
    full = additive_ms(TOKENS, base, prices)
    measured = np.full(len(TOKENS), np.nan)
    some = np.random.default_rng(1).choice(len(TOKENS), 400, replace=False)
    measured[some] = full[some]
    methods = {"scratch": ("scratch", []), "truth": ("scale", [cd.Basis("truth", 2 * full)])}
    result = cd.evaluate(measured, None, ks=(20,), draws=2, seed=0, methods=methods)
    assert result["truth"][20]["rmspe"] < 1e-9 and result["truth"][20]["rmspe_all"] < 1e-9  # NaNs left out
    assert np.isfinite(result["scratch"][20]["rmspe"]) and np.isfinite(result["scratch"][20]["rmspe_all"])
    with pytest.raises(ValueError, match="target_ms: expected 15625 values"):
        cd.evaluate(full[:10], None, ks=(2,), methods=methods)
    with pytest.raises(ValueError, match="pool: expected measured networks only"):
        cd.evaluate(measured, None, ks=(2,), methods=methods, pool=np.setdiff1d(np.arange(30), some)[:5])
    with pytest.raises(ValueError, match="expected positive latencies"):
        cd.evaluate(np.where(np.isfinite(measured), -1.0, np.nan), None, ks=(2,), methods=methods)


def test_bench_machine_section_reads_a_cell_bundles_measurements():
    bench = load_bench()
    folder = ROOT / "predictors" / "intel-xeon-avx512-native-nb201"
    name, ms, heldout = bench.machine_target(folder)
    assert name == "intel-xeon-avx512-native-nb201" and np.isfinite(ms).sum() >= 800
    assert heldout["n"] > 0 and 0 < heldout["rmspe"] < 100
    rows = bench.machine_rows([folder], (3,), draws=1, seed=0, methods=(("scratch", "scratch", None),))
    assert [(r["method"], r["k"]) for r in rows] == [("scratch", 3), ("its bundle (80% fit, 20% held out)", 0)]
    assert len(bench.format_fewshot(rows)) == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--sections", "machine", "--machine", str(ROOT / "predictors" / "pixel3")])
