"""Ratio timing of profiling runs (pynas.profiling.steady) and how training reads it, with fakes:
no test here depends on how fast this machine is."""
import pytest

from pynas.profiling.steady import RatioTimer, Reference, fast_state, relative_differences


def interleaved(ratio, reference_ms, ci=0.001, raw=None):
    """A time_interleaved result: item / reference = ratio, the reference at reference_ms."""
    def stats(median):
        return {"median_ms": median, "mad_ms": 0.01 * median, "p10_ms": 0.99 * median, "p90_ms": 1.01 * median,
                "runs": 20, "ci_rel": ci, "inner": 1, "min_ms": 0.98 * median}
    return {"item": stats(raw or ratio * reference_ms), "reference": stats(reference_ms), "ratio": stats(ratio),
            "converged": True, "seconds": 0.1, "cpu": 1, "freq_mhz_before": -1, "freq_mhz_after": -1}


class Script:
    """Stands in for backends.time_interleaved: returns the scripted results in order."""

    def __init__(self, results):
        self.results, self.calls = list(results), []

    def __call__(self, item, reference, **options):
        self.calls.append((item, reference, options))
        return self.results[len(self.calls) - 1]


class Alone:
    def __init__(self, ms):
        self.ms = ms

    def measure(self, **options):
        return {"median_ms": self.ms}


HARNESS = {"target_rel_ci": 0.02}


def test_latency_is_the_ratio_times_the_reference_fast_state_whatever_the_spell():
    # The item is 3x the reference. The machine goes through a spell (reference 1.3 ms instead of
    # 1.0): the raw times follow it, the latencies do not.
    script = Script([interleaved(3.0, 1.0)] * 9 + [interleaved(3.0, 1.3)] * 5 + [interleaved(3.0, 1.0)] * 3)
    timer = RatioTimer({"segment": Reference("stem", Alone(0.9))}, state_limit=1.5, interleave=script)
    timer.calibrate({"segment": {}})
    assert timer.references["segment"].fast_ms == 0.9  # alone, until a pair has timed it
    stats, record = timer.measure("item", "segment", HARNESS)
    assert stats["median_ms"] == pytest.approx(3.0) and record["reference_fast_ms"] == 1.0  # pairs replace it
    medians, raws = [], []
    for _ in range(16):
        stats, record = timer.measure("item", "segment", HARNESS)
        medians.append(stats["median_ms"])
        raws.append(record["raw_median_ms"])
        assert record["timing"] == "ratio" and record["ratio"] == 3.0 and record["reference"] == "stem"
        assert not record.get("slow_spell")
    assert max(raws) == pytest.approx(3.9) and medians == pytest.approx([3.0] * 16)
    assert max(timer.states) == pytest.approx(1.3) and script.calls[0][1] is timer.references["segment"].timed


def test_extreme_states_are_flagged_unconverged_ratios_kept():
    script = Script([interleaved(2.0, 1.0)] * 10 + [interleaved(2.0, 1.6), interleaved(2.0, 1.4, ci=0.5)])
    timer = RatioTimer({"segment": Reference("stem", Alone(1.0))}, state_limit=1.5, interleave=script)
    timer.calibrate({"segment": {}})
    for _ in range(10):
        timer.measure("item", "segment", HARNESS)
    _, extreme = timer.measure("item", "segment", HARNESS)
    _, unsteady = timer.measure("item", "segment", HARNESS)
    assert extreme["slow_spell"] and extreme["state"] == pytest.approx(1.6)
    assert not unsteady.get("slow_spell") and unsteady["ratio_ci_rel"] == 0.5
    with pytest.raises(ValueError, match="state_limit: expected a number > 1, got 1"):
        RatioTimer({}, state_limit=1)


def test_fast_state_is_a_low_quantile_not_the_minimum():
    # One lucky time (0.9) among 1.0s would make every later state look 11% slow.
    assert fast_state([1.0] * 30 + [0.9] + [1.0] * 30) == 1.0
    assert fast_state([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]) == 1.0
    with pytest.raises(ValueError, match="times: expected at least one"):
        fast_state([])
    with pytest.raises(ValueError, match="reference stem: expected a time"):
        Reference("stem", Alone(1.0)).fast_ms


def test_relative_differences():
    r = relative_differences([(1.0, 1.1), (2.0, 2.0), (1.0, 0.95)])
    assert r["n"] == 3 and r["median"] == pytest.approx(0.05) and r["p90"] == pytest.approx(0.09)
    assert relative_differences([])["n"] == 0
