"""pynas.verify.measure: real verifications of small networks with the native backend and bundles of
this machine (tests/conftest.py's small store), the judging rule on synthetic passes, and the
refusals (another machine's bundle, a bundle without a fingerprint, adb missing or silent)."""
import gzip
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pynas.space import get_space
from pynas.verify.measure import OK, OVER, UNSTEADY, OverAdb, judge, verify

FAST = {"budget_seconds": 0.3, "min_runs": 10, "target_rel_ci": 0.05}
ARCHS = [str(a) for a in get_space("mnasnet", resolution=32).sample(2, seed=3)]


@pytest.fixture(scope="module")
def profiled_bundle(small_store, tmp_path_factory):
    """A bundle of this machine that ships its measurements (as `pynas device init` writes one)."""
    from pynas.predictor import bundle
    from pynas.predictor.predictors import MEASUREMENTS
    from pynas.predictor.train import load_dataset, train
    from pynas.store import Store, export_jsonl

    space = get_space("mnasnet", resolution=32)
    with Store(small_store, create=False) as store, tempfile.TemporaryDirectory() as tmp:
        data = load_dataset(store, backend="native")
        export_jsonl(store, Path(tmp) / MEASUREMENTS, backend="native", threads=1)
        measurements = (Path(tmp) / MEASUREMENTS).read_bytes()
    return bundle.save(tmp_path_factory.mktemp("bundles") / "here", train(data, params={"rounds": 20}, space=space),
                       data, space=space, extra_files={MEASUREMENTS: measurements})


def test_verify_times_ratios_to_the_profiled_reference_on_its_scale(profiled_bundle):
    from pynas.predictor import bundle

    results = verify(ARCHS, profiled_bundle, passes=3, harness=FAST)
    rows = []
    with gzip.open(profiled_bundle / "measurements.jsonl.gz", "rt") as f:
        next(f)
        import json
        rows = [json.loads(line) for line in f]
    network_refs = [r["harness"]["reference_ms"] for r in rows if r["kind"] == "network"]
    assert len(results) == 2
    for v, arch in zip(results, ARCHS):
        assert v.arch == arch and v.backend == "native" and v.threads == 1 and v.clock == "cpu"
        assert v.scale == "profiled" and v.reference_source == "the bundle's profiling run"
        assert v.reference_bundle_fast_ms == pytest.approx(np.percentile(network_refs, 10))
        assert v.predicted_ms == pytest.approx(bundle.load(profiled_bundle).predict(arch))
        assert len(v.passes) == 3 and all(p.ratio > 0 and p.pairs >= 10 for p in v.passes)
        clean = [p.ratio for p in v.passes if p.reference_ms <= 1.5 * v.reference_bundle_fast_ms] or \
            [p.ratio for p in v.passes]
        assert v.measured_ms == pytest.approx(np.median(clean) * v.reference_bundle_fast_ms)
        assert v.p10_ms <= v.measured_ms <= v.p90_ms and v.ratio == pytest.approx(v.measured_ms / v.predicted_ms)
        assert v.verdict in (OK, OVER, UNSTEADY) and v.raw_ms > 0 and v.now_ms > 0
        # Small networks of the bundle's own space: a bundle of this machine prices them within 50% (noisy VM).
        assert 0.5 < v.ratio < 2, v


def test_a_bundle_without_its_measurements_is_scaled_by_the_reference_now(tiny_bundle):
    [v] = verify(ARCHS[:1], tiny_bundle, passes=2, harness=FAST)
    assert v.scale == "now" and v.reference_bundle_fast_ms is None
    assert "stem network of the bundle's space (mnasnet@32)" in v.reference_source
    assert v.measured_ms == pytest.approx(v.now_ms) and "no profiled fast state" in v.reason


def test_verify_with_a_predicted_latency_given_compares_against_it(tiny_bundle):
    [v] = verify(ARCHS[:1], tiny_bundle, passes=2, harness=FAST, predicted_ms=[1000.0])
    assert v.predicted_ms == 1000.0 and v.verdict == OVER and v.ratio < 0.1


