"""A slimming plan's network measured here before it is accepted, and planned again under a tightened
target while it measures over T.

    from pynas.ship.plan_check import check_plan
    plan, record = check_plan(plan, lambda aim: plan_pruning(model, arch, bundle, T, planned_for_ms=aim), bundle, T)
    record["rounds"]    # per round: planned_for_ms, arch, predicted_ms, measured_ms, p10/p90, verdict, fits
    record["fits"]      # the returned plan measured <= T (False: none of the rounds' plans did; `reason` says)
    record["skipped"]   # instead, when the bundle is not this machine's: why nothing was measured

Why. The plan is made on the latency model, and where it cuts deepest the model is least sure: the
Xeon's first plans measured 1.06 x T, a plan the model put at T. When the bundle describes the
machine in hand (`pynas.verify.measure.check_bundle`, as `pynas search` decides to verify its pick),
the planned network is timed as `pynas verify` times it (ratios to the bundle's profiling reference,
interleaved passes, on the scale the bundle was trained on). A plan fits when its measurement with
its slack, measured x (1 + slack), is <= T and the measurement is steady enough to judge; the slack
is the larger of the measurement's own spread over its passes ((p90 - p10) / 2 / measured) and the
bundle's network repeatability (the median relative difference between two measurements of a
network in its profiling run, `report.repeatability`: 2.2% on the Xeon's bundle). Why the slack:
with the point estimate alone (measured <= T) the benchmark's three accepted plans, measured at
0.983-0.987 x T, measured 0.999, 1.020 and 1.001 x T when timed again (bench/ship-results.md, slim).
A plan that does not fit is planned again to T x predicted / (measured x (1 + slack)) of the last
plan (its measured bias and the slack taken out of the target: strictly below the last plan's
prediction, so the plan changes), for up to `rounds` measurements; one too unsteady to judge under
T is measured again. The accepted plan is the first that fits; if none does, the one that measured
least, with `fits` False and the reason. A tightened target below what slimming reaches ends the
rounds (the reason says so).
"""
from __future__ import annotations

import math
from typing import Callable

from pynas.verify.measure import DEFAULT_PASSES, DEFAULT_TOLERANCE, UNSTEADY

DEFAULT_ROUNDS = 3  # measurements at most: on the Xeon one re-plan took the bias out (bench/ship-results.md, slim)


def cannot_measure(predictor) -> str | None:
    """Why plans cannot be measured against `predictor` here (None: they can): it has no device
    (a fake model), or its device is not this machine (`check_bundle`'s reason)."""
    from pynas.verify.measure import check_bundle

    if getattr(predictor, "manifest", None) is None:
        return f"{getattr(predictor, 'name', 'the latency model')} is no bundle of a device: nothing to measure on"
    try:
        check_bundle(predictor, None)
    except ValueError as error:
        return " ".join(str(error).removeprefix("--predictor: ").split())
    return None


def repeatability(predictor) -> float:
    """The bundle's network repeatability: the median relative difference between two measurements
    of a network in its profiling run (`report.repeatability.networks.median` in its manifest); 0
    when it has none (the measurement's own spread is then the slack)."""
    extra = getattr(getattr(predictor, "manifest", None), "extra", None) or {}
    value = (((extra.get("report") or {}).get("repeatability") or {}).get("networks") or {}).get("median")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else 0.0


def check_rounds(rounds) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"verify_rounds: expected an integer >= 0 (0: do not measure), got {rounds!r}")
    return rounds


def measure(arch, predicted_ms: float, predictor, target_ms: float, *, passes: int = DEFAULT_PASSES,
            verify=None) -> dict:
    """One measurement of `arch` here, judged by the rule: its fields (measured_ms, p10_ms, p90_ms,
    verdict), the slack (the larger of the passes' spread and the bundle's network repeatability),
    upper_ms = measured x (1 + slack), measured_over_target, and fits (upper <= T, steady).
    `verify` stands in for `pynas.verify.measure.verify` (tests)."""
    if verify is None:
        from pynas.verify.measure import verify
    [v] = verify([arch], predictor, passes=passes, tolerance=DEFAULT_TOLERANCE, predicted_ms=[predicted_ms])
    slack = max(repeatability(predictor), (v.p90_ms - v.p10_ms) / 2 / v.measured_ms)
    upper = v.measured_ms * (1 + slack)
    return {"measured_ms": v.measured_ms, "p10_ms": v.p10_ms, "p90_ms": v.p90_ms, "slack": slack, "upper_ms": upper,
            "measured_over_target": v.measured_ms / target_ms, "verdict": v.verdict,
            "fits": upper <= target_ms and v.verdict != UNSTEADY}


def next_aim(row: dict, predicted_ms: float, target_ms: float) -> float | None:
    """After a measurement (`measure`'s row) that does not fit: the predicted latency to aim at next,
    T x predicted / (measured x (1 + slack)), or None when it measured under T but too unsteady to
    judge (the same candidate is measured again)."""
    if row["verdict"] == UNSTEADY and row["measured_ms"] <= target_ms:
        return None
    return target_ms * predicted_ms / row["upper_ms"]


