"""The timing harness (cpp/profiling/harness.*): statistics, stopping rules, options, pinning."""
import os
import time

import numpy as np
import pytest

from pynas import _core


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        x = rng.lognormal(0, 0.3, n)
        s = _core.summarize(list(x))
        assert s["runs"] == n
        assert s["median_ms"] == pytest.approx(np.median(x))
        assert s["p10_ms"] == pytest.approx(np.percentile(x, 10))
        assert s["p90_ms"] == pytest.approx(np.percentile(x, 90))
        assert s["mad_ms"] == pytest.approx(np.median(np.abs(x - np.median(x))))
        assert s["min_ms"] == pytest.approx(x.min()) and s["mean_ms"] == pytest.approx(x.mean())
        assert s["samples_ms"] == pytest.approx(list(x))


def test_median_ci_shrinks_with_more_samples():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 1, 4000)
    wide, narrow = _core.summarize(list(x[:40]))["ci_rel"], _core.summarize(list(x))["ci_rel"]
    assert narrow < wide
    # 95% CI of the median of N(10, 1): about 1.96 * 1.2533 / sqrt(n) / 10 relative half-width.
    assert narrow == pytest.approx(1.96 * 1.2533 / np.sqrt(4000) / 10, rel=0.35)


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_steady_calls_converge_quickly():
    s = _core.time_calls(lambda i: _busy(200e-6), target_rel_ci=0.05, budget_seconds=5)
    assert s["converged"] and s["ci_rel"] <= 0.05
    assert s["runs"] >= 10 and s["inner"] == 1
    assert 0.19 <= s["median_ms"] <= 0.6 and s["p10_ms"] <= s["median_ms"] <= s["p90_ms"]


def test_budget_ends_an_unstable_measurement():
    rng = np.random.default_rng(2)
    # Wildly varying call times never reach a 0.01% CI: the budget stops it, converged False.
    s = _core.time_calls(lambda i: _busy(rng.choice([20e-6, 400e-6])), target_rel_ci=1e-4, budget_seconds=0.2,
                         min_sample_seconds=0)
    assert not s["converged"] and 0.2 <= s["seconds"] < 2.0


def test_calls_get_rotating_indices_and_tiny_calls_are_batched():
    seen = []
    s = _core.time_calls(lambda i: seen.append(i), warmup_runs=2, warmup_seconds=0, max_runs=20, min_runs=10)
    assert seen == list(range(len(seen)))  # every call a new index: callers rotate buffers with it
    assert s["inner"] > 1  # a call of well under 50 us: many calls per sample
    assert len(seen) >= 2 + s["runs"] * s["inner"]


def test_max_runs_and_explicit_inner():
    s = _core.time_calls(lambda i: None, inner=3, min_runs=5, max_runs=5, target_rel_ci=1e-9)
    assert s["runs"] == 5 and s["inner"] == 3


@pytest.mark.parametrize("option,value,message", [
    ("min_runs", 2, "min_runs: expected an integer >= 3"),
    ("max_runs", 5, "max_runs: expected an integer >= min_runs"),
    ("target_rel_ci", 0, "target_rel_ci"),
    ("budget_seconds", -1, "budget_seconds"),
    ("warmup_runs", -1, "warmup_runs"),
    ("inner", -2, "inner"),
])
def test_bad_options_name_the_field(option, value, message):
    with pytest.raises(ValueError, match=message):
        _core.time_calls(lambda i: None, **{option: value})


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="harness option 'warmup'"):
        _core.time_calls(lambda i: None, warmup=3)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no affinity API")
def test_pinning_runs_on_the_core_and_restores_affinity():
    before = os.sched_getaffinity(0)
    core = max(before)
    s = _core.time_calls(lambda i: None, pin_cpu=core, max_runs=10)
    assert s["cpu"] == core
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError, match="pin_cpu: core 100000 out of range"):
        _core.time_calls(lambda i: None, pin_cpu=100000)
    with pytest.raises(ValueError, match="pin_cpu: cannot pin to core 1000 "):
        _core.time_calls(lambda i: None, pin_cpu=1000)


def test_frequency_is_reported_or_minus_one():
    f = _core.cpu_frequency_mhz(0)
    assert f == -1 or 100 < f < 10000


def test_network_measure_rotates_inputs():
    net = _core.Network(1)
    x = net.input(8, 8, 4)
    y = net.gap(x)
    net.finalize(y)
    images = [np.full((8, 8, 4), v, np.float32) for v in range(3)]
    s = net.measure(images, max_runs=10, min_runs=10)
    assert s["runs"] == 10 and s["median_ms"] > 0
    with pytest.raises(ValueError, match=r"inputs: expected arrays of shape \(8, 8, 4\)"):
        net.measure([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="at least one input"):
        net.measure([])
