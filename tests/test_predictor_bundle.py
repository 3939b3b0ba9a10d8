"""Predictor training and bundles (pynas.predictor.train, .bundle, .manifest), on a small store of
real native measurements (MnasNet space at 32x32, so it runs in seconds)."""
import json

import numpy as np
import pytest

from pynas.predictor import bundle
from pynas.predictor.features import FEATURE_NAMES, feature_vector
from pynas.predictor.manifest import BundleError
from pynas.predictor.metrics import accuracy, spearman
from pynas.predictor.train import load_dataset, train
from pynas.profiling.backends import Backend
from pynas.profiling.session import plan, run
from pynas.space import get_space
from pynas.store import Store

FAST = {"budget_seconds": 0.02, "target_rel_ci": 0.2, "min_runs": 5, "warmup_runs": 1, "warmup_seconds": 0}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "m.sqlite"
    space = get_space("mnasnet", resolution=32)
    full = plan(space, networks=16, seed=0)
    # A sample of the segments, every head (a bundle prices only kinds it has measured) and the networks.
    items = full.items[:240] + [i for i in full.items[240:] if i.kind in ("network", "head")]
    with Store(path) as store:
        # Networks with 20 ratio pairs at least: 5 (FAST's min_runs) left a 0.3-1.5 ms network's
        # ratio to the reference network varying by tens of percent on a loaded machine.
        run(type(full)(full.space, full.resolution, full.counts, items), Backend("native"), store, harness=FAST,
            network_harness={"min_runs": 20, "budget_seconds": 0.2}, drift_tolerance=1.0)
    return path


def test_metrics():
    m = accuracy([1.0, 2.15, 2.8], [1.0, 2.0, 3.0])
    assert m["n"] == 3 and m["within5"] == pytest.approx(100 / 3) and m["within10"] == pytest.approx(100)
    assert m["rmspe"] == pytest.approx(100 * np.sqrt((0 + 0.075 ** 2 + (0.2 / 3) ** 2) / 3))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    with pytest.raises(ValueError, match="measured: expected latencies > 0"):
        accuracy([1.0], [0.0])


def test_feature_vector_names_and_errors():
    from pynas.ir import lower
    from pynas.ir.segments import segments
    from pynas.presets import preset

    seg = segments(lower(preset("mnasnet-a1")))[3]
    v = feature_vector(seg.features(), {"l1d": 32768, "l2": 1 << 20, "l3": None})
    assert v.shape == (len(FEATURE_NAMES),) and np.isfinite(v).all()
    assert v[FEATURE_NAMES.index("ws_over_l3")] == 0  # unknown L3: the same 0 for every row
    with pytest.raises(ValueError, match="features: missing"):
        feature_vector({"kind": "mbconv"}, {})
    with pytest.raises(ValueError, match="features.kind: expected one of"):
        feature_vector(dict(seg.features(), kind="lstm"), {})


def test_train_save_load_predict(small_store, tmp_path):
    with Store(small_store) as store:
        data = load_dataset(store, backend="native")
    assert len(data.segments) >= 200 and len(data.networks) == 16
    space = get_space("mnasnet", resolution=32)
    trained = train(data, params={"rounds": 150}, space=space)  # the term bounded for the table it serves
    report = trained.report
    assert report["heldout_segments"]["spearman"] > 0.9  # tiny, noisy data: ranks still right
    assert report["heldout_networks"]["n"] == 16  # cross-validated: every network held out once
    assert report["heldout_networks_segment_holdout_model"]["n"] == 16
    folder = bundle.save(tmp_path / "tiny", trained, data, space=space, source=str(small_store))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["features"] == list(FEATURE_NAMES) and set(manifest["files"]) == {"model.ubj", "report.json",
                                                                                      "table.npz"}
    assert manifest["backend"] == "native" and manifest["space"] == {
        "name": "mnasnet", "resolution": 32, "options": {"resolution": 32, "num_classes": 1000},
        "layout": "mnasnet_res32_cls1000"}
    p = bundle.load(folder)
    archs = space.sample(50, seed=4)
    by_arch = p.predict_batch(archs)
    by_tokens = p.predict_batch(space.sample_tokens(50, seed=4))
    np.testing.assert_allclose(by_tokens, by_arch, rtol=1e-4)  # compiled table == XGBoost path
    assert p.predict(archs[0]) == pytest.approx(by_arch[0], rel=1e-6)
    # The vectorised XGBoost path (no table, no Python per row) agrees too, on every layer count.
    tokens = space.sample_tokens(2000, seed=5)
    np.testing.assert_allclose(p.batched(space).predict_batch(tokens), p.predict_batch(tokens), rtol=1e-4)
    with pytest.raises(ValueError, match=r"tokens: row 1 decision 3 \(b1.skip\): expected a value in 0..2, got 5"):
        p.batched(space).predict_batch(np.array([[0] * 42, [0, 0, 0, 5] + [0] * 38]))
    rows = p.explain(archs[0])
    assert rows[-1]["segment"] == "overhead" and sum(r["ms"] for r in rows) == pytest.approx(by_arch[0], rel=1e-6)
    measured = [data.networks[a] for a in data.networks]
    predicted = p.predict_batch(list(data.networks))
    assert accuracy(predicted, measured)["spearman"] > 0.8


