"""pynas.search.refine: a pick the model's bias left far under T starts a round of search at T / bias
(recorded in the log, resumable), then the verification runs again keeping what it measured;
no round when the pick is within 5% of T, when the model over-estimates, or when the budget or the
rounds say none. Measuring is faked (measured = ratio x predicted); the search is real."""
import json
import shutil
import sqlite3

import pytest

import pynas
from pynas.search import loop, refine, verification
from pynas.search.log import LogError, SearchLog
from pynas.search.reward import make_reward
from pynas.verify import measure


@pytest.fixture(scope="module")
def finished(tiny_bundle, tiny_search, tmp_path_factory):
    """A converging search (evolution) with no verification yet; each test refines a copy."""
    return tiny_search(tmp_path_factory.mktemp("refine"), tiny_bundle, "--target-quantile", "0.6", "--budget", "30",
                       "--strategy", "evolution", "--seed", "3")


@pytest.fixture
def run(finished, tmp_path):
    return shutil.copytree(finished, tmp_path / "run")


@pytest.fixture
def measuring(monkeypatch, fake_measurement):
    """measuring(ratio): measure.verify faked, every architecture measuring `ratio(predicted)` x its
    prediction; returns the list of calls' architectures."""
    def install(ratio):
        calls = []

        def fake(archs, predictor, *, predicted_ms, **options):
            calls.append(list(archs))
            return [fake_measurement(a, p, ratio(p) * p) for a, p in zip(archs, predicted_ms)]

        monkeypatch.setattr(verification, "verify", fake)
        return calls

    return install


def log_of(run):
    return SearchLog.open(run, pynas.__version__)


def record(pick_share=None, ratios=(1.06, 1.05, 1.07), verdicts=None, target=10.0, pick_rank=None):
    """A verification record: a first batch of candidates ranked 1.. measuring ratio x a prediction
    of T, a pick measuring pick_share x T (None: no pick), one of the batch unless pick_rank says."""
    candidates = [{"rank": i + 1, "arch": f"a{i}", "accuracy": 90.0 - i, "predicted_ms": target,
                   "measured_ms": r * target, "verdict": (verdicts or {}).get(i, measure.OK), "round": 0}
                  for i, r in enumerate(ratios)]
    corrections = [{"round": 0, "bias": 1.0, "ranks": [1, 2, 3][:len(ratios)]}]
    if pick_share is None:
        return {"candidates": candidates, "corrections": corrections, "pick": None}
    rank = pick_rank or 1
    pick = {"arch": f"a{rank - 1}" if rank <= len(ratios) else "far", "rank": rank, "accuracy": 70.0,
            "measured_ms": pick_share * target}
    return {"candidates": candidates, "corrections": corrections, "pick": pick}


def test_a_round_starts_only_when_the_pick_is_not_what_was_asked_and_the_model_under_estimates():
    assert refine.why_refine(record(0.97), 10.0) is None  # one of the best ranked, within 5% of T: done
    assert refine.why_refine(record(0.951), 10.0) is None
    assert "0.940 x T" in refine.why_refine(record(0.94), 10.0) and "up to 1.070x" in refine.why_refine(record(0.94), 10.0)
    assert "no architecture measured <= T" in refine.why_refine(record(None), 10.0)
    far = refine.why_refine(record(0.97, pick_rank=159), 10.0)  # in the band, but from far down the ranking
    assert "none of the 3 best ranked measured <= T (the pick is rank 159, accuracy 70.00 against 90.00)" in far
    assert refine.why_refine(record(0.8, ratios=(0.9, 0.95, 1.0)), 10.0) is None  # over-estimates: nothing to move
    assert refine.why_refine({"skipped": "--no-verify"}, 10.0) is None
    assert refine.why_refine({"candidates": [], "corrections": [], "pick": None}, 10.0) is None


def test_the_bias_is_the_largest_of_the_round_steady_candidates():
    r = record(0.9, ratios=(1.01, 1.015, 1.06))
    assert refine.round_bias(r) == pytest.approx(1.06)
    r["candidates"] += [{"rank": 40, "arch": "x", "measured_ms": 10.8, "predicted_ms": 10.0, "verdict": measure.OK,
                         "round": 0},  # a later batch of the same round counts
                        {"rank": 41, "arch": "y", "measured_ms": 13.0, "predicted_ms": 10.0, "verdict": measure.OK,
                         "round": -1}]  # an earlier round's does not
    assert refine.round_bias(r) == pytest.approx(1.08)
    unsteady = record(0.9, ratios=(1.5, 1.04, 1.06), verdicts={0: measure.UNSTEADY})
    assert refine.round_bias(unsteady) == pytest.approx(1.06)  # ranks 2 and 3, the steady ones
    all_unsteady = record(0.9, ratios=(1.5, 1.04), verdicts={0: measure.UNSTEADY, 1: measure.UNSTEADY})
    assert refine.round_bias(all_unsteady) == pytest.approx(1.5)
    assert refine.round_bias({"candidates": [], "corrections": []}) is None


