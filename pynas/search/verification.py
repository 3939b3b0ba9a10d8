"""A search's pick measured at the end of the run: `verification.json` in the run folder.

    from pynas.search.log import SearchLog
    from pynas.search.report import ranked_under_target
    from pynas.search.verification import verify_pick

    with SearchLog.open(Path("runs/a"), pynas.__version__) as log:
        config, ranked = log.config, ranked_under_target(log, 8)
    record = verify_pick("runs/a", config, ranked)   # measured here when the run's bundle is this machine's
    record = verify_pick("runs/a", config, ranked, adb=OverAdb("R5CT1234", "build/profiler-aarch64/pynas-profile"))
    record["pick"]                                   # the verified pick, or None and record["no_pick"] says why

Why more than the best. The search picks, among the architectures predicted <= T, the most accurate,
which are the largest: those the latency model under-estimates most (the winner's curse). On this
machine's bundle the best under T measured 4-8% over T at T = 5..10 ms while architectures nobody
selected measured 0.99-1.0 x their prediction. So the loop is closed here: the architectures
predicted <= T, ranked as `report.summarise` ranks its best (accuracy, then predicted latency, then
sample), are measured with `pynas.verify.measure.verify` in rank order, `BATCH` at a time (their
passes interleave, so a slow spell of the machine touches them alike), against the latency the
search saw for each, until one measures within `BAND` under T, up to `top` measured (`pynas search --verify-top K`,
default `DEFAULT_TOP`). After each batch with no fit, the model's bias on these architectures (the
median measured / predicted so far, at least 1) moves the next batch down the ranking to the
architectures predicted under T / bias (`corrections` in the record): on this machine the top 8 of a
converged search were near-copies all measuring 5-9% over, so walking the ranking one by one never
left them. A candidate fits when its measured latency (the point estimate) is <= T and its verdict
is not "too unsteady" (a measurement too noisy to judge is not trusted to hold T; it is not timed
again). Accepted: the first in rank order that fits within `BAND` under T (measured in
[(1 - BAND) T, T], what was asked for); measuring goes on past a fit below the band, up to `top`,
and only when none of those measured is in the band is the first fit in rank order taken. Why:
the model's error per architecture (3-5% RMSPE, 10% tails) is as wide as the band, so the first fit
down the ranking was often an over-predicted one far under T: on the Xeon's 20 verify searches the
rank walk took picks at 0.839 and 0.895 x T while networks measuring 0.99 and 0.98 x T, 0.2-0.6
points of proxy accuracy below, had been measured (15 of 20 in the band by rank alone; with the
band first, 19 of 20 from the same measurements). Within a batch the better-ranked one wins, so
measuring its batch-mates costs time, never the pick.

The record: the top level is the best under T's own measurement (`measure.Verification`'s fields,
as `pynas verify` gives them, with `target_ms` and `measured_over_target`), then `top`, `batch`,
`candidates` (every architecture measured, in rank order: its verification's fields with `rank`
(1 = the best under T), `sample`, `accuracy`, `spread` ((p90 - p10) / 2 / measured),
`measured_over_target` and `fits`), and `pick`: the accepted candidate's `arch`, `rank`,
`sample`, `accuracy`, `predicted_ms`, `measured_ms`, `p10_ms`, `p90_ms`, `measured_over_target`,
`verdict`, or None with `no_pick` saying why ("none of the top K measured <= T"). `report.write`
puts the record into summary.json as `verification` and the pick as `verified_pick`, and writes
the pick as best.txt's first line when it differs from the best under T (the model to ship).

Refinement rounds (`pynas.search.refine`) call it again after searching on at T / bias, with the
earlier `prior` candidates: they keep their measurements (and `round`), are ranked again, and a
round measures up to `top` new ones, starting under T / the round's bias; `refinements` (the log's
retargets) are kept in the record.

It is measured only when the run's bundle describes the machine in hand (or an adb device is
given); otherwise the record says why not (`{"skipped": reason}`): a bundle of another machine, one
that names its device without a fingerprint (a phone's table: HW-NAS-Bench's NAS-Bench-201
lookups too), a space pynas neither lowers nor profiles whole (darts, nasnet, enas), no
architecture under T. NAS-Bench-201's picks are measured as their networks when the bundle is one
profiled here (`pynas calibrate --space nb201`, `pynas.predictor.cellnet`). The record is kept in its own file
so `pynas search --report` and `--resume` keep it (a resumed run measures again at its end): it
counts while its best under T is still the run's best.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pynas.verify.measure import DEFAULT_PASSES, DEFAULT_TOLERANCE, UNSTEADY, check_bundle, verify

VERIFICATION = "verification.json"
OTHER_MACHINE = "bundle made on another machine"
NO_FINGERPRINT = "bundle describes a device without a fingerprint of a machine pynas runs on"
DEFAULT_TOP = 8  # candidates measured at most (pynas search --verify-top)
BAND = 0.05  # a pick measured within this share under T is what was asked for (issue 14's +-5%)
BATCH = 3  # candidates measured together, their passes interleaved
PICK_FIELDS = ("arch", "rank", "sample", "accuracy", "predicted_ms", "measured_ms", "p10_ms", "p90_ms",
               "measured_over_target", "verdict", "round")


def read(folder: Path | str) -> dict | None:
    """The verification on record in run folder `folder`, or None."""
    path = Path(folder) / VERIFICATION
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: unreadable verification ({type(error).__name__}: {error}); remove it, the next "
                         f"--resume measures again") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def write(folder: Path | str, record: dict) -> dict:
    path = Path(folder) / VERIFICATION
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return record


def verify_pick(folder: Path | str, config: dict, ranked: list[dict], *, top: int = DEFAULT_TOP, adb=None,
                skip: str | None = None, passes: int | None = None, tolerance: float | None = None,
                harness: dict | None = None, prior: list[dict] | None = None, round: int = 0,
                refinements: list[dict] | None = None) -> dict:
    """Measure the run's architectures predicted <= T (`ranked`: best first, as
    `report.ranked_under_target` gives them; the run's `config`, its log's) as the module docstring
    says, write and return the record: `skip` records that reason instead (e.g. '--no-verify').

    A refinement round (`pynas.search.refine`) passes the earlier rounds' `prior` candidates: they
    are ranked again in `ranked`, count in the bias and may still be the pick, and are not measured
    again; this `round` measures up to `top` more, the best under T first if it is new, until one
    of its own fits, its batches drawn from under T / the round's bias at least (the last of
    `refinements`, the log's retargets, kept in the record)."""
    import warnings

    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"--verify-top: expected an integer >= 1, got {top!r}")
    if skip is not None:
        return write(folder, {"skipped": skip})
    if not ranked:
        return write(folder, {"skipped": "no architecture predicted under T"})
    best = ranked[0]
    from pynas.predictor import bundle as bundles
    from pynas.space import get_space

    space = get_space(config["space"]["name"], **config["space"]["options"])
    if not (space.lowerable or space.profiled_whole):
        return write(folder, {"skipped": f"{config['space']['name']} architectures are not networks pynas runs",
                              "arch": best["arch"]})
    with warnings.catch_warnings():  # a bundle of another machine warned when the search started
        warnings.simplefilter("ignore")
        try:
            predictor = bundles.load(config["predictor"]["bundle"])
        except ValueError as error:
            return write(folder, {"skipped": f"bundle unreadable: {error}", "arch": best["arch"]})
    if predictor.manifest.files != config["predictor"]["files"]:
        return write(folder, {"skipped": f"bundle {predictor.name} changed since the search (its files' hashes "
                                         f"differ from the run's record)", "arch": best["arch"]})
    try:
        check_bundle(predictor, adb)
    except ValueError as error:
        reason = NO_FINGERPRINT if "without a fingerprint" in str(error) else OTHER_MACHINE
        return write(folder, {"skipped": reason, "detail": str(error), "arch": best["arch"]})
    target = config["reward"]["target_ms"]
    ranks = {row["arch"]: rank for rank, row in enumerate(ranked, 1)}
    candidates = [{**c, "round": c.get("round", 0), "rank": ranks[c["arch"]]} for c in prior or [] if c["arch"] in ranks]
    corrections, measured, in_band_now = [], {c["arch"] for c in candidates}, False
    own = [c for c in candidates if c["round"] == round]  # this round's measurements
    aim = refinements[-1]["bias"] if refinements else 1.0
    while len(own) < top and not in_band_now:
        # The latency model's bias on these architectures, as this round measured it: the next
        # batch is drawn from those predicted under T / bias, never above the round's aim (all
        # under T in round 0 before anything was measured). A round's own measurements say more
        # than the earlier rounds' (its search found architectures the model under-estimates
        # more); those earlier ones are what moved its aim.
        bias = max(_bias(own), aim)
        batch = [(rank, row) for rank, row in enumerate(ranked, 1)
                 if row["arch"] not in measured and (row["latency_ms"] * bias <= target or rank == 1)]
        batch = batch[:min(BATCH, top - len(own))]
        if not batch:
            break
        corrections.append({"round": round, "bias": bias, "predicted_limit_ms": target / bias,
                            "ranks": [r for r, _ in batch]})
        try:
            results = verify([r["arch"] for _, r in batch], predictor, predicted_ms=[r["latency_ms"] for _, r in batch],
                             adb=adb, harness=harness, passes=passes or DEFAULT_PASSES,
                             tolerance=tolerance or DEFAULT_TOLERANCE)
        except ValueError as error:  # e.g. the adb device went away during the search: the results stand
            return write(folder, {"skipped": f"measuring failed: {error}", "arch": best["arch"],
                                  "candidates": candidates})
        for (rank, row), v in zip(batch, results):
            own.append({**_candidate(rank, row, v.to_json(), target), "round": round})
            candidates.append(own[-1])
            measured.add(row["arch"])
            in_band_now = in_band_now or own[-1]["in_band"]
    candidates.sort(key=lambda c: c["rank"])
    # Earlier rounds' candidates of a run verified before the band existed have no "in_band".
    in_band = [c for c in candidates if c.get("in_band", c["fits"] and c["measured_ms"] >= (1 - BAND) * target)]
    pick = min(in_band, key=lambda c: c["rank"], default=None) or \
        min((c for c in candidates if c["fits"]), key=lambda c: c["rank"], default=None)
    record = {**{k: v for k, v in candidates[0].items()
                 if k not in ("rank", "sample", "accuracy", "spread", "fits", "round")},
              "top": top, "batch": BATCH, "candidates": candidates, "corrections": corrections,
              "refinements": list(refinements or []),
              "pick": None if pick is None else {k: pick[k] for k in PICK_FIELDS}}
    if pick is None:
        record["no_pick"] = _no_pick(candidates, len(ranked), top)
        if len(candidates) < min(top, len(ranked)):  # the bias ruled out the rest
            record["no_pick"] += (f"; no other architecture is predicted under T / {_bias(candidates):.3f} "
                                  f"(the measured bias) = {target / _bias(candidates):.3f} ms")
    return write(folder, record)


