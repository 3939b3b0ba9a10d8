"""NetAdapt's step rules (pynas.ship.netadapt) with a MACs latency model and a params evaluator,
and one small real run (a shipped bundle, proxy training on scikit-learn's digits)."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from pynas.arch import parse, scale_width
from pynas.ir.lower import lower
from pynas.presets import resolve
from pynas.search.evaluators import Evaluator, Outcome
from pynas.ship import netadapt

# MobileNetV3-Large: the stem is tied to the first stage (ds, stride 1, 16 -> 16, identity skip), and
# the three 80-wide stages to each other; MnasNet-A1: no ties (every stage changes width or stride).
V3 = resolve("mobilenetv3-large")
A1 = resolve("mnasnet-a1")


class MacsModel:
    """Latency = MACs / 1e7 ms: deterministic, and narrower is always faster."""

    def __init__(self):
        self.cache = {}

    def predict_batch(self, archs):
        for a in archs:
            if str(a) not in self.cache:
                self.cache[str(a)] = lower(a).macs / 1e7
        return np.array([self.cache[str(a)] for a in archs])

    def predict(self, arch):
        return float(self.predict_batch([arch])[0])


class ParamsEvaluator(Evaluator):
    """Accuracy from parameters (more is better, saturating); `fails(arch)` -> an error Outcome."""
    name = "params"

    def __init__(self, fails=lambda arch: False):
        self.fails, self.seen = fails, []

    def evaluate(self, candidates):
        self.seen += [c.arch for c in candidates]
        return [Outcome(None, error="diverged") if self.fails(c.arch) else
                Outcome(100 * (1 - math.exp(-lower(c.arch).params / 2e6))) for c in candidates]

    def fingerprint(self):
        return {"evaluator": "params"}


def _stage_widths(arch):
    return [s.channels for s in arch.stages]


def _shortcuts(arch) -> int:
    return sum(op.kind == "add" for op in lower(arch).ops)


def test_width_groups_follow_identity_shortcuts():
    groups = netadapt.width_groups(V3)
    assert [(g.stages, g.stem) for g in groups] == [((0,), True), ((1, 2), False), ((3,), False),
                                                    ((4, 5, 6), False), ((7,), False), ((8,), False), ((9,), False)]
    assert [(g.stages, g.stem) for g in netadapt.width_groups(A1)] == [((i,), False) for i in range(7)]
    # A pool shortcut keeping the shape ties too; a stage of 0 repeats is no block and ties nothing.
    arch = parse("net_res64_cls10:stem_k3_s2_c16:cn_r1_k3_s1_c16_poolskip:ir_r0_k3_s1_e3_c24:"
                 "ir_r1_k3_s1_e3_c16:head_c64")
    assert [(g.stages, g.stem) for g in netadapt.width_groups(arch)] == [((0, 2), True)]


def test_every_proposal_cuts_delta_and_is_the_least_such_shrink():
    model = MacsModel()
    start = model.predict(V3)
    delta = 0.01 * start
    proposals = netadapt.propose(V3, model, delta)
    stem_tied = {g.stages: g.stem for g in netadapt.width_groups(V3)}
    assert {p.kind for p in proposals} == {"channels", "expansion"}
    assert len({(p.kind, p.stages) for p in proposals}) == len(proposals)  # one per width group / ir stage
    for p in proposals:
        assert p.cut_ms >= delta and p.cut_ms == pytest.approx(start - model.predict(p.arch))
        assert p.after < p.before
        step = netadapt.WIDTH_STEP if p.kind == "channels" else netadapt.EXPANSION_STEP
        assert p.after % step == 0
        one_less = p.after + step  # the next wider grid value, unless it is the current one
        if one_less < p.before:
            field = "channels" if p.kind == "channels" else "expansion"
            value = int(one_less) if field == "channels" else one_less
            stages = list(p.arch.stages)
            for i in p.stages:
                stages[i] = dataclasses.replace(stages[i], **{field: value})
            stem = p.arch.stem
            if field == "channels" and stem_tied[p.stages]:
                stem = dataclasses.replace(stem, channels=value)
            assert start - model.predict(p.arch.replace(stages=tuple(stages), stem=stem)) < delta
        assert parse(str(p.arch)) == p.arch
    # A delta no grid value reaches: no proposal at all (rather than one that falls short).
    assert netadapt.propose(V3, model, start) == []


def test_residual_tied_widths_narrow_together():
    model = MacsModel()
    proposals = {(p.kind, p.stages): p for p in netadapt.propose(V3, model, 0.005 * model.predict(V3))}
    tied = proposals["channels", (4, 5, 6)]
    assert len({_stage_widths(tied.arch)[i] for i in (4, 5, 6)}) == 1
    assert _stage_widths(tied.arch)[4] == tied.after
    stem_tied = proposals["channels", (0,)]
    assert stem_tied.arch.stem.channels == stem_tied.arch.stages[0].channels == stem_tied.after
    for p in proposals.values():  # narrowing never removes (nor adds) a shortcut
        assert _shortcuts(p.arch) == _shortcuts(V3)
        lower(p.arch)


def test_a_shrink_that_would_add_a_shortcut_is_skipped():
    # Narrowing stage 0 to 8 would make stage 1 (stride 1, 8 -> 8) gain an identity shortcut.
    arch = parse("net_res64_cls10:stem_k3_s2_c16:ir_r1_k3_s2_e3_c16:ir_r1_k3_s1_e3_c8:head_c64")
    model = MacsModel()
    proposals = netadapt.propose(arch, model, 1e-9)
    assert ("channels", (0,)) not in {(p.kind, p.stages) for p in proposals}
    assert netadapt.smallest_arch(arch).stages[0].channels == 16


def _run(arch=A1, fails=lambda a: False, fraction=0.8, **options):
    model, judge, lines = MacsModel(), ParamsEvaluator(fails), []
    target = fraction * model.predict(arch)
    result = netadapt.adapt(arch, model, target, judge, log=lines.append, **options)
    return result, model, judge, lines


def test_each_step_keeps_the_best_ratio_and_stops_at_the_target():
    result, model, judge, lines = _run(delta_fraction=0.03)
    assert result.reached and result.stop == "target"
    assert result.predicted_ms <= result.target_ms < result.steps[-2].chosen.proposal.predicted_ms
    previous_accuracy, previous_ms = result.start_accuracy, result.start_ms
    for step in result.steps:
        for s in step.scored:
            assert s.ratio == pytest.approx((s.accuracy - previous_accuracy) / (previous_ms - s.proposal.predicted_ms))
        assert step.chosen.ratio == max(s.ratio for s in step.scored)
        previous_accuracy, previous_ms = step.chosen.accuracy, step.chosen.proposal.predicted_ms
    assert result.arch == result.steps[-1].chosen.proposal.arch
    assert model.predict(result.arch) == pytest.approx(result.predicted_ms)
    assert lines[0].startswith("start:") and len([x for x in lines if x.startswith("step ")]) == len(result.steps)
    assert result.to_json()["steps"][0]["chosen"]["change"] == result.steps[0].chosen.proposal.describe()


def test_failed_evaluations_are_skipped_not_scored_zero():
    # Every architecture with stage 6 narrower than 320 fails: never chosen, never a ratio.
    fails = lambda a: a.stages[6].channels < 320  # noqa: E731
    result, _, judge, lines = _run(fails=fails, delta_fraction=0.03)
    failed = [s for step in result.steps for s in step.scored if s.error is not None]
    assert failed and all(s.accuracy is None and s.ratio is None for s in failed)
    assert all(step.chosen.error is None for step in result.steps)
    assert result.arch.stages[6].channels == 320
    assert any("left out: evaluation failed: diverged" in line for line in lines)


def test_every_evaluation_failing_stops_short():
    result, *_ = _run(fails=lambda a: a != A1)
    assert not result.reached and result.stalled and result.stop == "all-failed" and result.steps == []
    with pytest.raises(netadapt.EvaluationError, match="starting architecture"):
        _run(fails=lambda a: True)


def test_max_steps_and_a_target_already_met():
    result, *_ = _run(max_steps=2)
    assert len(result.steps) == 2 and result.stop == "max-steps" and not result.stalled and not result.reached
    result, *_ = _run(fraction=1.0)
    assert result.steps == [] and result.reached and result.arch == A1


def test_unreachable_target_names_the_flag_before_any_evaluation():
    model, judge = MacsModel(), ParamsEvaluator()
    floor = model.predict(netadapt.smallest_arch(A1))
    assert all(s.channels in (8, 16) for s in netadapt.smallest_arch(A1).stages)
    with pytest.raises(ValueError, match=r"^--target-ms: .* below the smallest architecture NetAdapt reaches"):
        netadapt.adapt(A1, model, 0.9 * floor, judge)
    assert judge.seen == []
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="^--target-ms"):
            netadapt.adapt(A1, model, bad, judge)
    for bad in (0, 1, -0.1):
        with pytest.raises(ValueError, match="^--delta"):
            netadapt.adapt(A1, model, floor * 2, judge, delta_fraction=bad)


def test_uniform_baseline_is_the_widest_multiplier_that_fits():
    model = MacsModel()
    target = 0.6 * model.predict(A1)
    baseline = netadapt.uniform_width_baseline(A1, model, target)
    assert baseline.predicted_ms <= target and baseline.arch == scale_width(A1, baseline.multiplier)
    assert model.predict(scale_width(A1, baseline.multiplier + netadapt.UNIFORM_STEP)) > target
    with pytest.raises(ValueError, match="^--target-ms"):
        netadapt.uniform_width_baseline(A1, model, 1e-6)


def test_compare_with_uniform_scores_both_with_one_evaluator():
    model, judge = MacsModel(), ParamsEvaluator()
    target = 0.7 * model.predict(A1)
    figures = netadapt.compare_with_uniform(A1, model, target, judge, delta_fraction=0.03,
                                            measure=lambda a: model.predict(a))
    for name in ("netadapt", "uniform"):
        row = figures[name]
        assert row["predicted_ms"] <= target and row["measured_ms"] == pytest.approx(row["predicted_ms"])
        assert str(judge.seen[-2 if name == "netadapt" else -1]) == row["arch"]
    assert figures["accuracy_gain"] == pytest.approx(figures["netadapt"]["accuracy"] - figures["uniform"]["accuracy"])


def test_a_small_real_run_on_digits():
    """A shipped bundle prices the steps, 1-epoch proxy training on digits scores them (seconds)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    from pynas.predictor import bundle
    from pynas.search.evaluators import make_evaluator
    from pynas.space import get_space

    arch = parse("net_res224_cls10:stem_k3_s2_c16:ds_r1_k3_s1_c16:ir_r2_k3_s2_e4_c24:"
                 "ir_r2_k5_s2_e4_c40_se0.25:head_c256")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped bundle describes another machine
        model = bundle.load("x86-avx512-native")
        start = model.predict(arch)
        judge = make_evaluator("train:digits:1", get_space("mnasnet"),
                               options={"resolution": 16, "train_images": 400, "val_images": 200})
        result = netadapt.adapt(arch, model, 0.96 * start, judge, delta_fraction=0.02, max_steps=2)
    assert result.steps and all(0 <= s.chosen.accuracy <= 100 for s in result.steps)
    assert result.predicted_ms < start and parse(str(result.arch)) == result.arch


