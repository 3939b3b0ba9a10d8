"""Closing the loop at the end of a search: verify the pick, and when the latency model's bias left
it far under T, search on at T / bias and verify again (`pynas search --refine-budget N`).

    from pynas.search.refine import close_loop

    record = close_loop("runs/a", top=8, refine_budget=75)   # verification.json's record
    record["refinements"]        # [{"target_ms": 7.55, "bias": 1.059, "evaluations": 75, ...}]
    record["pick"]               # the verified pick, "round" 0 (the search) or 1, 2 (refinements)

Why. A search converges on architectures predicted just under T, and the most accurate of them are
those the latency model under-estimates most (the winner's curse): on this machine's bundle the top
three of 20 searches (T = 5..24 ms, MnasNet space) measured 1.02-1.10 x T. The verification then
walks down the ranking to the architectures predicted under T / bias, but a converged search holds
few of those: 270 of its 300 samples sat between T / bias and T, and the first fit in rank order was
an early random sample measuring 0.64-0.99 x T (7 of 20 within 5% of T). So the search itself is
corrected, as a one-point calibration of the model on the architectures it was about to ship: the
reward's target moves to T / bias (the largest measured / predicted among the round's
measurements; `round_bias` says why the largest) and the strategy goes on from its saved state for `refine_budget` more
evaluations (the evolution's feasibility repair and closest-to-target choice put its children just
under the new target at once), then the verification runs again, the earlier measurements kept
(`verification.verify_pick(prior=...)`).

A round is started only when it can help: the bias measured in the round is > 1 (a model that over-estimates leaves every architecture predicted under T a candidate
already; searching above T is not done), and the pick is missing, or measured under (1 - `BAND`) x T,
or not one of that first batch (the search's best all measured over T and the pick came from far down
the ranking: on this machine's T = 10 ms search, rank 159 of 300, 2.4 points of the proxy under
the best). At most
`rounds` rounds (`DEFAULT_ROUNDS`); each is recorded in the log before it starts (`SearchLog.retargets`)
so a killed round resumes as a round. T itself, the run's ranking and summary stay the user's.
"""
from __future__ import annotations

from pathlib import Path


from pynas.search import verification
from pynas.search.loop import STRATEGY_ENDED
from pynas.search.verification import BAND, DEFAULT_TOP, UNSTEADY, read
# Three: on this machine's 20 verify searches two rounds left 3 picks at 0.92-0.94 x T (each round
# aims at T / the largest bias the round before measured, and a round's own bias varies by a few
# percent); a third landed each of them within 5%.
DEFAULT_ROUNDS = 3
DEFAULT_SHARE = 0.25  # --refine-budget's default: this share of the evaluations the search spent


def default_budget(evaluated: int) -> int:
    """Evaluations of one refinement round when the user gave none."""
    return max(1, round(DEFAULT_SHARE * evaluated))


def first_batch(record: dict) -> list[dict]:
    """The candidates of the record's first batch: the best ranked its round measured (the search's
    own best in round 0, the refined search's best after a round)."""
    corrections, candidates = record.get("corrections") or [], record.get("candidates") or []
    if not corrections:
        return []
    ranks = set(corrections[0]["ranks"])
    return [c for c in candidates if c["rank"] in ranks and c.get("round", 0) == corrections[0].get("round", 0)]


def round_bias(record: dict) -> float | None:
    """The latency model's bias for the next round's aim: the largest measured / predicted of the
    steady candidates (all of them if none is steady) the record's round measured, or None without
    any. The largest, not the median: a search aimed at T / bias finds the architectures the model
    under-estimates most near there (the winner's curse again), and a converged round holds
    nothing between its aim and T to fall back on. On this machine at T = 7 ms a first batch
    measured 1.01, 1.015, 1.06 x its prediction; a round aimed at T / 1.015 (the median) found
    architectures measuring 1.05 x, the next at T / 1.047 ones measuring 1.07-1.09 x, and neither
    round's 8 fitted. Aiming a few percent low costs a few percent of latency; aiming high costs
    the round."""
    corrections = record.get("corrections") or []
    if not corrections:
        return None
    latest = corrections[0].get("round", 0)
    measured = [c for c in record.get("candidates") or [] if c.get("round", 0) == latest]
    steady = [c for c in measured if c["verdict"] != UNSTEADY] or measured
    if not steady:
        return None
    return float(max(c["measured_ms"] / c["predicted_ms"] for c in steady))


