"""Where slimming's plan may go and what it does with a measurement (pynas/ship/plan_limits.py,
pynas/ship/plan_check.py): no segment below the widths the bundle was fitted on, counts in steps of
the lanes, and a plan measured over T planned again at T x predicted / measured."""
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from pynas.arch import parse
from pynas.ir.lower import lower
from pynas.ship import plan_check, plan_limits, slimming
from pynas.ship.channels import Layout
from pynas.space.catalogue import segments_of

# The stem and first stages at 112 px are where the Xeon's plan went to 8 channels, below the 32-wide
# stems and 12-20-wide first blocks its bundle was fitted on.
ARCH = "net_res224_cls1000:stem_k3_s2_c32:ds_r1_k3_s1_c24:ir_r2_k3_s2_e6_c40:ir_r2_k5_s2_e4_c64:head_c256"
SHIPPED = "x86-avx512-native"  # a bundle of another machine, with its measurements


class MacsOnly:
    name = "fake-macs-only"

    def predict(self, arch) -> float:
        return lower(arch).macs / 1e6

    def predict_batch(self, archs) -> list[float]:
        return [self.predict(a) for a in archs]


def _random_scores(layout, seed):
    rng = np.random.default_rng(seed)
    return ([rng.random(size) for size in layout.space_sizes],
            {layer.index: rng.random(layer.mid) for layer in layout.layers if layer.mid})


def _below(arch, minima) -> list[str]:
    """Segments of `arch` with a count below `minima`'s for their kind and input resolution."""
    out = []
    for seg in segments_of(arch):
        f = seg.features()
        fitted = minima.get((seg.kind, f["h"]))
        out += [f"{seg.id} {name} {f[name]}" for name in ("cin", "mid", "cout") if fitted and f[name] < fitted[name]]
    return out


def test_floors_keep_every_segment_at_or_above_the_fitted_widths():
    arch = parse(ARCH)
    minima = {("stem", 224): {"cin": 3, "mid": 3, "cout": 32}, ("dsconv", 112): {"cin": 32, "mid": 32, "cout": 12},
              ("mbconv", 112): {"cin": 12, "mid": 36, "cout": 16}, ("mbconv", 56): {"cin": 16, "mid": 64, "cout": 24},
              ("mbconv", 28): {"cin": 24, "mid": 72, "cout": 24}, ("head", 14): {"cin": 40, "mid": 40, "cout": 1000}}
    layout = Layout.of(arch)
    group_min, mid_min, notes = plan_limits.floors(layout, minima, 8)
    floored = layout.with_floors(group_min, mid_min)
    assert floored.group_min[layout.space_group[layout.stem_space]] == 32  # the stem keeps its 32 channels
    assert any("stem >= 32" in n for n in notes)
    predictor = MacsOnly()
    lowest_free = slimming.plan_widths(layout, _random_scores(layout, 0), predictor, 0.0)[0]
    assert _below(layout.apply(arch, lowest_free), minima)  # without floors the plan goes below them
    full = predictor.predict(arch)
    for seed, fraction in enumerate((0.0, 0.3, 0.6, 0.9)):
        widths, _, _ = slimming.plan_widths(floored, _random_scores(layout, seed), predictor, fraction * full)
        assert _below(layout.apply(arch, widths), minima) == [], (fraction, layout.apply(arch, widths))


def test_a_floor_never_widens_what_the_architecture_has_narrower():
    arch = parse(ARCH)
    layout = Layout.of(arch)
    group_min, mid_min, _ = plan_limits.floors(layout, {("stem", 224): {"cin": 3, "mid": 3, "cout": 48}}, 8)
    floored = layout.with_floors(group_min, mid_min)
    stem = layout.space_group[layout.stem_space]
    assert floored.group_min[stem] == layout.group_size[stem] == 32
    assert floored.minimum().counts[stem] == 32
    with pytest.raises(ValueError, match="^group_min: expected channel counts >= 1"):
        layout.with_floors({stem: 0}, {})


def test_no_measurements_no_floors_and_the_notes_say_so():
    layout = Layout.of(parse(ARCH))
    group_min, mid_min, notes = plan_limits.floors(layout, None, 8)
    assert (group_min, mid_min) == ({}, {}) and "no floors" in notes[0]
    assert plan_limits.fitted_minima(MacsOnly()) is None


