"""The predictor bundles pynas ships (predictors/, installed as pynas/predictors): the index, that
each loads and agrees with its source, and the accuracy their reports claim."""
from pathlib import Path

import numpy as np
import pytest

import pynas
from pynas.predictor import bundle, hwnasbench
from pynas.space import FBNetSpace, get_space

HWNASBENCH = ("pixel3", "raspi4", "edgegpu")
THIS_MACHINE = ("x86-avx512-native", "x86-avx512-litert")


def shipped_root() -> Path:
    """The installed bundles (a wheel or an editable install), else the source tree's."""
    for root in bundle.search_path()[-2:]:
        if (root / bundle.INDEX).is_file():
            return root
    pytest.fail(f"no {bundle.INDEX} in {bundle.search_path()[-2:]}: the wheel must ship predictors/")


def test_index_lists_every_shipped_bundle():
    root = shipped_root()
    names = {e["name"] for e in bundle.read_index(root)}
    assert set(HWNASBENCH) | {f"{d}-cifar100" for d in HWNASBENCH} | set(THIS_MACHINE) <= names
    installed = Path(pynas.__file__).resolve().parent / "predictors"
    if installed.is_dir():  # a wheel install: the index and bundles came with it
        assert (installed / bundle.INDEX).is_file()


def test_index_catches_a_changed_bundle(tmp_path):
    import shutil

    root = tmp_path / "p"
    shutil.copytree(shipped_root() / "pixel3", root / "pixel3")
    bundle.write_index(root)
    assert [e["name"] for e in bundle.read_index(root)] == ["pixel3"]
    manifest = root / "pixel3" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"name": "pixel3"', '"name": "pixel3x"'))
    with pytest.raises(bundle.BundleError, match="manifest_sha256: expected .* got .*rewrite the index"):
        bundle.read_index(root)
    shutil.copytree(shipped_root() / "raspi4", root / "raspi4")
    bundle.write_index(root)
    (root / "index.json").write_text((root / "index.json").read_text().replace('"name": "raspi4"', '"name": "gone"'))
    with pytest.raises(bundle.BundleError, match="bundle 'gone': expected a bundle folder"):
        bundle.read_index(root)


@pytest.mark.parametrize("setting", ("imagenet", "cifar100"))
@pytest.mark.parametrize("device", HWNASBENCH)
def test_hwnasbench_bundles(device, setting):
    name = device if setting == "imagenet" else f"{device}-{setting}"
    p = bundle.load(name)
    assert p.manifest.kind == "table" and p.manifest.space["options"]["setting"] == setting
    space = FBNetSpace(setting)
    tokens = space.sample_tokens(300, seed=11)
    ms = p.predict_batch(tokens)
    assert np.all(ms > 0)
    want = [hwnasbench.table_latency(space.decode(t), device) for t in tokens]  # the bundle sums its table exactly
    np.testing.assert_allclose(ms, want, rtol=1e-5)


# What each shipped bundle's report must show on its held-out networks: the targets, >= 99% within
# 10% and RMSPE < 4% on >= 100 networks.
HELD_OUT_TARGET = (99.0, 4.0)


@pytest.mark.parametrize("name", THIS_MACHINE)
def test_this_machine_bundles(name):
    p = bundle.load(name)
    m = p.manifest
    assert m.kind == "xgboost" and m.threads == 1 and m.space["layout"] == "mnasnet_res224_cls1000"
    assert m.backend == name.rsplit("-", 1)[1]
    space = get_space("mnasnet")
    tokens = space.sample_tokens(300, seed=12)
    by_table = p.predict_batch(tokens)
    np.testing.assert_allclose(p.batched(space).predict_batch(tokens), by_table, rtol=1e-4)
    archs = [space.decode(t) for t in tokens[:20]]
    np.testing.assert_allclose(p.predict_batch(archs), by_table[:20], rtol=1e-4)
    a1 = p.predict("mnasnet-a1")
    assert 2.0 < a1 < 15.0  # ms on one x86 core (LiteRT measured 7.4 ms on the reference machine, native 4.5)
    report = m.extra["report"]
    held = report["heldout_networks"]
    within10, rmspe = HELD_OUT_TARGET
    assert held["n"] >= 100 and held["within10"] >= within10 and held["rmspe"] < rmspe, held
    assert (p.folder / "measurements.jsonl.gz").is_file()