def why_refine(record: dict, target_ms: float) -> str | None:
    """The reason to start a refinement round, or None when it cannot help (see the module docstring)."""
    if "skipped" in record:
        return None
    bias, pick, batch = round_bias(record), record.get("pick"), first_batch(record)
    if bias is None or bias <= 1.0:
        return None
    under = f"the model under-estimated the architectures measured by up to {bias:.3f}x"
    if pick is None:
        return f"no architecture measured <= T; {under}"
    if pick["measured_ms"] < (1 - BAND) * target_ms:
        return f"the pick measured {pick['measured_ms'] / target_ms:.3f} x T (under {1 - BAND:g} x T); {under}"
    if pick["arch"] not in {c["arch"] for c in batch}:
        return (f"none of the {len(batch)} best ranked measured <= T (the pick is rank {pick['rank']}, accuracy "
                f"{pick['accuracy']:.2f} against {max(c['accuracy'] for c in batch):.2f}); {under}")
    return None


def close_loop(folder: Path | str, *, top: int = DEFAULT_TOP, adb=None, refine_budget: int | None = None,
               rounds: int = DEFAULT_ROUNDS, skip: str | None = None, execution=None, round_progress=None,
               on_round=None, strategy_ended: bool = False, **verify_options) -> dict:
    """Verify the run in `folder` and refine it as the module docstring says; the final record
    (also in verification.json). `refine_budget`: evaluations per round (None: `default_budget`
    of those spent; 0: no round); `on_round(reason, entry)` is called as a round starts (the CLI
    prints it); `round_progress(entry)`: a context manager giving the round's progress callback (as
    `loop.resume` takes); `execution`: as `loop.resume`; `verify_options`: `verify_pick`'s.
    `strategy_ended`: the search stopped because its strategy has no search left in it (its
    stop_reason `STRATEGY_ENDED`, as darts after its epochs): verified, never refined (a round
    would end at once); a round whose strategy ends in it is the last."""
    from contextlib import nullcontext

    import pynas
    from pynas.search import loop
    from pynas.search.log import SearchLog
    from pynas.search.report import ranked_under_target

    if refine_budget is not None and (isinstance(refine_budget, bool) or not isinstance(refine_budget, int)
                                      or refine_budget < 0):
        raise ValueError(f"--refine-budget: expected an integer >= 0, got {refine_budget!r}")
    with SearchLog.open(Path(folder), pynas.__version__) as log:
        config, ranked, retargets, evaluated = log.config, ranked_under_target(log), log.retargets, log.evaluated()
    earlier = read(folder) if retargets else None  # a resumed refinement keeps the measurements that drove it
    prior = (earlier or {}).get("candidates") if earlier and "skipped" not in earlier else None
    record = verification.verify_pick(folder, config, ranked, top=top, adb=adb, skip=skip, prior=prior, round=len(retargets),
                         refinements=retargets, **verify_options)
    budget = default_budget(evaluated) if refine_budget is None else refine_budget
    target = config["reward"]["target_ms"]
    ended = strategy_ended
    while skip is None and budget > 0 and len(retargets) < rounds and not ended:
        reason = why_refine(record, target)
        if reason is None:
            break
        bias = round_bias(record)
        entry = {"round": len(retargets) + 1, "target_ms": target / bias, "bias": bias, "evaluations": budget}
        if on_round is not None:
            on_round(reason, entry)
        with round_progress(entry) if round_progress is not None else nullcontext() as progress:
            ended = loop.retarget(folder, target / bias, bias, budget, progress=progress,
                                  execution=execution).stop_reason == STRATEGY_ENDED
        with SearchLog.open(Path(folder), pynas.__version__) as log:
            ranked, retargets = ranked_under_target(log), log.retargets
        record = verification.verify_pick(folder, config, ranked, top=top, adb=adb, prior=record["candidates"],
                             round=len(retargets), refinements=retargets, **verify_options)
    return record