class RefusingModel(MacsModel):
    """Refuses (as a model bundle does far below its fitted range) any network under `floor_ms`;
    one refused row fails its whole batch."""

    def __init__(self, floor_ms):
        super().__init__()
        self.floor_ms = floor_ms

    def predict_batch(self, archs):
        ms = super().predict_batch(archs)
        if (ms < self.floor_ms).any():
            raise ValueError(f"a network comes out at {ms.min():.4g} ms: too far outside the fitted range")
        return ms


def test_shrinks_the_model_refuses_are_left_out_and_said():
    model, lines = RefusingModel(0.97 * MacsModel().predict(A1)), []
    start = model.predict(A1)
    proposals = netadapt.propose(A1, model, 0.01 * start, log=lines.append)
    assert proposals and all(p.predicted_ms >= model.floor_ms for p in proposals)
    assert len(lines) == 1 and "the latency model cannot price them (a network comes out at" in lines[0]
    # The narrowest architecture is refused: no target is ruled out before the run, which stops
    # when no shrink it prices cuts delta.
    assert netadapt.check_target(A1, model, 0.5 * start) is None
    result = netadapt.adapt(A1, model, 0.5 * start, ParamsEvaluator(), delta_fraction=0.02)
    assert result.stalled and result.stop == "no-proposal" and result.predicted_ms >= model.floor_ms


