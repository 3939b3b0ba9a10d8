"""pynas.predictor.cellnet: NAS-Bench-201's whole networks measured on a machine -> cell features,
an XGBoost model with networks held out, a lookup bundle of every cell (with its model) that
`predictor.load`, `latency_model`, `pynas predict` and verification take; bad input refused."""
import json

import numpy as np
import pytest

from pynas.cli import main
from pynas.ir import fuse, lower
from pynas.predictor import bundle, cellnet, latency_model
from pynas.predictor.manifest import BundleError
from pynas.space import get_space
from pynas.store import OpKey, Stats, Store

SPACE = get_space("nb201")
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"


def synthetic_ms(tokens: np.ndarray) -> np.ndarray:
    """A made-up device: a base, a price per op, a sum fused into a conv costing extra."""
    counts = np.stack([(tokens == o).sum(axis=1) for o in range(5)], axis=1)
    return 0.5 + counts @ np.array([0.0, 0.03, 0.15, 0.4, 0.05])


def fill(store, context, tokens, ms) -> None:
    for t, m in zip(tokens, ms):
        net = SPACE.network(t)
        store.record(context, OpKey(str(net), "network", {"macs": lower(net).macs}), Stats(m, m * 0.01, m, m, 20))


def made_up_context(backend: str, backend_version: str, machine: str = "aarch64", isa: str = "neon"):
    """A measurement context of a made-up device."""
    from pynas.store import Context, DeviceFingerprint

    device = DeviceFingerprint(cpu_model="Test CPU", machine=machine, os="Linux", isa_flags=(isa,),
                               logical_cores=8, l1d_bytes=65536, l2_bytes=524288, l3_bytes=None, max_mhz=2400.0)
    return Context(device=device, backend=backend, backend_version=backend_version, threads=1, session="test",
                   pynas_version="0.1.0", kernel="6.1.0-test", cpu_mhz=1800.0)


@pytest.fixture(scope="module")
def cell_store(tmp_path_factory):
    """A store of 90 measured NAS-Bench-201 networks on a made-up device, and one MnasNet network."""
    context = made_up_context("native", "0.1.0")
    path = tmp_path_factory.mktemp("cells") / "m.sqlite"
    tokens = np.unique(SPACE.sample_tokens(95, seed=4), axis=0)[:90]
    with Store(path) as store:
        fill(store, context, tokens, synthetic_ms(tokens))
        a1 = "net_res32_cls10:stem_k3_s1_c16:ir_r1_k3_s1_e6_c16:head_c32"
        store.record(context, OpKey(a1, "network", {}), Stats(1.0, 0.01, 1.0, 1.0, 20))
    return path


@pytest.fixture(scope="module")
def cell_bundle(cell_store, tmp_path_factory):
    with Store(cell_store, create=False) as store:
        data = cellnet.load_cells(store, SPACE)
    trained = cellnet.train_cells(data, SPACE, params={"rounds": 300})
    folder = cellnet.save_cells(tmp_path_factory.mktemp("bundles") / "cells", trained, data, SPACE,
                                source=str(cell_store), measurements=b"")
    return folder, data, trained


def test_features_are_the_lowered_networks_and_their_kernels():
    tokens = np.vstack([SPACE.sample_tokens(12, seed=1), [[o] * 6 for o in range(5)]])
    x = cellnet.cell_features(SPACE, tokens)
    names = cellnet.feature_names(SPACE)
    assert x.shape == (17, len(names)) and len(set(names)) == len(names)
    col = {n: x[:, i] for i, n in enumerate(names)}
    for r, row in enumerate(tokens):
        graph = lower(SPACE.network(row))
        # the IR's totals exactly, though priced per op (five lowerings, not one per cell)
        assert col["macs_m"][r] * 1e6 == pytest.approx(graph.macs, abs=1e-3)
        assert col["params_k"][r] * 1e3 == pytest.approx(graph.params, abs=1e-6)
        assert col["weight_kb"][r] * 1e3 == pytest.approx(graph.weight_bytes, abs=1e-6)
        # how the nodes' sums run, as pynas.ir.fusion fuses the first cell
        kernels = [k for k in fuse(graph) if k.ops[0].block == "c0"]
        assert [col[n][r] for n in cellnet.SUM_FEATURES] == [
            sum(k.kind == "conv" and k.key.endswith("_res") for k in kernels),
            sum(k.kind == "pwconv" and k.key.endswith("_res") for k in kernels),
            sum(k.kind == "add" and not k.key.endswith("_a3") for k in kernels),
            sum(k.kind == "add" and k.key.endswith("_a3") for k in kernels),
            sum(k.kind == "zero" for k in kernels)]
        for e, decision in enumerate(SPACE.decisions):
            assert [col[f"{decision.name}_{op}"][r] for op in decision.choices] == \
                [float(row[e] == o) for o in range(5)]
    assert col["connected"].tolist()[-5:] == [0, 1, 1, 1, 1]  # all none, then one op everywhere


