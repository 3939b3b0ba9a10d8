"""The network term: constrained fits (never a latency <= 0), validation of manifest values,
composition with a calibration."""
import itertools

import numpy as np
import pytest

from pynas.predictor.network_term import NetworkTerm, NetworkTermError, nonnegative_least_squares

SUMS = np.linspace(1, 10, 30)
WEIGHT_MB = np.linspace(3, 0.5, 30) ** 2


def approx_term(term: NetworkTerm, scale, overhead, weight):
    assert (term.scale, term.overhead_ms, term.weight_ms_per_mb) == pytest.approx((scale, overhead, weight), abs=1e-9)


def test_fit_recovers_a_physical_term():
    approx_term(NetworkTerm.fit(SUMS, 1.1 * SUMS + 0.3), 1.1, 0.3, 0.0)
    approx_term(NetworkTerm.fit(SUMS, 1.05 * SUMS + 0.02 * WEIGHT_MB + 0.1, WEIGHT_MB), 1.05, 0.1, 0.02)


def test_fit_keeps_scale_and_weight_physical_and_the_overhead_free():
    # A negative weight cost is not physical: the fit keeps it at 0.
    term = NetworkTerm.fit(SUMS, 1.05 * SUMS - 0.02 * WEIGHT_MB + 0.1, WEIGHT_MB)
    assert term.weight_ms_per_mb == 0.0 and term.scale > 0
    # The overhead is fitted freely (pynas's runner gives about -0.3 ms) and the range of the
    # networks it was fitted on is kept: a network far below it is refused, never priced <= 0.
    term = NetworkTerm.fit(SUMS, 0.98 * SUMS - 0.33, WEIGHT_MB)
    assert term.overhead_ms == pytest.approx(-0.33) and term.fitted_ms == pytest.approx((0.65, 9.47))
    assert term.check(term.network_ms(np.array([2.0]), np.array([0.0])))[0] > 0
    with pytest.raises(NetworkTermError, match=r"comes out at -0.2\d* ms: too far outside what the network term was "
                                               r"fitted on networks of 0.65-9.47 ms \(overhead -0.33 ms\)"):
        term.check(term.network_ms(np.array([0.1]), np.array([0.0])))


def test_nonnegative_least_squares_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=(12, 3)), rng.normal(size=12)
        x = nonnegative_least_squares(a, b)
        assert np.all(x >= 0)
        # no non-negative point on a fine grid does better
        grid = np.linspace(0, 3, 21)
        best = min(float(np.sum((a @ np.array(p) - b) ** 2)) for p in itertools.product(grid, grid, grid))
        assert float(np.sum((a @ x - b) ** 2)) <= best + 1e-9
        # with a free column: x >= 0, y any sign
        free = rng.normal(size=12)
        xy = nonnegative_least_squares(a[:, :2], b, free=free)
        best = min(float(np.sum((a[:, :2] @ np.array(p) + free * y - b) ** 2))
                   for p in itertools.product(grid, grid) for y in np.linspace(-3, 3, 41))
        assert np.all(xy[:2] >= 0) and float(np.sum((a[:, :2] @ xy[:2] + free * xy[2] - b) ** 2)) <= best + 1e-9


@pytest.mark.parametrize("field, value", [
    ("scale", float("nan")), ("scale", -1.0), ("scale", 0.0), ("scale", 1e308), ("scale", "1"), ("scale", True),
    ("overhead_ms", -1e7), ("overhead_ms", 1e308), ("fitted_ms", [2.0, 1.0]), ("fitted_ms", [1.0]), ("overhead_ms", float("inf")), ("weight_ms_per_mb", -0.1),
    ("segment_ms", float("nan")), ("group_scales", {"mbconv_k3": -1.0}), ("group_scales", [1.0]),
    ("group_offsets", {"": 0.1}), ("group_weight_ms_per_mb", {"stem": float("nan")}),
])
def test_from_json_refuses_unphysical_values(field, value):
    data = {"scale": 1.0, "overhead_ms": 0.1, field: value}
    with pytest.raises(NetworkTermError, match=rf"network_term\.{field}"):
        NetworkTerm.from_json(data)


def test_from_json_refuses_bad_shapes():
    for data, match in (([], "JSON object"), ({"overhead_ms": 0.0}, "scale"),
                        ({"scale": 1.0, "overhead_ms": 0.0, "bogus": 1}, "unknown field 'bogus'")):
        with pytest.raises(NetworkTermError, match=match):
            NetworkTerm.from_json(data)


def test_json_round_trip_and_group_terms():
    term = NetworkTerm(scale=0.9, overhead_ms=0.2, weight_ms_per_mb=0.05, group_scales={"stem": 1.1},
                       group_offsets={"mbconv_k3": 0.01}, fitted_ms=(1.0, 8.0))
    assert NetworkTerm.from_json(term.to_json()) == term
    assert term.group_scale("stem") == 1.1 and term.group_scale("head") == 0.9  # a group without its own: the scale
    assert term.group_offset("mbconv_k3") == 0.01 and term.group_offset("stem") == 0.0
    assert term.group_weight("stem") == 0.05
