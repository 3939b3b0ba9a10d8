"""`pynas.ship.verify_export`: an exported file timed itself in its runtime, against a bundle of
that runtime for this machine or, with none, measured with no prediction; bad input (the file, its
runtime, the bundle) is one ValueError naming the field before anything is timed."""
import json
import shutil

import numpy as np
import pytest

from pynas.ship import export as ex
from pynas.ship import verify_export as ve
from pynas.space import get_space
from pynas.verify import measure

ARCH = str(get_space("mnasnet", resolution=32).sample(1, seed=3)[0])  # conftest onnx_export's
QUICK = {"budget_seconds": 0.2, "min_runs": 5, "target_rel_ci": 0.05}  # a few pairs a pass: seconds, not minutes


@pytest.fixture(autouse=True)
def no_bundles_of_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no `pynas device init` defaults here


@pytest.fixture(scope="module")
def onnx_file(onnx_export):
    return onnx_export[0]


def fake_interleave(ratio_of_item, seen):
    """Stands in for backends.time_interleaved: the item's ratio (per call), the reference at 1 ms."""
    def interleave(item, reference, **options):
        seen.append((item, reference, options))
        item.call(0)  # the file's runner really runs
        ratio = ratio_of_item()
        return {"ratio": {"median_ms": ratio, "ci_rel": 0.01, "runs": 10}, "reference": {"median_ms": 1.0},
                "item": {"median_ms": ratio}, "converged": True}
    return interleave


def test_an_onnx_file_is_timed_itself_with_no_prediction_when_there_is_no_bundle(onnx_file):
    v = ve.verify_export(onnx_file, passes=2, harness=QUICK)
    assert v.file == str(onnx_file) and v.arch == ARCH and v.backend == "onnxruntime" and v.bundle is None
    assert v.predicted_ms is None and v.ratio is None and v.verdict in (measure.NO_PREDICTION, measure.UNSTEADY)
    assert 0 < v.p10_ms <= v.measured_ms <= v.p90_ms and len(v.passes) == 2 and v.scale == "now"
    assert v.reason.startswith("no prediction to compare: this machine has no onnxruntime bundle at 1 thread(s)")
    assert v.reference.startswith("network:net_res32_") and "no bundle" in v.reference_source


def test_the_runtime_runs_the_file_not_a_rebuild(onnx_file, monkeypatch):
    from pynas import runtimes

    loaded = []
    real = runtimes.file_runner
    monkeypatch.setattr(runtimes, "file_runner", lambda name, path, threads=1: loaded.append((name, path)) or
                        real(name, path, threads))
    ve.verify_export(onnx_file, passes=2, interleave=fake_interleave(lambda: 0.5, []))
    assert loaded == [("onnxruntime", onnx_file)]


@pytest.mark.parametrize("factor, verdict", [(1.0, measure.OK), (1.5, measure.OVER)])
def test_a_bundle_of_the_runtime_is_compared(onnx_file, onnx_bundle, factor, verdict):
    from pynas.predictor import bundle

    predicted = float(bundle.load(onnx_bundle).predict(ex.parse_arch(ARCH)))
    seen = []
    v = ve.verify_export(onnx_file, str(onnx_bundle), passes=3, tolerance=0.1,
                         interleave=fake_interleave(lambda: factor * predicted, seen))
    assert v.bundle == "tiny-onnx" and v.predicted_ms == pytest.approx(predicted)
    assert v.measured_ms == pytest.approx(factor * predicted) and v.verdict == verdict and len(seen) == 3
    assert all(ref is seen[0][1] and ref.call is not None for _, ref, _ in seen)  # one reference, in onnxruntime


def test_a_torch_export_is_timed_in_pytorch_with_its_weights(tmp_path):
    path = tmp_path / "a.pt"
    assert ex.export(ARCH, "torch", path, seed=3).check.passed
    v = ve.verify_export(path, passes=2, interleave=fake_interleave(lambda: 0.5, []))
    assert v.backend == "torch" and v.arch == ARCH and v.verdict == measure.NO_PREDICTION
    net = ex.load_torch_export(path)
    run = ve.file_runner(ex.read_exported(path), 1)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    import torch

    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert np.abs(run(x) - want).max() <= 1e-4 * np.abs(want).max()  # the file's weights, BatchNorm folded


