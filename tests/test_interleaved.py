"""Interleaved ratio timing (cpp/profiling/interleaved.*): a slow spell that slows item and
reference alike leaves the ratio as it was; samples alternate and match in length; options."""
import time

import numpy as np
import pytest

from pynas import _core


def test_a_spell_that_slows_both_leaves_the_median_ratio():
    # Synthetic pairs: the item takes 2x the reference; for 45% of the pairs the machine is 30%
    # slower (both slow alike), plus 2% noise. The raw median carries the spell, the ratio not.
    rng = np.random.default_rng(0)
    state = np.where(np.arange(200) % 20 < 9, 1.3, 1.0)
    reference = 0.5 * state * rng.normal(1, 0.02, 200)
    item = 1.0 * state * rng.normal(1, 0.02, 200)
    s = _core.summarize_pairs(list(item), list(reference), 0.01)
    assert s["ratio"]["median_ms"] == pytest.approx(2.0, rel=0.01)
    assert s["item"]["median_ms"] > 1.02  # the raw time is pulled up by the spell
    assert s["ratio"]["runs"] == 200 and s["converged"] == (s["ratio"]["ci_rel"] <= 0.01)
    with pytest.raises(ValueError, match="as many reference samples as item samples"):
        _core.summarize_pairs([1.0, 2.0], [1.0], 0.01)
    with pytest.raises(ValueError, match="reference_ms: expected samples > 0"):
        _core.summarize_pairs([1.0], [0.0], 0.01)


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_fake_slow_spell_live_ratio_holds():
    # Item 400 us a call, reference 200 us; from the item's 40th call to its 120th both are 1.5x
    # slower (a spell: one clock for both). Pairs are item sample then reference sample of equal
    # length, so the spell covers both of a pair and the ratio stays 2.
    items = []
    slow = lambda: 1.5 if 40 <= len(items) < 120 else 1.0  # noqa: E731
    s = _core.time_interleaved(lambda i: (items.append(i), _busy(400e-6 * slow())), lambda i: _busy(200e-6 * slow()),
                               min_runs=150, max_runs=150, warmup_runs=3, warmup_seconds=0, inner=1)
    assert s["ratio"]["runs"] == 150 and s["item"]["runs"] == 150 and s["reference"]["runs"] == 150
    assert s["item"]["inner"] == 1 and s["reference"]["inner"] == 2  # the reference sample matches the item's
    # Wide bounds: busy waits on a shared machine; the point is that the spell's 1.5 cancels while
    # the raw item times show it.
    assert s["ratio"]["median_ms"] == pytest.approx(2.0, rel=0.1)
    spell = s["item"]["samples_ms"][40 - 3:120 - 3]  # the first 3 item calls were the warm-up
    assert np.median(spell) > 1.3 * np.median(s["item"]["samples_ms"][120:])
    assert s["ratio"]["samples_ms"] == pytest.approx(
        [a / b for a, b in zip(s["item"]["samples_ms"], s["reference"]["samples_ms"])])


def test_samples_alternate_and_the_shorter_call_repeats():
    calls = []
    s = _core.time_interleaved(lambda i: (calls.append("i"), _busy(30e-6)), lambda i: (calls.append("r"), _busy(300e-6)),
                               min_runs=5, max_runs=5, warmup_runs=2, warmup_seconds=0)
    inner, ref_inner = s["item"]["inner"], s["reference"]["inner"]
    assert inner >= 8 and ref_inner >= 1  # the 30 us item repeated to about one 300 us reference call
    warm = "ir" * 2  # warmup_runs pairs
    assert "".join(calls) == warm + ("i" * inner + "r" * ref_inner) * 5


def test_options_are_checked_and_named():
    with pytest.raises(ValueError, match="min_runs: expected an integer >= 3"):
        _core.time_interleaved(lambda i: None, lambda i: None, min_runs=1)
    with pytest.raises(TypeError, match="harness option 'pairs'"):
        _core.time_interleaved(lambda i: None, lambda i: None, pairs=3)


def test_network_measure_interleaved_checks_both_inputs():
    def net(c):
        n = _core.Network(1)
        x = n.input(8, 8, c)
        n.finalize(n.gap(x))
        return n
    a, b = net(4), net(8)
    xa, xb = [np.ones((8, 8, 4), np.float32)], [np.ones((8, 8, 8), np.float32)]
    s = a.measure_interleaved(xa, b, xb, min_runs=10, max_runs=10)
    assert s["ratio"]["runs"] == 10 and s["ratio"]["median_ms"] > 0 and s["reference"]["median_ms"] > 0
    with pytest.raises(ValueError, match=r"reference_inputs: expected arrays of shape \(8, 8, 8\)"):
        a.measure_interleaved(xa, b, xa)
    with pytest.raises(ValueError, match="inputs: expected at least one input image"):
        a.measure_interleaved([], b, xb)


def test_cpu_time_leaves_out_time_off_the_core():
    # A call that computes 300 us and then is off the core for 100 us or more (sleeping stands in for
    # being preempted by a neighbour's process): by CPU time it takes 300 us, by the wall clock more.
    def call(i):
        _busy(300e-6)
        time.sleep(100e-6)
    ref = lambda i: _busy(300e-6)  # noqa: E731
    by_cpu = _core.time_interleaved(call, ref, cpu_time=True, min_runs=30, max_runs=30, inner=1)
    by_wall = _core.time_interleaved(call, ref, min_runs=30, max_runs=30, inner=1)
    assert by_cpu["ratio"]["median_ms"] == pytest.approx(1.0, abs=0.25)
    assert by_wall["ratio"]["median_ms"] > 1.2
    assert 0 < by_cpu["item"]["cpu_share"] < 0.95 and by_cpu["reference"]["cpu_share"] > 0
    assert by_wall["item"]["cpu_share"] == -1
    assert _core.time_calls(call, cpu_time=True, min_runs=10, max_runs=10)["median_ms"] < 0.45


def test_cpu_time_of_work_off_the_calling_thread_is_an_error():
    with pytest.raises(RuntimeError, match="cpu_time: the timed calls ran mostly off the calling thread"):
        _core.time_interleaved(lambda i: time.sleep(5e-3), lambda i: _busy(300e-6), cpu_time=True, min_runs=10,
                               max_runs=10)
    with pytest.raises(RuntimeError, match="cpu_time: the timed calls ran mostly off the calling thread"):
        _core.time_calls(lambda i: time.sleep(5e-3), cpu_time=True, min_runs=10, max_runs=10)