def test_bad_bundles_say_expected_vs_got(small_store, tmp_path):
    with Store(small_store) as store:
        data = load_dataset(store, backend="native")
    folder = bundle.save(tmp_path / "b", train(data, params={"rounds": 20}, holdout=0), data)
    manifest = json.loads((folder / "manifest.json").read_text())
    with pytest.raises(BundleError, match="token arrays need a compiled table"):
        bundle.load(folder).predict_batch(np.zeros((1, 42), np.int64))
    (folder / "model.ubj").write_bytes((folder / "model.ubj").read_bytes() + b"x")
    with pytest.raises(BundleError, match="sha256: expected .* got .*the file changed"):
        bundle.load(folder)
    for field, value, message in [("schema_version", 99, "schema_version: expected 1, got 99"),
                                  ("features", ["cin"], "features: expected this pynas's"),
                                  ("kind", "lstm", "kind: expected one of xgboost, table, got 'lstm'"),
                                  ("kind", "table", "kind 'table': expected a table.npz")]:
        broken = tmp_path / f"broken-{field}-{len(str(value))}"
        broken.mkdir()
        (broken / "manifest.json").write_text(json.dumps(dict(manifest, **{field: value}, files={})))
        with pytest.raises(BundleError, match=message):
            bundle.load(broken)
    with pytest.raises(BundleError, match="'no-such-bundle': no bundle of that name"):
        bundle.load("no-such-bundle")
    with pytest.raises(ValueError, match="no measurements for backend='litert'"):
        with Store(small_store) as store:
            load_dataset(store, backend="litert")


def test_cli_calibrate_predict_predictors(small_store, tmp_path, capsys, monkeypatch):
    from pynas.cli import main

    out = tmp_path / "bundles" / "tiny"
    assert main(["calibrate", str(small_store), "-o", str(out), "--space", "mnasnet", "--resolution", "32"]) == 0
    text = capsys.readouterr().out
    assert "heldout_segments" in text and "network = " in text and (out / "table.npz").exists()
    arch = "net_res32_cls1000:stem_k3_s2_c32:ir_r1_k3_s1_e3_c16:head_c1280"
    assert main(["predict", arch, "--predictor", str(out), "--breakdown"]) == 0
    text = capsys.readouterr().out
    assert "overhead" in text and text.strip().endswith("1 thread(s))")
    monkeypatch.setenv("PYNAS_PREDICTORS", str(out.parent))
    assert main(["predictors"]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["predict", arch, "--predictor", "tiny"]) == 0
    assert main(["calibrate", str(tmp_path / "missing.sqlite"), "-o", str(tmp_path / "x")]) == 2
    assert "expected a measurement store, got nothing there" in capsys.readouterr().err
    before = (out / "manifest.json").read_bytes()
    assert main(["calibrate", str(small_store), "-o", str(out)]) == 2  # an existing bundle is kept
    assert "a bundle is already there" in capsys.readouterr().err and (out / "manifest.json").read_bytes() == before


def test_fewshot_calibration_of_an_xgboost_bundle(small_store, tmp_path):
    """A device 1.4x slower on MBConv blocks and 1.1x elsewhere: the calibrated bundle's XGBoost
    path and its recompiled table agree, and both follow the new device."""
    from pynas.ir import lower
    from pynas.ir.segments import segments
    from pynas.predictor import fewshot

    with Store(small_store) as store:
        data = load_dataset(store, backend="native")
    space = get_space("mnasnet", resolution=32)
    base = bundle.load(bundle.save(tmp_path / "base", train(data, params={"rounds": 60}, holdout=0), data, space=space))

    def new_device(archs):
        out = []
        for arch in archs:
            rows = {r["segment"]: r["ms"] for r in base.explain(arch)}
            out.append(sum(rows[s.id] * (1.4 if s.kind == "mbconv" else 1.1) for s in segments(lower(arch))) + 0.05)
        return np.array(out)

    train_archs, test = space.sample(15, seed=8), space.sample(60, seed=9)
    folder = fewshot.calibrated_bundle(base, train_archs, new_device(train_archs), tmp_path / "new", name="new")
    p = bundle.load(folder)
    assert p.manifest.source.startswith("few-shot calibration of base on 15 networks")
    by_arch = p.predict_batch(test)
    np.testing.assert_allclose(p.predict_batch(space.sample_tokens(60, seed=9)), by_arch, rtol=1e-4)
    assert accuracy(by_arch, new_device(test))["rmspe"] < 3 < accuracy(base.predict_batch(test), new_device(test))["rmspe"]


def test_a_failed_overwrite_keeps_the_old_bundle(small_store, tmp_path, monkeypatch):
    with Store(small_store) as store:
        data = load_dataset(store, backend="native")
    trained = train(data, params={"rounds": 150}, holdout=0)
    folder = bundle.save(tmp_path / "b", trained, data)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(*args):
        raise PricingError("price('x'): no latency", "x")

    from pynas.predictor import writers
    from pynas.predictor.table import PricingError

    monkeypatch.setattr(writers, "_compile_into", fail)
    with pytest.raises(PricingError):
        bundle.save(folder, trained, data, space=get_space("mnasnet", resolution=32), overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before and bundle.load(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder left behind
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(BundleError, match="expected an empty folder or a bundle to replace, got other files"):
        bundle.save(other, trained, data)
    assert (other / "mine.txt").read_text() == "keep"
