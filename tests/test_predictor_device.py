"""Which machine a bundle describes: differences from this one, the mismatch warning, and this
machine's own bundles."""
import warnings

import pytest

from pynas.predictor import DeviceMismatchWarning, load
from pynas.predictor import device
from pynas.predictor.manifest import Manifest


def manifest(**changes) -> Manifest:
    values = dict(name="b", kind="xgboost", units="ms", features=[], backend="native", backend_version="v1",
                  threads=1, space=None, network_term={"scale": 1.0, "overhead_ms": 0.0}, libraries={}, files={},
                  created_at="", device={"cpu_model": "CPU X", "machine": "x86_64", "isa_flags": ["avx2", "fma"],
                                         "l1d_bytes": 32768, "l2_bytes": 524288, "l3_bytes": None})
    values.update(changes)
    return Manifest(**values)


HERE = {"cpu_model": "CPU X", "machine": "x86_64", "isa_flags": ["avx2", "fma"], "l1d_bytes": 32768,
        "l2_bytes": 524288, "l3_bytes": None, "logical_cores": 2, "device_id": "0123456789abcdef"}


def test_same_machine_has_no_differences():
    assert device.differences(manifest(), HERE, "v1") == []


def test_each_fingerprint_field_that_differs_is_named():
    other = manifest(device=dict(manifest().device, cpu_model="CPU Y", isa_flags=["avx2", "avx512f", "fma"],
                                 l2_bytes=1 << 20), threads=4)
    diffs = device.differences(other, HERE, "v2")
    assert diffs == ["cpu_model: bundle 'CPU Y', here 'CPU X'", "isa_flags: bundle has avx512f, here -",
                     "l2_bytes: bundle 1048576, here 524288", "native version: bundle v1, here v2",
                     "threads: bundle 4, here only 2 logical CPUs"]


def test_bundles_of_other_kinds_of_device_are_no_mismatch():
    phone = manifest(backend="tflite", device={"name": "pixel3"})
    assert not device.describes_a_host(phone) and device.differences(phone, HERE, "v1") == []
    assert device.describe(phone) == "pixel3, tflite"


def test_a_shipped_bundle_of_another_machine_warns_once_and_says_how_to_fix_it(monkeypatch):
    bundle = load("x86-avx512-native")
    monkeypatch.setattr(device, "_here", lambda: dict(HERE, cpu_model="Some Other CPU"))
    with pytest.warns(DeviceMismatchWarning, match=r"bundle x86-avx512-native describes another machine than this "
                                                   r"one \(cpu_model: bundle 'AMD EPYC', here 'Some Other CPU'.*"
                                                   r"pynas device init") as caught:
        bundle.predict("mnasnet-a1")
        bundle.predict_batch(["mnasnet-a1", "mnasnet-b1"])
    assert len(caught) == 1  # once per loaded bundle, not once per call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DeviceMismatchWarning)  # users filter it by its category
        load("x86-avx512-native").predict("mnasnet-a1")


def test_a_bundle_of_this_machine_does_not_warn(monkeypatch):
    bundle = load("x86-avx512-native")
    monkeypatch.setattr(device, "_here", lambda: dict(bundle.manifest.device, logical_cores=2))
    monkeypatch.setattr(device, "_backend_version_here", lambda backend: bundle.manifest.backend_version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bundle.predict("mnasnet-a1") > 0


def test_bundle_names_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert device.bundle_name("native", 1, HERE) == "cpu-x-avx2-native-012345"
    assert device.bundle_name("litert", 2, HERE) == "cpu-x-avx2-litert-2t-012345"
    assert device.default_bundle("native", 1, "0123456789abcdef") is None
    path = device.set_default("cpu-x-avx2-native-012345", "native", 1, "0123456789abcdef")
    assert path == tmp_path / "pynas" / "devices.json"
    assert device.default_bundle("native", 1, "0123456789abcdef") == "cpu-x-avx2-native-012345"
    assert device.default_bundle("native", 2, "0123456789abcdef") is None
    path.write_text("{not json")
    with pytest.raises(ValueError, match="devices.json: unreadable device defaults"):
        device.default_bundle("native", 1, "0123456789abcdef")
    path.write_text('{"x": 3}')
    with pytest.raises(ValueError, match="devices.json: expected"):
        device.default_bundle("native", 1, "0123456789abcdef")