def test_features_refuse_bad_input():
    with pytest.raises(ValueError, match="space: expected nb201 .* got 'mnasnet'"):
        cellnet.cell_features(get_space("mnasnet"), [[0] * 42])
    with pytest.raises(ValueError, match="tokens: row 1, edge1to2: expected 0..4, got 5"):
        cellnet.cell_features(SPACE, np.array([[0] * 6, [0, 0, 5, 0, 0, 0]]))
    with pytest.raises(ValueError, match="tokens: expected an N x 6 integer array"):
        cellnet.cell_features(SPACE, np.zeros((2, 5), dtype=int))


def test_load_cells_keeps_the_space_s_networks(cell_store):
    with Store(cell_store, create=False) as store:
        data = cellnet.load_cells(store, SPACE)
    assert len(data.keys) == 90 and data.other_networks == 1 and data.tokens.shape == (90, 6)
    np.testing.assert_allclose(data.ms, synthetic_ms(data.tokens))
    assert [str(SPACE.network(t)) for t in data.tokens] == data.keys


def test_training_holds_a_fifth_out_and_predicts_them(cell_bundle):
    _, data, trained = cell_bundle
    report = trained.report
    assert report["networks_measured"] == 90 and report["networks_fitted"] == 72
    held = report["heldout_networks"]
    assert held["n"] == 18 and len(trained.heldout_keys) == 18 and set(trained.heldout_keys) <= set(data.keys)
    assert held["rmspe"] < 8 and held["spearman"] > 0.9  # a smooth made-up device, 72 networks
    assert report["other_networks_left_out"] == 1


def test_too_few_networks_are_refused(cell_store):
    with Store(cell_store, create=False) as store:
        data = cellnet.load_cells(store, SPACE)
    few = cellnet.CellData(data.series, data.keys[:10], data.tokens[:10], data.ms[:10])
    with pytest.raises(ValueError, match="networks: expected at least 50 measured networks of space nb201"):
        cellnet.train_cells(few, SPACE)
    with pytest.raises(ValueError, match="holdout: expected a share in"):
        cellnet.train_cells(data, SPACE, holdout=1.0)


def test_the_bundle_is_a_lookup_of_every_cell_with_its_model(cell_bundle):
    folder, data, trained = cell_bundle
    p = bundle.load(folder)
    manifest = p.manifest
    assert manifest.kind == "lookup" and manifest.space["name"] == "nb201"
    assert manifest.features == cellnet.feature_names(SPACE) and {cellnet.MODEL, cellnet.LINEAR} <= set(manifest.files)
    assert manifest.device["cpu_model"] == "Test CPU" and manifest.backend == "native" and manifest.threads == 1
    assert manifest.extra["report"]["heldout_networks"] == trained.report["heldout_networks"]
    model = cellnet.CellModel.load(folder, SPACE)
    tokens = SPACE.sample_tokens(50, seed=9)
    np.testing.assert_allclose(p.predict_batch(tokens), model.predict(tokens), rtol=1e-6)
    assert p.predict(CELL) == pytest.approx(float(model.predict(np.array([SPACE.encode(CELL)]))[0]), rel=1e-6)
    assert p.predict(str(SPACE.network(CELL))) == p.predict(CELL)  # the network's string is the cell's
    lm = latency_model(folder, "nb201")
    assert lm.path == "lookup" and (lm.predict_batch(tokens) > 0).all()
    report = json.loads((folder / "report.json").read_text())
    assert report["heldout_keys"] == trained.heldout_keys


def test_a_damaged_or_foreign_model_file_is_refused(cell_bundle, tmp_path):
    import shutil

    folder, _, _ = cell_bundle
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    linear = json.loads((copy / cellnet.LINEAR).read_text())
    for change, message in ((dict(floor_ms=0), "floor_ms: expected a latency > 0, got 0"),
                            (dict(coef=linear["coef"][:-1]), "coef, intercept: expected 44 finite numbers and one"),
                            (dict(features=["x"]), "features: expected this pynas's 44 structure features"),
                            (dict(extra=1), "expected an object {features, coef, intercept, floor_ms}")):
        (copy / cellnet.LINEAR).write_text(json.dumps({**linear, **change}))
        with pytest.raises(BundleError, match=f"{cellnet.LINEAR}: {message}"):
            cellnet.CellModel.load(copy, SPACE)
    (copy / cellnet.MODEL).write_bytes(b"not a model")
    with pytest.raises(BundleError, match="model.ubj: expected an XGBoost model"):
        cellnet.CellModel.load(copy, SPACE)


