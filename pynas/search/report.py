"""A search's results from its log: the Pareto front, the best architecture under T, files.

`summarise(log)` -> a dict (written as `summary.json`, with the run's `verification` when it has
one and its `verified_pick`, None without one: `pynas.search.verification`); `write(folder)` writes
`summary.json`, `best.txt` (the architecture to ship on its first line, then its figures) and
`pareto.png` (all evaluated samples, the front, the target line; needs matplotlib: `pip install
'pynas[search]'`, and says so when it is missing), and returns the text report (`pynas search
--report DIR`).

best.txt's first line is the run's pick: the verified pick when the end-of-search verification
found one that differs from the best under T (the best under T did not measure <= T on the
machine, a runner-up did), else the best under T. Its next lines are `key value` figures;
with a verified pick they say so (`verified_pick rank R ...`) and what the best under T measured
(`predicted_best ARCH ...`). `read_pick(folder)` is the one reader of a finished run's pick (best.txt's
first line, checked against summary.json, with the run's bundle, evaluator and space), for `pynas
verify RUN`, `pynas scale RUN` and `pynas export RUN`:

    pick = read_pick("runs/a")             # ValueError naming ARCH and the file when it is not a finished run
    print(pick.arch, pick.predictor, pick.accuracy)

The best architecture under T is the one with the highest accuracy *as the search saw it* (its
evaluator's numbers, e.g. a 12-epoch proxy) among the evaluated architectures whose predicted
latency is <= T; ties go to the faster one, then the earlier one. The front: evaluated
architectures no other beats on both accuracy (higher) and predicted latency (lower).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynas.arch import Arch
from pynas.search.log import SearchLog

FRONT_ROWS = 30  # rows of the front printed (the summary keeps all)


def pareto_mask(accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """True for the points no other point dominates (accuracy >= and latency <=, one strictly)."""
    order = np.lexsort((-accuracy, latency))  # by latency, then best accuracy first
    mask = np.zeros(len(accuracy), dtype=bool)
    best = -np.inf
    for i in order:
        if accuracy[i] > best:
            mask[i] = True
            best = accuracy[i]
    return mask


def _evaluated(log: SearchLog):
    """The architectures evaluated (not repeats answered from the cache) with an accuracy."""
    return log.samples("WHERE status = 'done' AND cached = 0")


def summarise(log: SearchLog) -> dict:
    config = log.config
    target = config["reward"]["target_ms"]
    rows = _evaluated(log)
    failed = log.samples("WHERE status = 'failed' AND cached = 0")
    all_rows = log.samples()
    summary = {"space": config["space"], "predictor": config["predictor"]["bundle"], "reward": config["reward"],
               "strategy": config["strategy"], "evaluator": config["evaluator"]["spec"],
               "fidelity": config["evaluator"].get("fidelity"), "budget": config["budget"],
               "budget_seconds": config.get("budget_seconds"), "seconds": log.evaluated_seconds(), "seed": config["seed"],
               "target_ms": target, "evaluated": len(rows) + len(failed), "failed": len(failed),
               "asked": len(all_rows), "pending": sum(r.status == "pending" for r in all_rows),
               "target_distribution": config.get("target_distribution")}
    saved = log.load_state()
    if saved is not None:
        summary["steps"] = saved[0] + 1
        summary["overhead_ms_per_sample"] = 1000 * saved[2] / max(len(all_rows), 1)
    if not rows:
        summary.update(best=None, front=[], best_reward=None)
        return summary
    acc = np.array([r.accuracy for r in rows])
    lat = np.array([r.latency_ms for r in rows])
    front = [rows[i] for i in np.flatnonzero(pareto_mask(acc, lat))]
    front.sort(key=lambda r: r.latency_ms)
    summary["front"] = [_row(r, target) for r in front]
    rewarded = [r for r in rows if r.reward is not None]
    summary["best_reward"] = _row(max(rewarded, key=lambda r: (r.reward, -r.id)), target) if rewarded else None
    ranked = _ranked_under_target(rows, target)
    summary["best"] = _row(ranked[0], target) if ranked else None
    if summary["best"] is not None and config["space"]["name"] == "nb201" and \
            config["evaluator"]["spec"].startswith("nb201:"):
        summary["ground_truth"] = _nb201_truth(config, summary["best"])
    return summary


def _ranked_under_target(rows, target: float) -> list:
    """The evaluated rows predicted <= T, best first: accuracy (higher first), then predicted latency
    (lower first), then the earlier sample; an architecture evaluated twice counts once."""
    ranked, seen = [], set()
    for r in sorted((r for r in rows if r.latency_ms <= target), key=lambda r: (-r.accuracy, r.latency_ms, r.id)):
        if r.arch not in seen:
            seen.add(r.arch)
            ranked.append(r)
    return ranked


def ranked_under_target(log: SearchLog, limit: int | None = None) -> list[dict]:
    """The best under T and the runners-up, as `summarise` ranks them (its `best` is the first), as
    summary rows; `limit`: the first so many."""
    target = log.config["reward"]["target_ms"]
    return [_row(r, target) for r in _ranked_under_target(_evaluated(log), target)[:limit]]


def _nb201_truth(config: dict, best: dict) -> dict:
    """NAS-Bench-201 knows every answer: the pick's 200-epoch test accuracy against the best of any
    architecture the run's latency model puts under T (what bench/search.py calls regret)."""
    from pynas.predictor import latency_model
    from pynas.space import get_space
    from pynas.space.nb201 import benchmark

    space = get_space("nb201")
    data = benchmark()
    dataset = config["evaluator"]["spec"].partition(":")[2]
    test = data.accuracy(dataset, 200)
    latency = latency_model(config["predictor"]["bundle"], space).predict_batch(data.tokens)
    under = latency <= config["reward"]["target_ms"]
    pick = int(space.index_of(np.array([best["tokens"]]))[0])
    return {"dataset": dataset, "pick_test_accuracy": float(test[pick]), "best_test_accuracy_under_target":
            float(test[under].max()), "regret": float(test[under].max() - test[pick]),
            "share_of_space_under_target": float(under.mean())}


