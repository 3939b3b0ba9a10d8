"""One latency model per space: the fastest valid path, refusals with expected vs got, ms > 0."""
import numpy as np
import pytest

from pynas.predictor import BundleError, latency_model, load
from pynas.space import get_space


def test_compiled_table_path_for_the_bundle_s_own_space():
    model = latency_model("x86-avx512-native", "mnasnet", resolution=224)
    space = get_space("mnasnet")
    tokens = space.sample_tokens(5000, seed=3)
    ms = model.predict_batch(tokens)
    assert model.path == "table" and ms.dtype == np.float64 and np.all(ms > 0)
    np.testing.assert_allclose(ms, load("x86-avx512-native").predict_batch(tokens), rtol=1e-6)


def test_xgboost_path_for_another_resolution_of_the_space():
    model = latency_model("x86-avx512-native", "mnasnet", resolution=192)
    space = get_space("mnasnet", resolution=192)
    tokens = space.sample_tokens(300, seed=4)
    ms = model.predict_batch(tokens)
    assert model.path == "xgboost" and np.all(ms > 0)
    np.testing.assert_allclose(ms, load("x86-avx512-native").predict_batch([space.decode(t) for t in tokens]),
                               rtol=1e-4)
    # smaller inputs: faster networks
    assert np.median(ms) < np.median(latency_model("x86-avx512-native", "mnasnet").predict_batch(
        get_space("mnasnet").sample_tokens(300, seed=4)))


def test_table_bundles_price_only_their_own_space():
    assert latency_model("pixel3", "fbnet").path == "table"
    with pytest.raises(BundleError, match=r"space: expected mnasnet@224 .* got a table of fbnet@224"):
        latency_model("pixel3", "mnasnet")
    with pytest.raises(BundleError, match=r"space: expected fbnet@32 .* got a table of fbnet@224"):
        latency_model("pixel3", "fbnet", setting="cifar100")


def test_an_xgboost_bundle_refuses_a_space_of_op_types_it_never_measured():
    with pytest.raises(BundleError, match=r"space: expected a bundle that has measured fbnet@224's segments, got one "
                                          r"made for mnasnet@224"):
        latency_model("x86-avx512-native", "fbnet")


def test_space_objects_and_bad_arguments():
    space = get_space("mnasnet")
    assert latency_model(load("x86-avx512-litert"), space).path == "table"
    with pytest.raises(ValueError, match="resolution: expected the space's own \\(224\\) or none, got 160"):
        latency_model("x86-avx512-litert", space, resolution=160)
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        latency_model("x86-avx512-litert", "nope")