# -- measured rounds -----------------------------------------------------------------------------

@pytest.fixture
def here(monkeypatch):
    from pynas.ship import plan_check

    monkeypatch.setattr(plan_check, "cannot_measure", lambda predictor: None)


def test_a_network_measured_over_t_goes_on_down_to_t_times_predicted_over_measured(here, fake_verify):
    verify = fake_verify([1.07, 1.0])  # the model under-prices the first network reached by 7%
    result, model, _, lines = _run(delta_fraction=0.03, verify_rounds=3, verify=verify)
    first, second = result.rounds
    assert not first["fits"] and second["fits"] and result.measured_fits and result.stop == "target"
    # the aim: T x predicted / (measured x (1 + slack)), the slack the passes' +-1% spread
    assert first["next_aim_ms"] == pytest.approx(result.target_ms / (1.07 * 1.01))
    assert second["predicted_ms"] <= first["next_aim_ms"] < first["predicted_ms"]
    assert first["step"] < second["step"] == len(result.steps) and result.arch == model_arch(second)
    assert [c[1] for c in verify.calls] == [[first["predicted_ms"]], [second["predicted_ms"]]]
    assert any(line.startswith("going on down to") for line in lines)
    assert result.to_json()["rounds"] == result.rounds and result.to_json()["measured_fits"] is True


