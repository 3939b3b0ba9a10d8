"""Predictor training and bundles (pynas.predictor.train, .bundle, .manifest), on a small store of
real native measurements (MnasNet space at 32x32, so it runs in seconds)."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pynas.ir import lower
from pynas.ir.segments import segments
from pynas.predictor import bundle
from pynas.predictor.features import FEATURE_NAMES, feature_vector
from pynas.predictor.manifest import BundleError
from pynas.predictor.metrics import accuracy, spearman
from pynas.predictor.train import load_dataset, train
from pynas.space import get_space
from pynas.store import Store


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
                                  ("kind", "lstm", "kind: expected one of xgboost, table, lookup, got 'lstm'"),
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


@pytest.mark.parametrize("method", ["multibase", "groups"])
def test_fewshot_calibration_of_an_xgboost_bundle(tiny_bundle, tmp_path, method):
    """A device 1.4x slower on MBConv blocks and 1.1x elsewhere: calibrated from an XGBoost base's
    compiled table, the table bundle written follows the new device and describes it, not the base's."""
    from pynas.predictor import fewshot

    base = bundle.load(tiny_bundle)
    space = base.space

    def new_device(archs):
        out = []
        for arch in archs:
            rows = {r["segment"]: r["ms"] for r in base.explain(arch) if r["segment"] != "overhead"}
            out.append(sum(ms * (1.4 if seg.kind == "mbconv" else 1.1) for seg, ms in
                           zip(segments(lower(arch)), rows.values())) + 0.05)
        return np.array(out)

    train_archs, test = space.sample(15, seed=8), space.sample(60, seed=9)
    target = fewshot.Target({"name": "new phone"}, "tflite", "2.16", 4)
    folder = fewshot.calibrated_bundle([base], train_archs, new_device(train_archs), tmp_path / "new", target,
                                       method=method, name="new")
    p = bundle.load(folder)
    assert p.manifest.source.startswith(f"few-shot calibration ({method}) of tiny on 15 networks")
    assert (p.manifest.device, p.manifest.backend, p.manifest.backend_version, p.manifest.threads) == (
        {"name": "new phone"}, "tflite", "2.16", 4)
    by_arch = p.predict_batch(test)
    np.testing.assert_allclose(p.predict_batch(space.sample_tokens(60, seed=9)), by_arch, rtol=1e-4)
    calibrated, uncalibrated = (accuracy(ms, new_device(test))["rmspe"] for ms in (by_arch, base.predict_batch(test)))
    assert calibrated < min(5.0, uncalibrated / 3), (calibrated, uncalibrated)


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


# -- bad input (each case of the bad-input trial that a bundle or its writers fix) -----------------
SHIPPED = Path(__file__).resolve().parent.parent / "predictors"


def _copy(source: Path, folder: Path) -> Path:
    """A copy of a bundle folder to break."""
    return Path(shutil.copytree(source, folder))


def _fix_hash(folder: Path, name: str) -> None:
    """Make the manifest's sha256 of `name` match the file again: only what is inside it is wrong."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        target = manifest
        for parent in parents:
            target = target[parent]
        target[name] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_calibrate_takes_the_resolution_of_the_measured_networks(small_store, tmp_path, capsys):
    """The README's `pynas calibrate DB -o DIR --backend native --space mnasnet` (no --resolution)
    trained, then failed with 'resolution: ... got None': now the measured networks' resolution."""
    from pynas.cli import main

    out = tmp_path / "mine"
    assert main(["calibrate", str(small_store), "-o", str(out), "--backend", "native", "--space", "mnasnet"]) == 0
    assert "table mnasnet@32" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["space"]["resolution"] == 32
    assert bundle.load(out).table.space.resolution == 32


def test_calibration_space_without_networks_is_the_spaces_default():
    from argparse import Namespace

    from pynas.cli.predictors import calibration_space
    from pynas.predictor.train import Dataset

    data = Dataset("d", "native", "v", 1, {}, {})
    assert calibration_space(Namespace(space="mnasnet", resolution=None), data).resolution == 224
    assert calibration_space(Namespace(space="mnasnet", resolution=64), data).resolution == 64
    assert calibration_space(Namespace(space=None, resolution=None), data) is None
    data.networks = {"net_res96_cls1000:stem_k3_s2_c32:ir_r1_k3_s1_e3_c16:head_c1280": 1.0}
    assert calibration_space(Namespace(space="mnasnet", resolution=None), data).resolution == 96