def test_a_bundles_fitted_widths_come_from_its_measurements_and_bound_the_plan():
    pytest.importorskip("xgboost")
    from pynas.predictor import bundle as bundles
    from pynas.presets import resolve

    with warnings.catch_warnings():  # made on another machine: priced all the same
        warnings.simplefilter("ignore")
        bundle = bundles.load(SHIPPED)
        minima = plan_limits.fitted_minima(bundle)
        arch = resolve("mnasnet-a1")
        assert minima[("stem", 224)]["cout"] == 32  # the MnasNet space's stem: always 32 wide
        free, full = slimming.reachable_range(arch, bundle, within_fit=False)
        floor, full_again = slimming.reachable_range(arch, bundle)
        assert (math.isnan(free) or free < floor) and floor < full == full_again  # NaN: the bundle refuses so small
        layout, limits = slimming.planning_layout(arch, bundle)
        assert limits.within_fit and any(n.startswith("fitted widths: stem >= 32") for n in limits.notes)
        target = floor + 0.3 * (full - floor)
        widths, ms, _ = slimming.plan_widths(layout, _random_scores(layout, 0), bundle, target)
    assert ms <= target and _below(layout.apply(arch, widths), minima) == []


def test_lanes_set_the_steps_of_every_count():
    arch = parse(ARCH)
    layout = Layout.of(arch)
    predictor = MacsOnly()
    full = predictor.predict(arch)
    for fraction in (0.3, 0.6):
        widths, _, _ = slimming.plan_widths(layout, _random_scores(layout, 1), predictor, fraction * full, lanes=16)
        counts = list(widths.counts) + list(layout.mids(widths).values())
        originals = list(layout.group_size) + [layer.mid for layer in layout.layers if layer.mid]
        assert all(n % 16 == 0 or n == o for n, o in zip(counts, originals)), layout.apply(arch, widths)
    for bad in (7, 0, True, 8.0):
        with pytest.raises(ValueError, match="^lanes: expected one of 4, 8, 16, 32"):
            slimming.planning_layout(arch, predictor, lanes=bad)


# -- measured plans ------------------------------------------------------------------------------

def _plan(aim: float, predicted: float):
    return SimpleNamespace(pruned_arch=f"arch-for-{aim:.4f}", pruned_ms=predicted, planned_for_ms=aim)


@pytest.fixture
def here(monkeypatch):
    monkeypatch.setattr(plan_check, "cannot_measure", lambda predictor: None)


def test_a_plan_measured_over_t_is_planned_again_at_t_times_predicted_over_measured(here, fake_verify):
    aims = []

    def replan(aim):
        aims.append(aim)
        return _plan(aim, aim - 0.01)

    verify = fake_verify([1.06, 1.01])
    plan, record = plan_check.check_plan(_plan(8.0, 7.99), replan, "bundle", 8.0, verify=verify)
    # The fake's passes spread +-1%: that is the slack (the fake bundle says no repeatability).
    assert aims == [pytest.approx(8.0 * 7.99 / (7.99 * 1.06 * 1.01))]
    assert plan.planned_for_ms == aims[0] and record["fits"] and record["accepted_round"] == 1
    first, second = record["rounds"]
    assert first["measured_over_target"] == pytest.approx(7.99 * 1.06 / 8) and not first["fits"]
    assert second["fits"] and second["measured_ms"] <= 8.0 and second["planned_for_ms"] == aims[0]


def test_a_point_estimate_under_t_fits_only_with_its_slack(here, fake_verify):
    """Measured 0.99 x T with a 2.2% repeatability is not accepted: timed again it may land over T
    (the benchmark's plans accepted at 0.983 x T measured up to 1.020 x T later)."""
    bundle = SimpleNamespace(manifest=SimpleNamespace(extra={"report": {"repeatability": {"networks": {"median": 0.022}}}}))
    assert plan_check.repeatability(bundle) == 0.022
    aims = []

    def replan(aim):
        aims.append(aim)
        return _plan(aim, aim)

    verify = fake_verify([0.99 * 8.0 / 7.9, 1.0])
    plan, record = plan_check.check_plan(_plan(8.0, 7.9), replan, bundle, 8.0, verify=verify)
    first, second = record["rounds"]
    assert first["measured_ms"] == pytest.approx(7.92) and first["slack"] == 0.022 and not first["fits"]
    assert aims == [pytest.approx(8.0 * 7.9 / (7.92 * 1.022))]
    assert second["fits"] and second["upper_ms"] == pytest.approx(aims[0] * 1.022) and record["repeatability"] == 0.022


def test_when_no_plan_fits_the_least_measured_is_kept_and_the_record_says_so(here, fake_verify):
    verify = fake_verify([1.10, 1.08, 1.09])
    # Every re-plan predicted where the first was (a model blind to what the measurements say).
    plan, record = plan_check.check_plan(_plan(8.0, 8.0), lambda aim: _plan(aim, 8.0), "bundle", 8.0, verify=verify)
    assert not record["fits"] and len(record["rounds"]) == 3 and "none of the 3 measurements" in record["reason"]
    measured = [r["measured_ms"] for r in record["rounds"]]
    assert record["accepted_round"] == int(np.argmin(measured)) and plan.pruned_arch == record["rounds"][
        record["accepted_round"]]["arch"]
    assert "NOT within T" in plan_check.describe(record)