def test_a_pick_far_under_t_searches_on_at_t_over_the_bias_and_verifies_again(run, measuring, monkeypatch):
    calls = measuring(lambda p: 1.25)
    # Any pick is "far under T": whether one lands within 5% depends on the run (the tiny bundle is
    # measured afresh each session); what follows a round is what is tested.
    monkeypatch.setattr(refine, "BAND", 1e-12)
    monkeypatch.setattr(verification, "BAND", 1e-12)  # the pick's band too: none is in it
    with log_of(run) as log:
        before, target = log.evaluated(), log.config["reward"]["target_ms"]
    rounds = []
    final = refine.close_loop(run, top=3, refine_budget=6, rounds=1, on_round=lambda why, e: rounds.append((why, e)))
    assert len(rounds) == 1 and rounds[0][1]["evaluations"] == 6 and rounds[0][1]["round"] == 1
    [entry] = final["refinements"]
    assert entry["bias"] == pytest.approx(1.25) and entry["target_ms"] == pytest.approx(target / 1.25)
    assert entry["from_evaluated"] == before and entry["until_evaluated"] == before + 6
    with log_of(run) as log:
        assert log.evaluated() == before + 6 and log.retargets == [entry]
        new = log.samples("WHERE status = 'done' AND cached = 0")[before:]
        reward = make_reward(log.config["reward"]["name"], entry["target_ms"])
        assert log.config["reward"]["target_ms"] == target  # T stays the user's
    assert len(new) == 6 and all(r.reward == pytest.approx(float(reward(r.accuracy, r.latency_ms))) for r in new)
    rounds_measured = [c["round"] for c in final["candidates"]]
    assert 0 in rounds_measured and 1 in rounds_measured  # the first round's measurements kept, not repeated
    assert sum(len(c) for c in calls) == len(final["candidates"]) == len({c["arch"] for c in final["candidates"]})
    assert [c["rank"] for c in final["candidates"]] == sorted(c["rank"] for c in final["candidates"])
    assert final["candidates"][0]["rank"] == 1 and final["arch"] == final["candidates"][0]["arch"]
    if final["pick"] is not None:
        assert final["pick"]["measured_ms"] <= target
        fitting = [c for c in final["candidates"] if c["fits"]]
        assert not any(c["in_band"] for c in fitting)  # so the first fit in rank order is the pick
        assert final["pick"]["rank"] == min(c["rank"] for c in fitting)
    assert json.loads((run / "verification.json").read_text()) == final


def test_no_round_without_budget_rounds_or_bias(run, measuring):
    measuring(lambda p: 1.25)
    with log_of(run) as log:
        before = log.evaluated()
    for options in ({"refine_budget": 0}, {"rounds": 0}):
        final = refine.close_loop(run, top=3, **options)
        assert final["refinements"] == [] and {c["round"] for c in final["candidates"]} == {0}
    measuring(lambda p: 0.8)  # the model over-estimates: the best under T fits, far under T
    final = refine.close_loop(run, top=3, refine_budget=6)
    assert final["refinements"] == [] and final["pick"]["rank"] == 1
    with log_of(run) as log:
        assert log.evaluated() == before and log.retargets == []


def test_no_round_after_a_strategy_that_ended_on_its_own(run, measuring, monkeypatch):
    measuring(lambda p: 1.25)
    monkeypatch.setattr(refine, "BAND", 1e-12)  # any pick would start a round
    with log_of(run) as log:
        before = log.evaluated()
    final = refine.close_loop(run, top=3, refine_budget=6, strategy_ended=True)
    assert final["refinements"] == [] and {c["round"] for c in final["candidates"]} == {0}
    with log_of(run) as log:
        assert log.evaluated() == before and log.retargets == []


def test_a_round_whose_strategy_ends_in_it_is_the_last(run, measuring, monkeypatch):
    measuring(lambda p: 1.25)
    monkeypatch.setattr(refine, "BAND", 1e-12)
    retarget = loop.retarget

    def ends(*args, **options):  # as darts spending its last epoch during the round
        from dataclasses import replace
        return replace(retarget(*args, **options), stop_reason=loop.STRATEGY_ENDED)

    monkeypatch.setattr(loop, "retarget", ends)
    final = refine.close_loop(run, top=3, refine_budget=6, rounds=3)
    assert len(final["refinements"]) == 1 and 1 in {c["round"] for c in final["candidates"]}


