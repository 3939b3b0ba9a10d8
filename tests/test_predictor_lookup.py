"""Lookup bundles (pynas.predictor.lookup): NAS-Bench-201's HW-NAS-Bench latencies per architecture,
their latency model, refusals of other spaces with expected vs got, and corrupt bundle files."""
import json
import shutil
import time
import warnings

import numpy as np
import pytest

from pynas.predictor import BundleError, latency_model, load
from pynas.predictor import bundle
from pynas.predictor.device import differences
from pynas.predictor.manifest import write_manifest, Manifest
from pynas.space import get_space
from pynas.space.nb201 import DEVICES, Cell, benchmark

NAMES = tuple(f"nb201-{d}" for d in DEVICES)
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"  # index 1


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


@pytest.mark.parametrize("device", DEVICES)
def test_shipped_bundles_are_hw_nas_bench_s_numbers_exactly(space, device):
    p = load(f"nb201-{device}")
    m = p.manifest
    assert m.kind == "lookup" and m.units == "ms" and m.features == [] and m.threads == 0
    assert m.space == {"name": "nb201", "resolution": 32, "options": {}, "layout": "nb201_res32_cls10"}
    assert m.device["name"] == device and m.backend in ("tflite", "simulator")
    assert set(m.files) == {"lookup.npz", "report.json"} and m.extra["report"]["archs"] == 15625
    assert m.extra["report"]["data"]["sha256"] == benchmark().sha256
    truth = benchmark().latency(device)
    every = space.tokens_of(np.arange(15625))
    np.testing.assert_array_equal(p.predict_batch(every), truth)  # by index, bit for bit
    assert p.predict(CELL) == p.predict(Cell.parse(CELL)) == p.predict(space.encode(CELL)) == truth[1]
    mixed = [CELL, Cell.parse(CELL), [0] * 6, np.zeros(6, dtype=int)]  # strings, cells, token rows
    np.testing.assert_array_equal(p.predict_batch(mixed), truth[[1, 1, 1651, 1651]])  # 1651: the all-none cell
    assert p.explain(CELL) == [{"segment": "network", "kind": "lookup", "key": "nb201 index 1", "ms": truth[1]}]
    assert differences(m) == []  # a phone's or a simulator's numbers: no machine to mismatch


def test_latency_model_is_a_vectorised_lookup(space):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeviceMismatchWarning either
        model = latency_model("nb201-pixel3", "nb201")
    assert model.path == "lookup" and repr(model) == "LatencyModel('nb201-pixel3', nb201@32, path='lookup')"
    tokens = space.sample_tokens(1_000_000, seed=5)
    ms = model.predict_batch(tokens)
    assert ms.dtype == np.float64 and ms.shape == (1_000_000,)
    np.testing.assert_array_equal(ms, benchmark().latency("pixel3")[space.index_of(tokens)])
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict_batch(tokens)
        best = min(best, time.perf_counter() - t0)
    assert 1e6 / best > 1e6, f"{1e6 / best:.3g} rows/s"  # the floor; ~2-3e7 rows/s measured
    assert latency_model(load("nb201-fpga"), space).path == "lookup"
    assert latency_model("nb201-fpga", "nb201", resolution=32).path == "lookup"


def test_other_spaces_are_refused_with_expected_vs_got():
    with pytest.raises(BundleError, match=r"bundle nb201-pixel3: space: expected mnasnet@224 .* \(asked for\), got a "
                                          r"lookup of nb201@32 \{\}: a lookup prices only its own space"):
        latency_model("nb201-pixel3", "mnasnet")
    with pytest.raises(BundleError, match=r"bundle pixel3: space: expected nb201@32 \{\} \(asked for\), got a table of "
                                          r"fbnet@224"):
        latency_model("pixel3", "nb201")
    with pytest.raises(BundleError, match=r"bundle x86-avx512-native: space: expected nb201@32 \{\} \(asked for\), "
                                          r"got an XGBoost bundle made for mnasnet@224 .* not lowered"):
        latency_model("x86-avx512-native", "nb201")
    with pytest.raises(BundleError, match=r"bundle nb201-raspi4: space: expected fbnet@224 .* got nb201@32 \{\} "
                                          r"\(the bundle's\)"):
        load("nb201-raspi4", space=get_space("fbnet"))
    with pytest.raises(ValueError, match=r"resolution: expected 32"):
        latency_model("nb201-pixel3", "nb201", resolution=224)


def test_predict_refuses_what_is_not_a_cell_of_the_space(space):
    p = load("nb201-eyeriss")
    with pytest.raises(ValueError, match="architecture not in space 'nb201': expected a NAS-Bench-201 Cell or its "
                                         "string, got Arch"):
        p.predict(get_space("mnasnet").sample(1, seed=0)[0])
    with pytest.raises(ValueError, match="NAS-Bench-201 cell 'mnasnet-a1': expected 3 groups"):
        p.predict("mnasnet-a1")
    with pytest.raises(ValueError, match="token edge0to3: expected 0..4, got 7"):
        p.predict_batch([[0, 0, 0, 7, 0, 0]])
    with pytest.raises(ValueError, match="tokens: row 1, edge0to1: expected 0..4, got -1"):
        p.predict_batch(np.array([[0] * 6, [-1] + [0] * 5]))
    assert p.predict_batch([]).shape == (0,)