def test_a_tightened_target_out_of_reach_ends_the_rounds(here, fake_verify):
    def replan(aim):
        raise ValueError(f"planned_for_ms: expected at least 7.9 ms, got {aim:g}")

    plan, record = plan_check.check_plan(_plan(8.0, 8.0), replan, "bundle", 8.0, verify=fake_verify([1.05]))
    assert not record["fits"] and len(record["rounds"]) == 1 and "no plan reaches" in record["stopped"]


def test_an_unsteady_measurement_under_t_is_measured_again_not_replanned(here, fake_verify):
    verify = fake_verify([0.99, 0.99], verdicts=["too unsteady", "ok"])
    plan, record = plan_check.check_plan(_plan(8.0, 7.9), lambda aim: pytest.fail("re-planned"), "bundle", 8.0,
                                         verify=verify)
    assert record["fits"] and record["accepted_round"] == 1 and len(verify.calls) == 2


def test_another_machines_bundle_is_not_measured_and_the_record_says_why():
    pytest.importorskip("xgboost")
    from pynas.predictor import bundle as bundles

    bundle = bundles.load(SHIPPED)
    plan, record = plan_check.check_plan(_plan(3.0, 2.9), lambda aim: pytest.fail("re-planned"), bundle, 3.0,
                                         verify=lambda *a, **k: pytest.fail("measured"))
    assert plan.pruned_ms == 2.9 and "not this machine" in record["skipped"]
    assert plan_check.check_plan(_plan(3.0, 2.9), None, bundle, 3.0, rounds=0)[1] == {
        "skipped": "not measured (verify_rounds 0)"}
    assert "no bundle of a device" in plan_check.cannot_measure(MacsOnly())
    with pytest.raises(ValueError, match="^verify_rounds: expected an integer >= 0"):
        plan_check.check_plan(_plan(3.0, 2.9), None, bundle, 3.0, rounds=-1)


# -- the uniform baseline held to the same rule ------------------------------------------------------

class MacsOnly2:
    """A latency model: MACs / 1e7 ms (narrower is faster)."""

    def predict_batch(self, archs):
        from pynas.ir.lower import lower

        return np.array([lower(a).macs / 1e7 for a in archs])


def test_the_uniform_baseline_is_narrowed_while_it_measures_over_t(here, fake_verify):
    from pynas.presets import resolve
    from pynas.ship.netadapt import uniform_width_baseline

    a1, model = resolve("mnasnet-a1"), MacsOnly2()
    target = 0.8 * float(model.predict_batch([a1])[0])
    widest = uniform_width_baseline(a1, model, target)
    verify = fake_verify([1.06, 1.0])
    baseline, record = plan_check.measured_uniform(a1, model, target, verify=verify)
    first, second = record["rounds"]
    assert first["multiplier"] == widest.multiplier and not first["fits"] and record["fits"] and second["fits"]
    assert baseline.multiplier == second["multiplier"] < widest.multiplier
    aim = target * widest.predicted_ms / (widest.predicted_ms * 1.06 * 1.01)  # the fake's spread is the slack
    assert baseline.predicted_ms <= aim and baseline == uniform_width_baseline(a1, model, aim)
    assert plan_check.measured_uniform(a1, model, target, rounds=0)[1] == {"skipped": "not measured (verify_rounds 0)"}


def test_a_uniform_baseline_never_fitting_keeps_the_last_and_says_so(here, fake_verify):
    from pynas.presets import resolve

    a1, model = resolve("mnasnet-a1"), MacsOnly2()
    target = 0.8 * float(model.predict_batch([a1])[0])
    baseline, record = plan_check.measured_uniform(a1, model, target, rounds=2, verify=fake_verify([1.2, 1.5]))
    assert not record["fits"] and len(record["rounds"]) == 2 and "none of the 2 measurements" in record["reason"]
    assert baseline.multiplier == record["rounds"][-1]["multiplier"]


def test_the_uniform_baseline_of_another_machines_model_is_not_measured():
    from pynas.presets import resolve

    baseline, record = plan_check.measured_uniform(resolve("mnasnet-a1"), MacsOnly2(), 3.0,
                                                   verify=lambda *a, **k: pytest.fail("measured"))
    assert "no bundle of a device" in record["skipped"] and baseline.predicted_ms <= 3.0