def _row(r, target: float) -> dict:
    return {"arch": r.arch, "tokens": list(r.tokens), "accuracy": r.accuracy, "latency_ms": r.latency_ms,
            "latency_over_target": r.latency_ms / target, "reward": r.reward, "sample": r.id, "step": r.step}


def _budget(summary: dict) -> str:
    seconds = summary.get("budget_seconds")
    if seconds is None:
        return str(summary["budget"])
    spent = f"{seconds:g} s ({summary['seconds']:.1f} s spent)"
    return spent if summary["budget"] is None else f"{summary['budget']} or {spent}"


def text(summary: dict) -> str:
    from pynas import ui

    lines = [f"search {summary['strategy']['name']} on {summary['space']['name']} with {summary['predictor']}, "
             f"{summary['evaluator']} (fidelity {summary['fidelity']}): {summary['evaluated']} evaluated "
             f"({summary['failed']} failed) of budget {_budget(summary)}, {summary['asked']} asked, "
             f"reward {summary['reward']['name']}, T = {summary['target_ms']:g} ms"]
    front = summary["front"]
    if front:
        rows = [[f"{r['latency_ms']:.4g}", f"{r['latency_over_target']:.3f}", f"{r['accuracy']:.2f}",
                 "" if r["reward"] is None else f"{r['reward']:.3f}", r["arch"]] for r in front[:FRONT_ROWS]]
        lines += ["", f"Pareto front ({len(front)} architectures{', first ' + str(FRONT_ROWS) if len(front) > FRONT_ROWS else ''}; "
                  "accuracy as the search saw it):",
                  ui.table(["ms", "ms/T", "accuracy", "reward", "architecture"], rows, right={0, 1, 2, 3})]
    best = summary.get("best")
    lines.append("")
    if best is None:
        lines.append(f"best under T: none of the evaluated architectures is predicted at or under {summary['target_ms']:g} ms")
    else:
        lines.append(f"best under T: {best['arch']}")
        lines.append(f"  accuracy {best['accuracy']:.2f}, predicted {best['latency_ms']:.4g} ms "
                     f"({best['latency_over_target']:.3f} x T), sample {best['sample']}")
        truth = summary.get("ground_truth")
        if truth:
            lines.append(f"  NAS-Bench-201 ground truth ({truth['dataset']}, 200 epochs): its test accuracy "
                         f"{truth['pick_test_accuracy']:.2f}, the best under T {truth['best_test_accuracy_under_target']:.2f} "
                         f"(regret {truth['regret']:.2f} points)")
    if summary.get("verification") is not None:
        from pynas.search.verification import text as verification_text

        lines.append(verification_text(summary["verification"]))
    return "\n".join(lines)


def write(folder: Path | str) -> str:
    """Writes summary.json, best.txt and pareto.png into the search folder; returns the text report."""
    import pynas

    folder = Path(folder)
    from pynas.search import verification

    with SearchLog.open(folder, pynas.__version__) as log:
        summary = summarise(log)
        points = [(r.latency_ms, r.accuracy) for r in _evaluated(log)]
    verified = verification.on_record(folder, summary.get("best"))
    if verified is not None:
        summary["verification"] = verified
    summary["verified_pick"] = verification.verified_pick(verified)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if summary.get("best") is not None:
        (folder / "best.txt").write_text(_best_text(summary), encoding="utf-8")
    report = text(summary)
    note = _plot(folder / "pareto.png", points, summary)
    return report + ("\n" + note if note else "")


