"""Rewards (pynas/search/reward.py): MnasNet's presets, TuNAS's absolute reward, bad input."""
import numpy as np
import pytest

from pynas.search.reward import DEFAULT, PRESETS, Reward, make_reward


def test_mnasnet_soft_reward_is_acc_times_latency_ratio_to_the_power_w():
    soft = make_reward("soft", 10.0)
    np.testing.assert_allclose(soft([70, 70], [5.0, 20.0]), [70 * 0.5 ** -0.07, 70 * 2.0 ** -0.07])


def test_hard_reward_is_flat_under_the_target_and_steep_above():
    hard = make_reward("hard", 10.0)
    np.testing.assert_allclose(hard([70, 70, 70], [2.0, 10.0, 20.0]), [70, 70, 35])


def test_v3_is_mobilenetv3s_exponent():
    assert make_reward("v3", 1.0).alpha == make_reward("v3", 1.0).beta == -0.15


def test_absolute_reward_peaks_at_the_target_on_both_sides():
    absolute = make_reward("absolute", 10.0)
    r = absolute([70, 70, 70], [5.0, 10.0, 15.0])
    np.testing.assert_allclose(r, [70 - 5.0, 70, 70 - 5.0])  # beta -0.10 per unit of |LAT/T - 1|, in points
    assert DEFAULT == "absolute"


def test_the_absolute_optimum_lands_near_the_target_where_soft_lands_far_below_it():
    """A space whose accuracy grows with log latency, latencies over three orders of magnitude (as
    NAS-Bench-201's): the soft reward's best is a fraction of T, the absolute reward's about T."""
    lat = np.geomspace(0.01, 40, 2000)
    acc = 40 + 3 * np.log(lat)
    t = 10.0
    soft_best = lat[np.argmax(make_reward("soft", t)(acc, lat))]
    absolute_best = lat[np.argmax(make_reward("absolute", t)(acc, lat))]
    assert soft_best < 0.6 * t and 0.9 * t <= absolute_best <= 1.3 * t


def test_failed_evaluations_give_nan_rewards():
    assert np.isnan(make_reward("soft", 1.0)([np.nan], [1.0])[0])


@pytest.mark.parametrize("build, message", [
    (lambda: make_reward("nope", 1.0), "reward: expected one of absolute, soft, hard, v3, got 'nope'"),
    (lambda: make_reward("soft", 0.0), "target_ms: expected a latency in ms > 0, got 0.0"),
    (lambda: make_reward("soft", float("nan")), "target_ms: expected a latency in ms > 0, got nan"),
    (lambda: make_reward("soft", 1.0, beta=0.5), "reward beta: expected a finite number <= 0, got 0.5"),
    (lambda: Reward("x", "linear", 1.0), "reward kind: expected 'mnasnet' or 'absolute', got 'linear'"),
])
def test_bad_rewards_are_refused(build, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        build()


def test_latencies_must_be_positive():
    with pytest.raises(ValueError, match="latency_ms: expected latencies > 0"):
        make_reward("soft", 1.0)([50], [0.0])


def test_presets_are_documented_in_the_module():
    import pynas.search.reward as module

    for name in PRESETS:
        assert f"``{name}``" in module.__doc__