@pytest.mark.parametrize("predictor, message", [
    # Which fingerprint field differs first depends on the machine in hand (ISA flags, CPU model, caches).
    ("x86-avx512-native", "--predictor: bundle x86-avx512-native was made on AMD EPYC (avx512), native, not this "
                          "machine ("),
    ("nb201-pixel3", "--predictor: bundle nb201-pixel3 names its device (pixel3, tflite) without a fingerprint"),
])
def test_bundles_that_do_not_describe_this_machine_are_refused(predictor, message):
    with pytest.raises(ValueError) as caught:
        verify(ARCHS[:1], predictor, passes=2, interleave=lambda *a, **k: pytest.fail("timed"))
    assert message in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ({"passes": 1}, "--passes: expected an integer >= 2"),
    ({"tolerance": 0}, "--tolerance: expected a share in (0, 10)"),
])
def test_bad_options_are_refused(tiny_bundle, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        verify(ARCHS[:1], tiny_bundle, **options)


def test_adb_missing_or_silent_or_without_the_device_is_one_error_naming_adb(tiny_bundle, tmp_path):
    profiler = tmp_path / "pynas-profile"
    profiler.write_text("")
    with pytest.raises(ValueError, match=r"^--adb: adb: cannot run '/nonexistent/adb' \(not installed"):
        verify(ARCHS[:1], tiny_bundle, passes=2, adb=OverAdb("R5CT", profiler, adb="/nonexistent/adb"))
    silent = tmp_path / "adb"
    silent.write_text("#!/bin/sh\nsleep 30\n")
    silent.chmod(0o755)
    with pytest.raises(ValueError, match=r"^--adb: adb -s R5CT shell: no answer within 0.5 s"):
        verify(ARCHS[:1], tiny_bundle, passes=2, adb=OverAdb("R5CT", profiler, adb=str(silent), timeout=0.5))


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    root = tmp_path / "device"
    root.mkdir()
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_SERIAL", "FAKE0001")
    adb = tmp_path / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "fake_adb.py"}" "$@"\n')
    adb.chmod(0o755)
    return str(adb)


def test_a_device_adb_does_not_find_is_an_error_naming_adb(tiny_bundle, fake_adb, tmp_path):
    with pytest.raises(ValueError, match="^--adb: adb -s NOSUCH shell failed with exit status 1: adb: device 'NOSUCH' not found"):
        verify(ARCHS[:1], tiny_bundle, passes=2, adb=OverAdb("NOSUCH", tmp_path, adb=fake_adb))


def test_verify_over_a_fake_adb_device_runs_pynas_profile_with_the_reference(profiled_bundle, fake_adb, pynas_profile):
    [v] = verify(ARCHS[:1], profiled_bundle, passes=2, harness=FAST, adb=OverAdb("FAKE0001", pynas_profile, adb=fake_adb))
    assert v.device.startswith("FAKE0001 over adb") and v.scale == "profiled" and len(v.passes) == 2
    assert all(p.ratio > 0 and p.reference_ms > 0 for p in v.passes)
    assert 0.5 < v.ratio < 2, v


# -- the judging rule on synthetic passes ------------------------------------------------------------

def test_steady_passes_within_the_tolerance_are_ok():
    j = judge([1.0, 1.01, 0.99, 1.0, 1.02], [2.0] * 5, predicted_ms=2.1, fast_ms=2.0, bundle_fast_ms=2.0,
              tolerance=0.1)
    assert j["measured_ms"] == pytest.approx(2.0) and j["verdict"] == OK and j["steady"] and j["clean_passes"] == 5


def test_far_over_the_tolerance_is_over_even_when_noisy():
    j = judge([1.0, 1.3, 0.8, 1.1, 1.2], [2.0] * 5, predicted_ms=1.0, fast_ms=2.0, bundle_fast_ms=2.0, tolerance=0.1)
    assert not j["steady"] and j["verdict"] == OVER and j["ratio"] == pytest.approx(2.2)


