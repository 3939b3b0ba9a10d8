"""Adaptive sampling: measure next where the predictor is least sure (as nn-Meter does).

Where measuring every segment of a space is too slow (LiteRT converts each one: ~1.5 s a
segment), profiling starts from a random sample (`pynas profile --segments N`) and the predictor
prices the rest. Which segments to add next? `next_segments` trains a small committee of XGBoost
models on bootstrap resamples of what is measured and ranks the unmeasured segments by how much
the committee disagrees on them (the spread of their log-latency predictions), weighted by how
often a network of the space contains them; plus neighbours around the measured segments the
models miss most (cross-validated), so the regions where held-out error is high get more samples.
`pynas profile --adaptive ROUNDS` runs the loop: train, pick, measure, until the held-out network
targets hold or the rounds or budget are spent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pynas.predictor.train import Dataset, SegmentModel, load_dataset, train
from pynas.profiling.campaign import Advice
from pynas.profiling.configs import neighbour_segments
from pynas.space.catalogue import Item, space_items
from pynas.store import this_device

COMMITTEE = 5
TARGET_WITHIN10, TARGET_RMSPE = 99.0, 4.0  # the accuracy targets on held-out networks


@dataclass
class Pick:
    configs: list[Item]  # to measure next
    uncertain: int  # of them chosen by committee disagreement
    near_errors: int  # neighbours of badly predicted measured segments
    spread: float  # median committee spread (log ms std) of the uncertain picks


def _measured(data: Dataset) -> tuple[list[str], list[dict], np.ndarray]:
    """The measured segments' keys (sorted), features and ms."""
    keys = sorted(data.segments)
    return keys, [data.segments[k][1] for k in keys], np.array([data.segments[k][2] for k in keys])


def committee_spread(data: Dataset, candidates: dict[str, Item], *, members: int = COMMITTEE,
                     rounds: int = 200, seed: int = 0) -> dict[str, float]:
    """Std of log-ms predictions of `members` models trained on bootstrap resamples of the
    measured segments, per candidate key."""
    keys, feats, ms = _measured(data)
    cand_keys = list(candidates)
    cand_feats = [candidates[k].features for k in cand_keys]
    rng = np.random.default_rng(seed)
    logs = []
    for m in range(members):
        idx = rng.integers(0, len(keys), len(keys))
        model = SegmentModel(data.caches, {"rounds": rounds}).fit([feats[i] for i in idx], ms[idx], seed=seed + m)
        logs.append(np.log(model.predict(cand_feats)))
    spread = np.std(np.stack(logs), axis=0)
    return dict(zip(cand_keys, map(float, spread)))


def worst_predicted(data: Dataset, *, folds: int = 5, rounds: int = 200, seed: int = 0) -> dict[str, float]:
    """Cross-validated relative error of every measured segment (key -> |pred / measured - 1|)."""
    keys, feats, ms = _measured(data)
    fold = np.random.default_rng(seed).permutation(len(keys)) % folds
    errors = np.empty(len(keys))
    for f in range(folds):
        test = fold == f
        model = SegmentModel(data.caches, {"rounds": rounds}).fit(
            [x for x, t in zip(feats, test) if not t], ms[~test], seed=seed)
        errors[test] = np.abs(model.predict([x for x, t in zip(feats, test) if t]) / ms[test] - 1)
    return dict(zip(keys, map(float, errors)))


def next_segments(data: Dataset, space, n: int, *, near_share: float = 0.25, seed: int = 0,
                  usage: dict[str, float] | None = None) -> Pick:
    """`n` segments to measure next: (1 - near_share) of them the space's unmeasured segments the
    committee disagrees on most (weighted by `usage`: how often networks contain them, default
    1), the rest neighbours of the measured block segments with the largest cross-validated error."""
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    configs = space_items(space)
    unmeasured = {k: c for k, c in configs.items() if k not in data.segments}
    n_near = int(round(n * near_share)) if data.segments else 0
    n_uncertain = min(n - n_near, len(unmeasured))
    picks: list[Item] = []
    spread_median = 0.0
    if n_uncertain:
        spread = committee_spread(data, unmeasured, seed=seed)
        weight = usage or {}
        ranked = sorted(unmeasured, key=lambda k: -spread[k] * weight.get(k, 1.0))
        picks = [unmeasured[k] for k in ranked[:n_uncertain]]
        spread_median = float(np.median([spread[c.key] for c in picks]))
    near: list[Item] = []
    if n - len(picks) > 0 and data.segments:
        errors = worst_predicted(data, seed=seed)
        blocks = {k: c for k, c in configs.items() if k in data.segments and c.kind in ("mbconv", "dsconv", "convblock")
                  and c.segment.endswith(".0")}
        worst = sorted(blocks, key=lambda k: -errors[k])[: max(1, (n - len(picks)) // 2)]
        around = neighbour_segments({k: blocks[k] for k in worst}, n - len(picks), seed=seed)
        near = [c for k, c in around.items() if k not in data.segments]
    return Pick(picks + near, len(picks), len(near), spread_median)


class Advisor:
    """The advice `pynas.profiling.campaign.rounds` asks for: train on what the store holds for the
    backend's series on this device, report held-out network accuracy, and pick `round_size`
    segments to measure next (`next_segments`)."""

    def __init__(self, space, backend, store, *, round_size: int = 100, seed: int = 0, rounds: int = 300):
        if round_size < 1:
            raise ValueError(f"round_size: expected an integer >= 1, got {round_size}")
        self.space, self.backend, self.store = space, backend, store
        self.round_size, self.seed, self.xgb_rounds = round_size, seed, rounds

    def __call__(self, number: int):
        data = load_dataset(self.store, backend=self.backend.name, threads=self.backend.threads,
                            device_id=this_device().device_id, backend_version=self.backend.version)
        report = train(data, params={"rounds": self.xgb_rounds}).report
        r = report.get("heldout_networks")
        state = (f"{len(data.segments)} segments measured; held-out networks n={r['n']}: RMSPE {r['rmspe']:.2f}%, "
                 f"within 10% {r['within10']:.1f}%" if r else f"{len(data.segments)} segments, no networks measured yet")
        if targets_met(report):
            return Advice(state + f" (targets: >= {TARGET_WITHIN10:g}% within 10%, RMSPE < {TARGET_RMSPE:g}%)", True)
        pick = next_segments(data, self.space, self.round_size, seed=self.seed + number)
        why = (f"{pick.uncertain} where the committee disagrees most (median log-ms spread {pick.spread:.3f}), "
               f"{pick.near_errors} near the worst-predicted segments")
        return Advice(state, False, pick.configs, why)


def targets_met(report: dict) -> bool:
    r = report.get("heldout_networks")
    return bool(r) and r["within10"] >= TARGET_WITHIN10 and r["rmspe"] < TARGET_RMSPE