def _keep_networks(source: Path, path: Path, count: int) -> Path:
    """A copy of a store with only `count` of its measured networks."""
    shutil.copy(source, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM measurements WHERE key IN (SELECT key FROM op_keys WHERE kind = 'network') AND "
                     "rowid NOT IN (SELECT m.rowid FROM measurements m JOIN op_keys k USING (key) WHERE "
                     f"k.kind = 'network' ORDER BY m.rowid LIMIT {count})")
    conn.close()
    return path


def test_calibrate_refuses_too_few_networks_and_warns_when_the_minimum_is_lowered(small_store, tmp_path, capsys):
    from pynas.cli import main

    for count in (0, 4):
        store = _keep_networks(small_store, tmp_path / f"n{count}.sqlite", count)
        assert main(["calibrate", str(store), "-o", str(tmp_path / f"b{count}")]) == 2
        err = capsys.readouterr().err
        assert f"expected at least 10 measured whole networks to fit and check the network term (--min-networks), " \
               f"got {count}" in err and len(err.splitlines()) == 1
        assert not (tmp_path / f"b{count}").exists()
    out = tmp_path / "four"
    assert main(["calibrate", str(tmp_path / "n4.sqlite"), "-o", str(out), "--min-networks", "4"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: only 4 measured networks (fewer than 10)" in err
    report = json.loads((out / "report.json").read_text())  # the held-out figures, on the networks there are
    assert report["heldout_networks"]["n"] == 4
    assert bundle.load(out).manifest.extra["report"]["heldout_networks"]["n"] == 4


def test_stale_staging_folders_of_dead_writers_are_removed(tmp_path):
    from pynas.predictor import writers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getppid()  # pytest's parent: alive while this runs
    folder = tmp_path / "b"
    leftovers = {name: tmp_path / name for name in (f".b.staging-{dead.pid}", f".b.old-{dead.pid}",
                                                    f".b.staging-{live}", ".b.notes-1", ".other.staging-1")}
    for path in leftovers.values():
        path.mkdir()
        (path / "model.ubj").write_bytes(b"half written")
    pixel3 = bundle.load("pixel3")
    bundle.save_table(folder, pixel3.table, pixel3.table.space, device={"name": "t"}, backend="tflite",
                      backend_version="1", threads=1, report={}, source="test")
    assert bundle.load(folder).predict(pixel3.table.space.sample(1, seed=0)[0]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["b", f".b.staging-{live}", ".b.notes-1", ".other.staging-1"])  # only a dead writer's are removed
    assert writers.remove_stale_staging(folder) == []


def test_a_name_is_a_name_even_with_a_folder_of_that_name_here(tmp_path, monkeypatch, capsys):
    from pynas.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYNAS_PREDICTORS", raising=False)
    (tmp_path / "pixel3").mkdir()
    (tmp_path / "pixel3" / "manifest.json").write_text("{not a manifest")
    p = bundle.load("pixel3")
    assert p.folder.name == "pixel3" and p.folder.parent in bundle.search_path()  # the shipped one, found by name
    assert p.folder.resolve() != (tmp_path / "pixel3").resolve()
    with pytest.raises(BundleError, match=r"pixel3/manifest.json: unreadable manifest"):
        bundle.load("./pixel3")  # a path: the folder here
    arch = get_space("fbnet").sample(1, seed=0)[0]
    assert main(["predict", str(arch), "--predictor", "pixel3"]) == 0
    assert "(pixel3: pixel3, tflite" in capsys.readouterr().out


def test_an_installed_search_path_has_no_predictors_beside_the_package(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    fake = site / "pynas" / "predictor" / "bundle.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(bundle, "__file__", str(fake))
    monkeypatch.setenv("PYNAS_PREDICTORS", str(tmp_path / "mine"))
    paths = bundle.search_path()
    assert paths == [tmp_path / "mine", bundle.user_bundles(), site / "pynas" / "predictors"]
    assert site / "predictors" not in paths
    (site / "pyproject.toml").write_text("")  # a source checkout: its predictors/ too
    assert bundle.search_path()[-1] == site / "predictors"


def test_an_overhead_that_would_make_a_network_non_positive_is_refused_on_load(tmp_path):
    folder = _copy(SHIPPED / "pixel3", tmp_path / "p")
    table = bundle.load(folder).table
    work = table.min_ms() - table.overhead_ms
    assert work > 0
    _edit_manifest(folder, network_term__overhead_ms=-work)
    with pytest.raises(BundleError, match=rf"{folder}/manifest.json: network_term.overhead_ms: expected more than "
                                          rf"-{work:.6g} .*got -{work!r}"):
        bundle.load(folder)
    _edit_manifest(folder, network_term__overhead_ms=-0.999 * work)
    assert bundle.load(folder).predict_batch(table.space.sample_tokens(1000, seed=0)).min() > 0

    # The table's own overhead: its exact minimum over the space is checked when it is read.
    broken = _copy(SHIPPED / "pixel3", tmp_path / "q")
    arrays = dict(np.load(broken / "table.npz", allow_pickle=False))
    meta = json.loads(arrays["meta_json"].tobytes())
    meta["overhead_ms"] = -work
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(broken / "table.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    _fix_hash(broken, "table.npz")
    with pytest.raises(BundleError, match=rf"{broken}/table.npz: table: expected every network of the space > 0 ms, "
                                          r"got a minimum of"):
        bundle.load(broken)


def test_a_corrupt_xgboost_model_is_one_line_naming_the_file(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path / "t")
    (folder / "model.ubj").write_bytes(b"{this is not UBJ" * 100)
    _fix_hash(folder, "model.ubj")
    with pytest.raises(BundleError) as caught:
        bundle.load(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}/model.ubj: expected an XGBoost model (UBJ), got a file XGBoost cannot read")
    assert "\n" not in message and "Stack trace" not in message


def _stored_zip(source: Path, target: Path) -> None:
    """`source` (.npz) rewritten with uncompressed members, so a byte flipped in a member's data
    leaves the zip readable and only its CRC wrong."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info.filename))


def test_a_table_with_a_bad_inner_checksum_is_refused_naming_the_file(tmp_path):
    folder = _copy(SHIPPED / "pixel3", tmp_path / "p")
    _stored_zip(SHIPPED / "pixel3" / "table.npz", folder / "table.npz")
    _fix_hash(folder, "table.npz")
    assert bundle.load(folder)  # uncompressed members load as well
    data = bytearray((folder / "table.npz").read_bytes())
    with zipfile.ZipFile(folder / "table.npz") as z:
        info = z.getinfo("head.npy")
    data[info.header_offset + 30 + len(info.filename) + info.file_size - 1] ^= 0xFF  # the member's last data byte
    (folder / "table.npz").write_bytes(bytes(data))
    _fix_hash(folder, "table.npz")  # the manifest's sha256 matches: only the zip's own CRC-32 is wrong
    with pytest.raises(BundleError, match=rf"^{folder}/table.npz: damaged latency table \(BadZipFile: Bad CRC-32 "
                                          r"for file 'head.npy'\): expected the .npz pynas saved$"):
        bundle.load(folder)
    # The same in a compressed member: a flipped byte in the deflate stream, whatever it breaks.
    compressed = _copy(SHIPPED / "pixel3", tmp_path / "c")
    data = bytearray((compressed / "table.npz").read_bytes())
    with zipfile.ZipFile(compressed / "table.npz") as z:
        info = z.getinfo("first_0.npy")
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    (compressed / "table.npz").write_bytes(bytes(data))
    _fix_hash(compressed, "table.npz")
    with pytest.raises(BundleError, match=rf"^{compressed}/table.npz: "):
        bundle.load(compressed)


def test_a_text_file_named_table_npz_says_what_was_expected(tmp_path):
    folder = _copy(SHIPPED / "pixel3", tmp_path / "p")
    (folder / "table.npz").write_text("stem,ms\n1,2\n")
    _fix_hash(folder, "table.npz")
    with pytest.raises(BundleError) as caught:
        bundle.load(folder)
    assert str(caught.value) == (f"{folder}/table.npz: expected a pynas latency table (an .npz: a zip archive of "
                                 f"arrays), got a file starting b'stem'")
    assert "pickle" not in str(caught.value)


def test_a_table_bundle_prices_only_its_own_space():
    from pynas.predictor import latency_model

    with pytest.raises(BundleError, match=r"bundle pixel3: space: expected mnasnet@224 .* \(asked for\), got a table "
                                          r"of "
                                          r"fbnet@224 .*a table prices only its own space"):
        latency_model("pixel3", "mnasnet")