@pytest.mark.parametrize("name", THIS_MACHINE)
def test_this_machine_report_is_reproduced_from_its_measurements(name):
    """The accuracy a bundle reports is what training on the measurements it ships gives."""
    from pynas.predictor.train import train

    p = bundle.load(name)
    report = train(p.training_data()).report
    shipped = p.manifest.extra["report"]
    assert report["segments_measured"] == shipped["segments_measured"]
    for key in ("heldout_networks", "heldout_segments"):
        for stat in ("n", "rmspe", "within10"):
            assert report[key][stat] == pytest.approx(shipped[key][stat], rel=1e-6), (key, stat)


SHIPPED_SPACES = {name: ("fbnet", {"setting": "imagenet"}) for name in HWNASBENCH + ("eyeriss",)}
SHIPPED_SPACES.update({f"{name}-cifar100": ("fbnet", {"setting": "cifar100"}) for name in HWNASBENCH + ("eyeriss",)})
SHIPPED_SPACES.update({name: ("mnasnet", {}) for name in THIS_MACHINE})


@pytest.mark.parametrize("name", sorted(SHIPPED_SPACES))
def test_no_shipped_bundle_predicts_a_latency_at_or_below_zero(name):
    """Over 100,000 sampled networks of its space (and exactly, over all of them: the table's
    minimum), every shipped bundle predicts > 0 ms, by every path a search can take."""
    import warnings

    from pynas.predictor import latency_model
    from pynas.predictor.device import DeviceMismatchWarning

    space_name, options = SHIPPED_SPACES[name]
    space = get_space(space_name, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceMismatchWarning)
        p = bundle.load(name)
        assert p.table.min_ms() > 0  # exact, over the whole space
        tokens = space.sample_tokens(100_000, seed=2024)
        model = latency_model(p, space)
        assert model.path == "table"
        ms = model.predict_batch(tokens)
        assert ms.shape == (100_000,) and np.all(np.isfinite(ms)) and ms.min() >= p.table.min_ms() * (1 - 1e-6)
        if hasattr(p, "batched"):  # the XGBoost path too, and on Arch lists
            assert p.batched(space).predict_batch(tokens).min() > 0
            assert p.predict_batch(space.sample(200, seed=7)).min() > 0


NB201_HERE = "intel-xeon-avx512-native-nb201"  # pynas calibrate --space nb201 (pynas.predictor.cellnet)
NB201_LITERT = "intel-xeon-avx512-litert-nb201"  # the same on LiteRT (form litert-ops, chosen by validation)


@pytest.mark.parametrize("name, form", [(NB201_HERE, "cells"), (NB201_LITERT, "litert-ops")])
def test_the_nb201_bundle_meets_the_targets_and_is_reproduced_from_its_measurements(name, form):
    """Its held-out whole networks meet the MnasNet bundles' targets, and fitting the measurements it
    ships again (the same seed and split) gives its report, its form and its lookup."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from pynas.predictor import cellnet
    from pynas.space import get_space
    from pynas.store import Store, import_jsonl

    p = bundle.load(name)
    report = p.manifest.extra["report"]
    assert report.get("form", "cells") == form
    held = report["heldout_networks"]
    within10, rmspe = HELD_OUT_TARGET
    assert held["n"] >= 100 and held["within10"] >= within10 and held["rmspe"] < rmspe, held
    space = get_space("nb201")
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
        import_jsonl(store, p.folder / "measurements.jsonl.gz")
        data = cellnet.load_cells(store, space, backend=p.manifest.backend)
    again = cellnet.train_cells(data, space, seed=report["seed"])
    assert again.model.form == form
    for stat in ("n", "rmspe", "within10"):
        assert again.report["heldout_networks"][stat] == pytest.approx(held[stat], rel=1e-6), stat
    tokens = space.sample_tokens(200, seed=0)
    np.testing.assert_allclose(again.model.predict(tokens), p.predict_batch(tokens), rtol=1e-5)