def _best_text(summary: dict) -> str:
    """best.txt: the architecture to ship, then its figures (the module docstring)."""
    best, pick, record = summary["best"], summary.get("verified_pick"), summary.get("verification") or {}
    tail = f"target_ms {summary['target_ms']}\npredictor {summary['predictor']}\nevaluator {summary['evaluator']}\n"
    if pick is not None and pick["arch"] != best["arch"]:
        return (f"{pick['arch']}\naccuracy {pick['accuracy']}\npredicted_latency_ms {pick['predicted_ms']}\n"
                f"measured_latency_ms {pick['measured_ms']}\n{tail}"
                f"verified_pick rank {pick['rank']} of the architectures predicted under T, the first to measure "
                f"<= T ({pick['measured_over_target']:.3f} x T)\n"
                f"predicted_best {best['arch']} (accuracy {best['accuracy']}, predicted {best['latency_ms']} ms, "
                f"measured {record['measured_ms']} ms = {record['measured_over_target']:.3f} x T: "
                f"{'over T' if record['measured_ms'] > summary['target_ms'] else 'too unsteady to judge'})\n")
    lines = f"{best['arch']}\naccuracy {best['accuracy']}\npredicted_latency_ms {best['latency_ms']}\n"
    if pick is not None:
        lines += f"measured_latency_ms {pick['measured_ms']}\n"
    lines += tail
    if pick is not None:
        lines += f"verified_pick rank 1: the best under T measured <= T ({pick['measured_over_target']:.3f} x T)\n"
    elif record.get("no_pick"):
        lines += f"verified_pick none: {record['no_pick']}\n"
    return lines


def _plot(path: Path, points: list[tuple[float, float]], summary: dict) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"{path.name} not written: needs matplotlib (pip install 'pynas[search]')"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if points:
        lat, acc = np.array(points).T
        ax.scatter(lat, acc, s=8, alpha=0.35, color="tab:gray", label=f"evaluated ({len(points)})")
    front = summary["front"]
    if front:
        ax.plot([r["latency_ms"] for r in front], [r["accuracy"] for r in front], "o-", color="tab:blue", ms=4,
                label=f"Pareto front ({len(front)})")
    ax.axvline(summary["target_ms"], color="tab:red", ls="--", label=f"T = {summary['target_ms']:g} ms")
    best = summary.get("best")
    if best is not None:
        ax.plot([best["latency_ms"]], [best["accuracy"]], "*", color="tab:orange", ms=14, label="best under T")
    pick = summary.get("verified_pick")
    if pick is not None and (best is None or pick["arch"] != best["arch"]):
        ax.plot([pick["predicted_ms"]], [pick["accuracy"]], "D", color="tab:green", ms=8,
                label=f"verified pick (measured {pick['measured_ms']:.3g} ms)")
    ax.set_xlabel(f"predicted latency, ms ({summary['predictor']})")
    ax.set_ylabel(f"accuracy, % ({summary['evaluator']})")
    ax.set_title(f"{summary['strategy']['name']} on {summary['space']['name']}, {summary['evaluated']} evaluated")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return ""


# -- reading a finished run's pick -----------------------------------------------------------------
@dataclass(frozen=True)
class RunPick:
    """A finished search's pick (best.txt's first line) and what its summary.json says of the run:
    the bundle it priced with (`predictor`), the pick's accuracy as the search saw it, its evaluator
    spec and space (name and options), and the whole summary."""

    folder: Path
    arch: Arch
    predictor: str
    accuracy: float
    evaluator: str
    space: dict
    summary: dict


def read_pick(folder: Path | str, where: str = "ARCH") -> RunPick:
    """The pick of the finished search in `folder`: best.txt's first line, which must be the pick
    summary.json records (its verified pick when it has one, else its best under T). Every error is
    a ValueError naming `where` (the command's field: ARCH, ARCH_OR_RUN), the folder and the file."""
    from pynas.presets import resolve

    folder = Path(folder)
    head = f"{where} {folder}"
    writes = f"`pynas search --report {folder}` writes both when the run has a best architecture under T"
    best, summary_path = folder / "best.txt", folder / "summary.json"
    if not best.is_file():
        raise ValueError(f"{head}: expected a finished search folder with best.txt and summary.json ({writes}), "
                         f"got a folder without best.txt")
    lines = best.read_text(encoding="utf-8", errors="replace").splitlines()
    line = lines[0].strip() if lines else ""
    try:
        arch = resolve(line)
    except ValueError as error:
        raise ValueError(f"{head}: best.txt:1: expected a preset or an architecture string, got {line[:80]!r}: "
                         f"{' '.join(str(error).split())}") from None
    if not summary_path.is_file():
        raise ValueError(f"{head}: expected summary.json next to best.txt ({writes}), got none")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        pick = summary.get("verified_pick") or summary["best"]
        run = RunPick(folder, arch, str(summary["predictor"]), float(pick["accuracy"]), str(summary["evaluator"]),
                      dict(summary["space"]), summary)
        recorded = str(pick["arch"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{head}: summary.json: expected a search summary with predictor, best (arch, accuracy), "
                         f"evaluator and space, got {type(error).__name__}: {' '.join(str(error).split())}") from None
    if recorded != str(arch):
        raise ValueError(f"{head}: best.txt:1: expected the pick summary.json records ({recorded[:60]}...), got "
                         f"{str(arch)[:60]}...: rerun `pynas search --report {folder}`")
    return run