def test_model_and_table_bundles_refuse_cells_by_name():
    """Bundles of pynas networks name the cell and the bundles that price it, never crash."""
    for name in ("pixel3", "x86-avx512-native"):
        p = load(name)
        for arch in (Cell.parse(CELL), CELL):
            with pytest.raises(BundleError, match=r"arch: expected a pynas architecture .* got the NAS-Bench-201 "
                                                  r"cell \|nor_conv_3x3~0\|.*: price it with a lookup bundle of "
                                                  r"space nb201"):
                p.predict(arch)


def test_listed_and_indexed_with_the_shipped_bundles():
    listed = {name: manifest for name, _, manifest in bundle.list_bundles()}
    assert all(isinstance(listed[n], Manifest) and listed[n].kind == "lookup" for n in NAMES)
    for root in bundle.search_path()[-2:]:
        if (root / bundle.INDEX).is_file():
            entries = {e["name"]: e for e in bundle.read_index(root)}
            assert all(entries[n]["kind"] == "lookup" and entries[n]["space"] == "nb201_res32_cls10" for n in NAMES)
            return
    pytest.fail("no index of the shipped bundles")


# -- bad bundle files --------------------------------------------------------------------------------

@pytest.fixture
def copy(tmp_path):
    folder = tmp_path / "nb201-pixel3"
    shutil.copytree(load("nb201-pixel3").folder, folder)
    return folder


def _write(folder, **arrays):
    """lookup.npz with `arrays`, the manifest's hashes updated: a bundle whose only fault is its data."""
    with open(folder / "lookup.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    write_manifest(folder, Manifest.read(folder))


def test_a_copy_loads_and_a_changed_file_is_refused_by_its_sha256(copy):
    assert load(copy).predict(CELL) == load("nb201-pixel3").predict(CELL)
    raw = bytearray((copy / "lookup.npz").read_bytes())
    raw[-30] ^= 0xFF
    (copy / "lookup.npz").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"nb201-pixel3/lookup.npz: sha256: expected [0-9a-f]{64} \(manifest\), got "
                                          r"[0-9a-f]{64}: the file changed"):
        load(copy)


@pytest.mark.parametrize("arrays, message", [
    ({"ms": np.ones(100)}, r"lookup.npz: ms: expected 15625 float latencies \(one per architecture of nb201, in its "
                           r"index order\), got float64 with shape \(100,\)"),
    ({"ms": np.ones((15625, 1))}, r"ms: expected 15625 float latencies .* got float64 with shape \(15625, 1\)"),
    ({"ms": np.ones(15625, dtype=np.int64)}, "ms: expected 15625 float latencies .* got int64"),
    ({"ms": np.where(np.arange(15625) == 3, np.nan, 1.0)}, r"lookup.npz: ms\[3\]: expected a latency > 0 ms, got nan"),
    ({"ms": np.where(np.arange(15625) == 9, 0.0, 1.0)}, r"ms\[9\]: expected a latency > 0 ms, got 0.0"),
    ({"ms": np.where(np.arange(15625) == 0, -2.0, 1.0)}, r"ms\[0\]: expected a latency > 0 ms, got -2.0"),
    ({"ms": np.where(np.arange(15625) == 5, np.inf, 1.0)}, r"ms\[5\]: expected a latency > 0 ms, got inf"),
    ({"ms": np.ones(15625), "extra": np.ones(1)}, r"lookup.npz: arrays: expected \['ms'\] .* got \['extra', 'ms'\]"),
    ({"latency": np.ones(15625)}, r"arrays: expected \['ms'\] .* got \['latency'\]"),
])
def test_bad_latencies_are_refused_naming_file_and_field(copy, arrays, message):
    _write(copy, **arrays)
    with pytest.raises(BundleError, match=message) as caught:
        load(copy)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_an_npz_or_a_manifest_without_it(copy):
    (copy / "lookup.npz").write_bytes(b"not a zip at all")
    write_manifest(copy, Manifest.read(copy))
    with pytest.raises(BundleError, match=r"lookup.npz: expected a pynas latency table \(an .npz"):
        load(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]["lookup.npz"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="kind 'lookup': expected a lookup.npz listed in the manifest, got none"):
        load(copy)


def test_a_manifest_naming_another_space_or_none(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["space"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest.json: space: expected the space the lookup is indexed by, "
                                          "got null"):
        load(copy)
    manifest["space"] = {"name": "mnasnet", "resolution": 224, "options": {"resolution": 224, "num_classes": 1000},
                         "layout": "mnasnet_res224_cls1000"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"space: expected a space with indexed architectures \(nb201\), got mnasnet"):
        load(copy)
    manifest["space"] = {"name": "nb201", "resolution": 32, "options": {}, "layout": "nb201_other"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"space: expected nb201@32 \{\} \(the one asked for\), got nb201@32"):
        load(copy)


def test_save_lookup_refuses_bad_latencies_before_writing(tmp_path, space):
    from pynas.predictor.writers import save_lookup

    options = dict(device={"name": "x"}, backend="b", backend_version="1", threads=0, report={}, source="test")
    with pytest.raises(BundleError, match=r"ms\[2\]: expected a latency > 0 ms, got 0.0"):
        save_lookup(tmp_path / "bad", np.where(np.arange(15625) == 2, 0.0, 1.0), space, **options)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.iterdir())  # nothing half-written
    folder = save_lookup(tmp_path / "good", np.arange(1, 15626, dtype=np.float64), space, **options)
    p = load(folder)
    assert p.manifest.kind == "lookup" and p.predict(CELL) == 2.0  # index 1
    with pytest.raises(BundleError, match="a bundle is already there"):
        save_lookup(folder, np.ones(15625), space, **options)