@pytest.mark.slow
def test_a_tflite_file_records_its_arch_and_is_timed_in_litert(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    path = tmp_path / "a.tflite"
    done = ex.export(ARCH, "tflite", path)
    assert done.check.passed and str(ex.read_exported(path).arch) == ARCH
    assert ex.read_exported(path).weights.startswith("initialised weights")
    v = ve.verify_export(path, passes=2, harness=QUICK)
    assert v.backend == "litert" and v.predicted_ms is None and v.measured_ms > 0


def bad_files(tmp_path, onnx_file):
    import onnx

    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not an onnx model")
    (tmp_path / "dir.onnx").mkdir()
    model = onnx.load(str(onnx_file))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    return {
        "notes.txt": "FILE NOTES: expected a file of `pynas export` (.pt, .onnx, .tflite), got the extension '.txt'",
        "missing.onnx": "FILE MISSING: expected a file, got nothing",
        "dir.onnx": "FILE DIR: expected a file, got a folder",
        "junk.onnx": "FILE JUNK: expected an ONNX model, got an unreadable file (DecodeError",
        "bare.onnx": "FILE BARE: expected the metadata pynas.arch `pynas export` records (the architecture), got "
                     "no metadata",
    }


@pytest.mark.parametrize("name", ["notes.txt", "missing.onnx", "dir.onnx", "junk.onnx", "bare.onnx"])
def test_bad_files_are_one_error_before_timing(onnx_file, tmp_path, monkeypatch, name):
    message = bad_files(tmp_path, onnx_file)[name]
    monkeypatch.setattr(measure, "interleaved_passes", lambda *a, **k: pytest.fail("timed"))
    with pytest.raises(ValueError) as caught:
        ve.verify_export(tmp_path / name)
    path = str(tmp_path / name)
    assert message.replace(message.split()[1].rstrip(":"), path, 1) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_corrupt_tflite_is_one_error(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    (tmp_path / "junk.tflite").write_bytes(b"\x00not a flatbuffer at all")
    with pytest.raises(ValueError, match=r"^FILE .*junk.tflite: expected a TFLite flatbuffer, got an unreadable file "
                                         r"\(ValueError: no TFL3 file identifier\)$"):
        ve.verify_export(tmp_path / "junk.tflite")


def test_a_file_the_runtime_cannot_run_and_a_missing_runtime(onnx_file, tmp_path, monkeypatch):
    from pynas import runtimes

    monkeypatch.setattr(measure, "interleaved_passes", lambda *a, **k: pytest.fail("timed"))
    model = __import__("onnx").load(str(onnx_file))
    model.metadata_props[0].value = ARCH.replace("res32", "res40")  # records another input size than it takes
    __import__("onnx").save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match=r"^FILE .*other.onnx: onnxruntime cannot run it on a 1x3x40x40 input"):
        ve.verify_export(tmp_path / "other.onnx")
    real = runtimes.unavailable
    monkeypatch.setattr(runtimes, "unavailable", lambda name: "onnxruntime needs onnxruntime (pip install "
                        "'pynas[onnx]')" if name == "onnxruntime" else real(name))
    with pytest.raises(ValueError, match=r"FILE .*a.onnx: its runtime onnxruntime is not installed here: .*"
                                         r"pip install 'pynas\[onnx\]'"):
        ve.verify_export(onnx_file)


def test_bundles_of_another_runtime_or_machine_and_other_threads(onnx_file, onnx_bundle, tiny_bundle, monkeypatch):
    monkeypatch.setattr(measure, "interleaved_passes", lambda *a, **k: pytest.fail("timed"))
    with pytest.raises(ValueError, match=r"^--predictor: expected a bundle of onnxruntime \(FILE .*a.onnx runs "
                                         r"there\), got bundle tiny of native"):
        ve.verify_export(onnx_file, str(tiny_bundle))
    with pytest.raises(ValueError, match=r"^--predictor: expected a bundle of onnxruntime .* got bundle "
                                         r"x86-avx512-litert of litert"):
        ve.verify_export(onnx_file, "x86-avx512-litert")
    with pytest.raises(ValueError, match=r"^--threads: expected the bundle's thread count \(1"):
        ve.verify_export(onnx_file, str(onnx_bundle), threads=2)
    with pytest.raises(ValueError, match=r"^--passes: expected an integer >= 2"):
        ve.verify_export(onnx_file, passes=1)


def test_a_bundle_of_the_runtime_made_elsewhere_is_refused(onnx_file, onnx_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(measure, "interleaved_passes", lambda *a, **k: pytest.fail("timed"))
    folder = tmp_path / "elsewhere"
    shutil.copytree(onnx_bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["device"]["l2_bytes"] = 12345
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"^--predictor: bundle tiny-onnx was made on .* not this machine"):
        ve.verify_export(onnx_file, str(folder))


def test_the_export_report_points_at_verifying_the_file(onnx_file, tmp_path):
    done = ex.export(ARCH, "torch", tmp_path / "b.pt")
    assert done.verify_hint().startswith(f"pynas verify {tmp_path / 'b.pt'} (in torch;")
    odd = ex.export(ARCH, "torch", tmp_path / "b.weights")
    assert "once renamed to .pt" in odd.verify_hint()