def _bias(candidates: list[dict]) -> float:
    """Median measured / predicted over the candidates measured so far (the steady ones, if any),
    at least 1: a model found to under-estimate these architectures moves the next batch down the
    ranking to those predicted under T / bias; one that over-estimates changes nothing (every
    architecture predicted under T is a candidate already)."""
    judged = [c for c in candidates if c["verdict"] != UNSTEADY] or candidates
    if not judged:
        return 1.0
    return max(1.0, float(np.median([c["measured_ms"] / c["predicted_ms"] for c in judged])))


def _candidate(rank: int, row: dict, verification: dict, target: float) -> dict:
    measured = verification["measured_ms"]
    # The point estimate holds T, and the measurement is steady enough to be judged.
    fits = measured <= target and verification["verdict"] != UNSTEADY
    return {"rank": rank, "sample": row["sample"], "accuracy": row["accuracy"], **verification,
            "target_ms": target, "measured_over_target": measured / target,
            "spread": (verification["p90_ms"] - verification["p10_ms"]) / 2 / measured,
            "fits": fits, "in_band": fits and measured >= (1 - BAND) * target}


def _no_pick(candidates: list[dict], under: int, top: int) -> str:
    unsteady = sum(c["verdict"] == UNSTEADY for c in candidates)
    noise = f" ({unsteady} of them too unsteady to judge)" if unsteady else ""
    if len(candidates) < top:
        return f"none of the {len(candidates)} architectures predicted under T measured <= T{noise}"
    return f"none of the top {top} measured <= T{noise}"