def test_the_default_round_is_a_quarter_of_the_evaluations_spent():
    assert refine.DEFAULT_ROUNDS == 3
    assert refine.default_budget(300) == 75 and refine.default_budget(1) == 1 and refine.default_budget(0) == 1


def test_a_killed_round_resumes_as_the_round(run, measuring):
    with log_of(run) as log:
        before, target = log.evaluated(), log.config["reward"]["target_ms"]

    def killed(log, rows):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.retarget(run, 0.9 * target, 1.1, 8, progress=killed)
    with log_of(run) as log:
        assert log.retargets[0]["until_evaluated"] == before + 8 and before < log.evaluated() < before + 8
    done = loop.resume(run)
    assert done.stop_reason == "budget" and done.evaluated == before + 8
    with log_of(run) as log:
        new = log.samples("WHERE status = 'done' AND cached = 0")[before:]
    reward = make_reward(done.config["reward"]["name"], 0.9 * target)
    assert all(r.reward == pytest.approx(float(reward(r.accuracy, r.latency_ms))) for r in new)
    # The verification after it is the round's: rounds already spent count against --refine-rounds.
    measuring(lambda p: 1.25)
    final = refine.close_loop(run, top=3, rounds=1)
    assert len(final["refinements"]) == 1 and {c["round"] for c in final["candidates"]} == {1}


def test_a_retarget_needs_evaluations(run):
    with pytest.raises(ValueError, match="evaluations: expected an integer >= 1, got 0"):
        loop.retarget(run, 1.0, 1.1, 0)
    with pytest.raises(ValueError, match="--refine-budget: expected an integer >= 0, got -1"):
        refine.close_loop(run, refine_budget=-1)


@pytest.mark.parametrize("value, message", [
    ('"[{\\"target_ms\\": 0}]"', "retargets[0].target_ms: expected a number > 0, got 0"),
    ('"{}"', "retargets: expected a JSON list, got dict"),
    ('"[1]"', "retargets[0]: expected an object, got int"),
    ('"[nope"', "retargets: expected a JSON list"),
])
def test_a_log_with_bad_retargets_is_refused_naming_the_field(run, value, message):
    with sqlite3.connect(run / "search.sqlite") as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('retargets', ?)", (value,))
    with pytest.raises(LogError, match=message.replace("[", r"\[").replace("]", r"\]")):
        log_of(run)


def test_within_a_round_its_own_measurements_set_the_next_batch(run, measuring):
    """Earlier rounds measured 1.3 x, the round aims at T / 1.02, its first batch measures 1.1 x: the
    first batch is drawn from under the aim (not T / 1.3: earlier rounds moved the aim already),
    the next from under T / 1.1 (its own measurements, not the aim nor the earlier rounds')."""
    from pynas.search.report import ranked_under_target

    calls = measuring(lambda p: 1.1)
    with log_of(run) as log:
        config, rows = log.config, ranked_under_target(log)
    target = config["reward"]["target_ms"]
    assert len(rows) >= 12
    # Ranks 1-3 predicted T / 1.03 (measure 1.068 T), 4-6 T / 1.05 (1.048 T), 7-9 T / 1.12 (fit),
    # 10-12 measured in an earlier round at 1.3 x.
    shares = [1.03] * 3 + [1.05] * 3 + [1.12] * 3 + [1.5] * 3
    ranked = [{**row, "latency_ms": target / share} for row, share in zip(rows, shares)]
    prior = [{**verification._candidate(rank, row, {"arch": row["arch"], "predicted_ms": row["latency_ms"],
                                                    "measured_ms": 1.3 * row["latency_ms"], "p10_ms": row["latency_ms"],
                                                    "p90_ms": row["latency_ms"], "verdict": measure.OK}, target),
              "round": 0} for rank, row in enumerate(ranked[9:], 10)]
    aim = {"target_ms": target / 1.02, "bias": 1.02, "evaluations": 1, "from_evaluated": 0, "until_evaluated": 1,
           "until_asked": 20}
    final = verification.verify_pick(run, config, ranked, top=6, prior=prior, round=1, refinements=[aim])
    assert [(c["bias"], c["ranks"]) for c in final["corrections"]] == [(pytest.approx(1.02), [1, 2, 3]),
                                                                       (pytest.approx(1.1), [7, 8, 9])]
    assert calls == [[r["arch"] for r in ranked[:3]], [r["arch"] for r in ranked[6:9]]]
    assert final["pick"]["rank"] == 7 and final["pick"]["round"] == 1
