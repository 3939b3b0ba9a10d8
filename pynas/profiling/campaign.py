"""Adaptive profiling: measure, ask an advisor what to measure next, measure that, until the
advisor is satisfied or the rounds run out.

Profiling sits below the predictors, so the advice is injected: `rounds(...)` calls
`advise(round_number)`, which trains on what the store holds and answers with an `Advice` (a line
saying how good the predictor is now, whether the targets hold, and the items to measure next).
`pynas.predictor.adaptive.Advisor` is the one pynas ships (a committee of XGBoost models: measure
where they disagree, and around the worst-predicted segments); `pynas profile --adaptive ROUNDS`
wires the two together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pynas.profiling.backends import Backend
from pynas.profiling.session import Report, plan, run
from pynas.space.base import SearchSpace
from pynas.space.catalogue import Item
from pynas.store import Store


@dataclass
class Advice:
    state: str  # one line: how the predictor does now, e.g. its held-out network accuracy
    done: bool  # the targets hold: nothing more to measure
    items: list[Item] = field(default_factory=list)  # what to measure next
    why: str = ""  # one line: how the items were chosen


def rounds(space: SearchSpace, backend: Backend, store: Store, advise: Callable[[int], Advice], *, count: int,
           seed: int = 0, log: Callable[[str], None] = print, make_progress=None, **run_options) -> list[Report]:
    """Up to `count` rounds of: advise, measure the advised items (with the plan's stem first, the
    drift reference), report. Stops when the advice says done, advises nothing, or a round is cut
    short (budget, interrupt). `run_options` go to `pynas.profiling.session.run`."""
    reports = []
    for number in range(1, count + 1):
        advice = advise(number)
        log(f"adaptive round {number}: {advice.state}")
        if advice.done:
            log("targets met: stopping")
            break
        if not advice.items:
            log("nothing left to measure: stopping")
            break
        log(f"  measuring {len(advice.items)} more: {advice.why}")
        work = plan(space, segments_sample=1, seed=seed, extra=advice.items)  # the stem (reference) + the advice
        progress = make_progress(len(work.items)) if make_progress else None
        report = run(work, backend, store, progress=progress.update if progress else None, **run_options)
        if progress:
            progress.close()
        log(report.summary())
        reports.append(report)
        if report.stopped_by != "done":
            break
    return reports