def on_record(folder: Path | str, best: dict | None) -> dict | None:
    """What summary.json says about verification: the record if it is of the current best (or a
    skip without an architecture), a note if the best changed since, None if never verified."""
    record = read(folder)
    if record is None:
        return None
    arch = record.get("arch")
    if arch is None or (best is not None and arch == best["arch"]):
        return record
    return {"skipped": "the verification on record is of an earlier best (resume or verify the run again)",
            "arch": arch}


def verified_pick(record: dict | None) -> dict | None:
    """The run's verified pick in `record` (as `on_record` gives it), or None."""
    if record is None or "skipped" in record:
        return None
    return record.get("pick")


def text(record: dict | None) -> str:
    """The text report's lines: the best under T's measurement, the candidates measured, the pick."""
    from pynas import ui

    if record is None:
        return ""
    if "skipped" in record:
        return f"verification: skipped ({record['skipped']})"
    spread = f"p10..p90 {record['p10_ms']:.4g}..{record['p90_ms']:.4g}"
    lines = [f"verified on {record['device']}: the best under T predicted {record['predicted_ms']:.4g} ms, measured "
             f"{record['measured_ms']:.4g} ms ({spread}; {record['clean_passes']} clean of {len(record['passes'])} "
             f"passes), measured/predicted {record['ratio']:.3f}, measured/T {record['measured_over_target']:.3f}: "
             f"{record['verdict']} at +-{100 * record['tolerance']:g}%", f"  {record['reason']}"]
    candidates = record.get("candidates")
    if not candidates:  # a record written before picks were verified
        return "\n".join(lines)
    rows = [[str(c["rank"]), str(c.get("round", 0)), f"{c['accuracy']:.2f}", f"{c['predicted_ms']:.4g}",
             f"{c['measured_ms']:.4g}", f"{c['p10_ms']:.4g}..{c['p90_ms']:.4g}", f"{c['measured_over_target']:.3f}",
             c["verdict"], "yes" if c["fits"] else "no", _short(c["arch"])] for c in candidates]
    lines += [f"measured in rank order (up to the top {record['top']} a round, {record['batch']} at a time) until one "
              f"measures <= T and is steady enough to judge:",
              ui.table(["rank", "round", "accuracy", "predicted ms", "measured ms", "p10..p90", "measured/T", "verdict",
                        "fits", "architecture"], rows, right={0, 1, 2, 3, 4, 5, 6})]
    for i, r in enumerate(record.get("refinements") or [], 1):
        lines.append(f"refinement {i}: the model under-estimated the best ranked by {r['bias']:.3f}x: searched on at "
                     f"T / {r['bias']:.3f} = {r['target_ms']:.4g} ms for {r['evaluations']} evaluations "
                     f"(samples {r['from_evaluated'] + 1}..{r['until_evaluated']}), then verified again")
    pick = record.get("pick")
    if pick is None:
        lines.append(f"verified pick: none ({record['no_pick']}); best.txt keeps the best under T as predicted")
    elif pick["rank"] == 1:
        lines.append(f"verified pick: the best under T itself (measured {pick['measured_ms']:.4g} ms, "
                     f"{pick['measured_over_target']:.3f} x T)")
    else:
        lines.append(f"verified pick (the model to ship, best.txt's first line): rank {pick['rank']}, accuracy "
                     f"{pick['accuracy']:.2f}, predicted {pick['predicted_ms']:.4g} ms, measured "
                     f"{pick['measured_ms']:.4g} ms ({pick['measured_over_target']:.3f} x T)\n  {pick['arch']}")
    return "\n".join(lines)


def _short(arch: str, width: int = 48) -> str:
    return arch if len(arch) <= width else arch[:width - 3] + "..."