def _rounds(first, about: Callable[[object], tuple], replan: Callable[[float], object], predictor,
            target_ms: float, rounds: int, passes: int, verify) -> tuple[list, list[dict], tuple | None]:
    """The loop of measured rounds that plans and the uniform baseline share: measure the current
    candidate (`about(candidate)` -> (arch, predicted ms, the row's own fields)); stop at the first
    that fits; one too unsteady to judge under T is measured again; else `replan(T x predicted /
    (measured x (1 + slack)))` (a ValueError ends the rounds). Returns (the candidates measured, their
    rows, None or (round, aim, error text) when a re-plan failed)."""
    measured, rows, current = [], [], first
    for round in range(rounds):
        arch, predicted, fields = about(current)
        rows.append({"round": round, **fields, "arch": str(arch), "predicted_ms": predicted,
                     **measure(arch, predicted, predictor, target_ms, passes=passes, verify=verify)})
        measured.append(current)
        row = rows[-1]
        if row["fits"] or round == rounds - 1:
            break
        aim = next_aim(row, predicted, target_ms)
        if aim is None:
            continue
        try:
            current = replan(aim)
        except ValueError as error:
            return measured, rows, (round + 1, aim, " ".join(str(error).split()))
    return measured, rows, None


def check_plan(plan, replan: Callable[[float], object], predictor, target_ms: float, *,
               rounds: int = DEFAULT_ROUNDS, passes: int = DEFAULT_PASSES, verify=None):
    """(the accepted plan, the record) as the module docstring says. `plan`: a `PruningPlan` made
    for `target_ms`; `replan(aim)`: the plan for a tightened aim (ValueError if out of reach);
    `verify`: stands in for `pynas.verify.measure.verify` (tests)."""
    check_rounds(rounds)
    if rounds == 0:
        return plan, {"skipped": "not measured (verify_rounds 0)"}
    reason = cannot_measure(predictor)
    if reason is not None:
        return plan, {"skipped": reason}
    plans, rows, stopped = _rounds(plan, lambda p: (p.pruned_arch, p.pruned_ms, {"planned_for_ms": p.planned_for_ms}),
                                   replan, predictor, target_ms, rounds, passes, verify)
    record: dict = {"target_ms": float(target_ms), "passes": passes, "repeatability": repeatability(predictor),
                    "rounds": rows}
    if rows[-1]["fits"]:
        return plans[-1], {**record, "fits": True, "accepted_round": rows[-1]["round"]}
    if stopped is not None:
        record["stopped"] = f"round {stopped[0]}: no plan reaches {stopped[1]:.4g} ms ({stopped[2]})"
    best = min(range(len(rows)), key=lambda i: (rows[i]["verdict"] == UNSTEADY, rows[i]["measured_ms"]))
    unsteady = sum(r["verdict"] == UNSTEADY for r in rows)
    reason = f"none of the {len(rows)} measurements was <= T with its slack and steady" + (
        f" ({unsteady} too unsteady to judge)" if unsteady else "")
    if "stopped" in record:
        reason += f"; {record['stopped']}"
    return plans[best], {**record, "fits": False, "accepted_round": rows[best]["round"], "reason": reason}


def measured_uniform(arch, predictor, target_ms: float, *, rounds: int = DEFAULT_ROUNDS, passes: int = DEFAULT_PASSES,
                     verify=None):
    """The uniform width baseline held to the rule a plan is (a comparison at one target must hold
    both sides to one constraint): the widest multiplier predicted under `target_ms`
    (`uniform.uniform_width_baseline`), measured here; while it measures over T with its slack,
    the widest predicted under T x predicted / (measured x (1 + slack)), up to `rounds`
    measurements. (the baseline, a record as `check_plan`'s: "rounds" with each measurement and
    "fits", or "skipped" when nothing can be measured here). If none fits, the last (narrowest)."""
    from pynas.ship.uniform import uniform_width_baseline

    check_rounds(rounds)
    baseline = uniform_width_baseline(arch, predictor, target_ms)
    reason = "not measured (verify_rounds 0)" if rounds == 0 else cannot_measure(predictor)
    if reason is not None:
        return baseline, {"skipped": reason}
    baselines, rows, stopped = _rounds(baseline, lambda b: (b.arch, b.predicted_ms, {"multiplier": b.multiplier}),
                                       lambda aim: uniform_width_baseline(arch, predictor, aim), predictor, target_ms,
                                       rounds, passes, verify)
    record: dict = {"target_ms": float(target_ms), "passes": passes, "repeatability": repeatability(predictor),
                    "rounds": rows, "fits": rows[-1]["fits"]}
    if stopped is not None:
        record["stopped"] = f"round {stopped[0]}: {stopped[2]}"
    if not record["fits"]:
        record["reason"] = f"none of the {len(rows)} measurements was <= T with its slack and steady"
    return baselines[-1], record


def describe(record: dict) -> str:
    """The record in a line or a few, for `pynas slim`'s output."""
    if "skipped" in record:
        return f"not measured: {record['skipped']}"
    lines = []
    for r in record["rounds"]:
        lines.append(f"  round {r['round']}: planned for {r['planned_for_ms']:.4g} ms, predicted {r['predicted_ms']:.4g}, "
                     f"measured {r['measured_ms']:.4g} ms ({r['p10_ms']:.4g}..{r['p90_ms']:.4g}), "
                     f"{r['measured_over_target']:.3f} x T, with {100 * r['slack']:.1f}% slack {r['upper_ms']:.4g} ms, "
                     f"{r['verdict']}{', fits' if r['fits'] else ''}")
    accepted = record["rounds"][record["accepted_round"]]
    head = (f"measured here: round {record['accepted_round']}'s plan fits T ({accepted['measured_ms']:.4g} ms, "
            f"{accepted['upper_ms']:.4g} with its slack)"
            if record["fits"] else f"measured here: NOT within T, {record['reason']}; kept round "
                                   f"{record['accepted_round']}'s plan ({accepted['measured_ms']:.4g} ms)")
    return "\n".join([head, *lines])


__all__ = ["DEFAULT_ROUNDS", "cannot_measure", "check_plan", "check_rounds", "describe", "measure",
           "measured_uniform", "next_aim", "repeatability"]