def test_wrong_space_and_wrong_architecture_are_one_line_errors(cell_bundle, capsys):
    folder, _, _ = cell_bundle
    with pytest.raises(BundleError, match=r"space: expected mnasnet@224 .* got a lookup of nb201@32"):
        latency_model(folder, "mnasnet")
    code = main(["predict", "mnasnet-a1", "--predictor", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ARCH: NAS-Bench-201 cell 'mnasnet-a1'" in err
    code = main(["predict", CELL, "--predictor", str(folder)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"{bundle.load(folder).predict(CELL):.4f} ms  (cells: ")


def test_calibrate_writes_the_bundle_and_says_its_held_out_accuracy(cell_store, tmp_path, capsys):
    code = main(["calibrate", str(cell_store), "--space", "nb201", "-o", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "90 networks of nb201 (1 networks of other spaces left out)" in out
    assert "heldout_networks   n=18" in out and "every one of 15625 nb201 cells predicted" in out
    p = bundle.load(tmp_path / "b")
    assert "measurements.jsonl.gz" in p.manifest.files
    code = main(["calibrate", str(cell_store), "--space", "nb201", "-o", str(tmp_path / "b")])
    assert code == 2 and "a bundle is already there" in capsys.readouterr().err


def litert_ms(tokens: np.ndarray) -> np.ndarray:
    """A made-up LiteRT device: a base and a price per op its converter leaves, by op kind and size."""
    from pynas.predictor import litert_ops

    names = litert_ops.space_signatures("nb201")
    prices = np.array([{"CONV_2D": 4e-5, "AVERAGE_POOL_2D": 1e-5}.get(n.split()[0], 5e-6)
                       * int(np.prod([int(d) for d in n.split()[1].split("->")[1].split("x")])) ** 0.9 for n in names])
    return 0.002 + litert_ops.op_counts(SPACE, tokens) @ prices


@pytest.fixture(scope="module")
def litert_cells(tmp_path_factory):
    """90 measured NAS-Bench-201 networks on a made-up LiteRT device, trained."""
    context = made_up_context("litert", "ai-edge-litert==0", machine="x86_64", isa="avx2")
    tokens = np.unique(SPACE.sample_tokens(95, seed=5), axis=0)[:90]
    path = tmp_path_factory.mktemp("litert") / "m.sqlite"
    with Store(path) as store:
        fill(store, context, tokens, litert_ms(tokens))
        data = cellnet.load_cells(store, SPACE, backend="litert")
    return data, cellnet.train_cells(data, SPACE, params={"rounds": 100}), path


def test_a_litert_series_is_fitted_in_the_form_validation_chooses(litert_cells, tmp_path):
    data, trained, _ = litert_cells
    report = trained.report
    # the ops LiteRT runs price this device exactly; the cell's edges do not (cut-off cells run one cell)
    assert report["form"] == "litert-ops" and trained.model.form == "litert-ops"
    scores = report["form_validation"]
    assert set(scores) == {"cells", "litert-ops"} and scores["cells"]["n"] == scores["litert-ops"]["n"] == 14
    assert scores["litert-ops"]["rmspe"] < scores["cells"]["rmspe"]
    assert report["heldout_networks"]["rmspe"] < 3 and report["model"] == cellnet.FORM_MODELS["litert-ops"]
    folder = cellnet.save_cells(tmp_path / "b", trained, data, SPACE)
    p = bundle.load(folder)
    assert p.manifest.features == cellnet.feature_names(SPACE, "litert-ops") and p.manifest.backend == "litert"
    model = cellnet.CellModel.load(folder, SPACE)  # the form read back from the model's features
    tokens = SPACE.sample_tokens(30, seed=2)
    assert model.form == "litert-ops"
    np.testing.assert_allclose(model.predict(tokens), p.predict_batch(tokens), rtol=1e-6)


def test_forms_by_backend_and_a_bad_form():
    assert cellnet.forms_for("native") == cellnet.forms_for("onnxruntime") == ("cells",)
    assert cellnet.forms_for("litert") == cellnet.FORMS == ("cells", "litert-ops")
    with pytest.raises(ValueError, match="form: expected one of cells, litert-ops, got 'ops'"):
        cellnet.feature_names(SPACE, "ops")
    with pytest.raises(ValueError, match="tokens: row 0, edge0to1: expected 0..4, got 7"):
        cellnet.features(SPACE, [[7, 0, 0, 0, 0, 0]], "litert-ops")


def test_a_model_of_other_features_is_refused(cell_bundle, tmp_path):
    import shutil

    import xgboost as xgb

    folder, _, _ = cell_bundle
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    x = np.random.default_rng(0).random((20, 3))
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(x, label=x[:, 0], feature_names=["a", "b", "c"]), 2)
    (copy / cellnet.MODEL).write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    with pytest.raises(BundleError, match=r"model.ubj: feature_names: expected this pynas's features of a form, "
                                          r"47 \(cells\) or 32 \(litert-ops\), got 3"):
        cellnet.CellModel.load(copy, SPACE)


def test_calibrate_says_which_form_it_chose(litert_cells, tmp_path, capsys):
    _, _, store = litert_cells
    code = main(["calibrate", str(store), "--space", "nb201", "--backend", "litert", "-o", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model form: litert-ops, chosen on 14 of the fitted networks: cells RMSPE " in out
    assert "; litert-ops RMSPE " in out and "heldout_networks   n=18" in out
    assert bundle.load(tmp_path / "b").manifest.extra["report"]["form"] == "litert-ops"