def model_arch(row):
    return parse(row["arch"])


def test_rounds_used_up_over_t_are_said_and_an_unsteady_fit_is_measured_again(here, fake_verify):
    result, *_ = _run(delta_fraction=0.03, verify_rounds=2, verify=fake_verify([1.1, 1.3]))
    assert len(result.rounds) == 2 and result.measured_fits is False and result.rounds[-1]["next_aim_ms"] is None
    assert "but measured" in result.stop_reason and "over T after 2 measurement(s)" in result.stop_reason
    verify = fake_verify([0.97, 0.97], ["too unsteady", "ok"])
    result, *_ = _run(delta_fraction=0.03, verify_rounds=3, verify=verify)
    first, second = result.rounds
    assert first["verdict"] == "too unsteady" and first["next_aim_ms"] == pytest.approx(result.target_ms)
    assert second["step"] == first["step"] and second["fits"]  # the same network, measured again


def test_nothing_is_measured_without_rounds_or_with_another_machines_model():
    result, *_ = _run(delta_fraction=0.03, verify=lambda *a, **k: pytest.fail("measured"))
    assert result.rounds == [] and result.rounds_skipped == "not measured (verify_rounds 0)"
    result, *_ = _run(delta_fraction=0.03, verify_rounds=3, verify=lambda *a, **k: pytest.fail("measured"))
    assert result.rounds == [] and "no bundle of a device" in result.rounds_skipped and result.measured_fits is None
    with pytest.raises(ValueError, match="verify_rounds: expected an integer >= 0"):
        _run(verify_rounds=-1)