def test_noise_across_the_tolerance_is_too_unsteady_to_judge():
    j = judge([1.0, 1.3, 0.8, 1.1, 1.2], [2.0] * 5, predicted_ms=2.2, fast_ms=2.0, bundle_fast_ms=2.0, tolerance=0.1)
    assert not j["steady"] and j["verdict"] == UNSTEADY and "uncertainty" in j["reason"]


def test_near_the_edge_a_steady_measurement_decides_by_its_point_estimate():
    j = judge([1.05, 1.06, 1.055], [2.0] * 3, predicted_ms=2.0, fast_ms=2.0, bundle_fast_ms=2.0, tolerance=0.05)
    assert j["steady"] and j["verdict"] == OVER  # 5.5% over, +-0.5% spread


def test_passes_in_an_extreme_state_are_dropped_and_too_many_make_it_unsteady():
    j = judge([1.0, 1.0, 1.0, 1.0], [2.0, 3.5, 3.5, 3.5], predicted_ms=2.0, fast_ms=2.0, bundle_fast_ms=2.0,
              tolerance=0.1)
    assert j["clean_passes"] == 1 and j["verdict"] == UNSTEADY and math.isinf(j["uncertainty"])
    assert "over 1.5x its fast state in 3 of 4 passes" in j["reason"]
    j = judge([1.0, 1.0, 1.0, 9.0], [2.0, 2.0, 2.0, 3.5], predicted_ms=2.0, fast_ms=2.0, bundle_fast_ms=2.0,
              tolerance=0.1)
    assert j["clean_passes"] == 3 and j["verdict"] == OK and j["measured_ms"] == pytest.approx(2.0)


def test_scaled_now_the_references_spread_adds_to_the_uncertainty():
    steady = judge([1.0] * 4, [2.0, 2.0, 2.0, 2.0], predicted_ms=2.0, fast_ms=2.0, bundle_fast_ms=None, tolerance=0.1)
    moving = judge([1.0] * 4, [2.0, 2.6, 2.0, 2.6], predicted_ms=2.0, fast_ms=2.0, bundle_fast_ms=None, tolerance=0.1)
    assert steady["uncertainty"] == 0 and steady["verdict"] == OK
    assert moving["uncertainty"] > 0.1 and moving["verdict"] == UNSTEADY


def test_nb201_cells_are_verified_as_their_networks_against_the_profiling_reference(tmp_path):
    """An nb201 bundle of this machine (pynas.predictor.cellnet) that ships its profiling run: cells
    (benchmark or network strings) are named as the benchmark names them, predicted by its lookup,
    and timed as their networks against the reference network the run used (real, short timing)."""
    from pynas.predictor import bundle, cellnet
    from pynas.predictor.predictors import MEASUREMENTS
    from pynas.profiling.backends import Backend
    from pynas.profiling.session import plan, run
    from pynas.store import Store, export_jsonl

    space = get_space("nb201")
    with Store(tmp_path / "m.sqlite") as store:
        run(plan(space, networks=3, seed=0), Backend("native"), store, harness=FAST, drift_tolerance=1e9)
        tokens = space.sample_tokens(60, seed=1)
        m = next(store.measurements(kind="network"))
        for t in np.unique(tokens, axis=0):  # enough networks to fit: made-up ratios in this machine's series
            ratio = 0.3 + 0.1 * float((t == 3).sum())
            store.record(m.context, type(m.op)(str(space.network(t)), "network", {}), m.stats,
                         harness={**m.harness, "ratio": ratio})
        data = cellnet.load_cells(store, space)
        export_jsonl(store, tmp_path / MEASUREMENTS)
    folder = cellnet.save_cells(tmp_path / "here", cellnet.train_cells(data, space, params={"rounds": 20}), data,
                                space, measurements=(tmp_path / MEASUREMENTS).read_bytes())
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    results = verify([cell, str(space.network("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"))],
                     folder, passes=2, harness=FAST)
    p = bundle.load(folder)
    assert [v.arch for v in results] == [cell, "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"]
    assert results[0].predicted_ms == pytest.approx(p.predict(cell))
    assert all(v.measured_ms > 0 and v.scale == "profiled" for v in results)
    assert results[0].reference == f"network:{space.reference_network()}"
    assert results[0].reference_source == "the bundle's profiling run"
