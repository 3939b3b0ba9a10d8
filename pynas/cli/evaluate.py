"""`pynas evaluate ARCH... | --file FILE --evaluator E`: score given architectures outside a search.

Each architecture's accuracy (and raw score, where the evaluator gives one), the seconds it cost,
or its error; `--csv OUT` writes arch,accuracy,score,seconds,error. Every architecture is read and
checked (a bad one is an error naming it, or FILE:LINE) before any evaluation; the exit status is
1 if any evaluation failed. Evaluations run where --executor/--workers/--ray say (as in `pynas search`).
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from pynas.cli import execution as where, flags
from pynas.cli.evaluator_options import add_flags as add_evaluator_flags, options_from_args

COLUMNS = ("arch", "accuracy", "score", "seconds", "error")


class EvaluationFailed(RuntimeError):
    """Some architectures' evaluations failed (each printed with its reason): exit status 1."""


def _read_file(path: Path) -> list[tuple[str, str]]:
    """(text, where) per architecture line of `path`: blank lines and # comments skipped."""
    if not path.is_file():
        raise ValueError(f"--file {path}: expected a file of architectures, one a line, got "
                         f"{'a folder' if path.exists() else 'no such file'}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"--file {path}: expected text, got undecodable bytes ({error.reason})") from None
    return [(line.strip(), f"{path}:{number}") for number, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith("#")]


# Evaluators that score an architecture as such (its network), not as a point of a space: they take
# architectures outside the space too (a preset, a user's own), with no tokens.
ARCHITECTURE_KINDS = ("train", "python")


def _candidate(space, text: str, place: str, evaluator: str):
    """The Candidate of architecture `text` in `space` (for a train: or python: evaluator, any valid
    architecture string or preset, in the space or not); ValueError naming `place`."""
    from pynas.search.evaluators import Candidate

    try:
        if space.name == "nb201":
            arch = space.parse(text)
        else:
            from pynas.presets import resolve

            arch = resolve(text)
    except ValueError as error:
        raise ValueError(f"{place}: expected an architecture of space {space.name}, got {text[:80]!r}: "
                         f"{' '.join(str(error).split())}") from None
    try:
        tokens = tuple(int(t) for t in space.encode(arch))
    except ValueError as error:
        if evaluator.partition(":")[0] in ARCHITECTURE_KINDS:
            return Candidate((), arch, str(arch))
        raise ValueError(f"{place}: expected an architecture of space {space.name} (evaluator "
                         f"{evaluator.partition(':')[0]}: scores points of the space), got {text[:80]!r}: "
                         f"{' '.join(str(error).split())}") from None
    arch = space.decode(tokens)  # the space's own form of it (what a search would have evaluated)
    return Candidate(tokens, arch, str(arch))


def cmd_evaluate(args) -> None:
    from pynas.cli.common import space_from_args

    execution = where.execution_from_args(args)
    if bool(args.arch) == (args.file is not None):
        raise ValueError("ARCH: expected architectures or --file FILE, got "
                         f"{'both' if args.arch else 'neither'}")
    csv_path = Path(args.csv) if args.csv is not None else None
    if csv_path is not None and csv_path.exists() and not args.force:
        raise ValueError(f"--csv {csv_path}: expected a new file, got an existing one (--force overwrites it)")
    if csv_path is not None and not csv_path.parent.is_dir():
        raise ValueError(f"--csv {csv_path}: expected a file in an existing folder, got no folder "
                         f"{csv_path.parent}")
    lines = _read_file(Path(args.file)) if args.file is not None else [
        (text, f"ARCH {i}") for i, text in enumerate(args.arch, 1)]
    if not lines:
        raise ValueError(f"--file {args.file}: expected at least one architecture, got none")
    if args.space is None:
        args.space = "nb201" if all(text.startswith("|") for text, _ in lines) else "mnasnet"
    space = space_from_args(args)
    candidates = [_candidate(space, text, place, args.evaluator) for text, place in lines]

    from pynas.search.evaluators import make_evaluator
    from pynas.search.workers import close, default_execution, with_workers

    options = options_from_args(args)
    judge = make_evaluator(args.evaluator, space, fidelity=args.fidelity, options=options)
    config = {"spec": args.evaluator, "fidelity": args.fidelity, "options": options}
    judge = with_workers(judge, config, space, execution or default_execution(args.evaluator))
    try:
        print(f"evaluator {judge.describe()}; {len(candidates)} architecture(s) of space {space.name}")
        sys.stdout.flush()
        outcomes = judge.submit(candidates).result()
    finally:
        close(judge)
    rows = [_row(c.text, o) for c, o in zip(candidates, outcomes)]
    for row in rows:
        print(_line(row))
    if csv_path is not None:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        print(f"wrote {csv_path}")
    failed = sum(row["error"] is not None for row in rows)
    if failed:
        raise EvaluationFailed(f"{failed} of {len(rows)} evaluation(s) failed")


def _row(text: str, outcome) -> dict:
    score = getattr(outcome, "score", None)  # raw score (e.g. a zero-cost proxy's), where the evaluator has one
    return {"arch": text, "accuracy": outcome.accuracy, "score": score, "seconds": round(outcome.seconds, 6),
            "error": outcome.error}


def _line(row: dict) -> str:
    if row["error"] is not None:
        return f"{row['arch']}  failed: {row['error']}"
    score = "" if row["score"] is None or not math.isfinite(row["score"]) else f"  score {row['score']:.6g}"
    return f"{row['arch']}  accuracy {row['accuracy']:.2f}{score}  {row['seconds']:.3f} s"


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "evaluate", help="score given architectures with an evaluator (outside a search)",
        description="Prints each architecture's accuracy (and raw score where the evaluator gives one), its "
                    "cost in seconds, or its error; exit status 1 if any evaluation failed.")
    p.add_argument("arch", nargs="*", metavar="ARCH", help="architecture strings (NAS-Bench-201 cells for nb201) "
                                                           "or presets")
    p.add_argument("--file", metavar="FILE", help="architectures, one a line (blank lines and # comments skipped)")
    p.add_argument("--space", help="mnasnet, fbnet or nb201 (default: nb201 if every architecture is a "
                                   "NAS-Bench-201 cell, else mnasnet)")
    p.add_argument("--resolution", type=flags.integer(1, 4096), help="the space's input resolution (its default)")
    p.add_argument("--setting", help="FBNet: imagenet or cifar100")
    p.add_argument("--evaluator", required=True,
                   help="nb201:cifar10|cifar100|imagenet16, python:MODULE:FUNCTION or python:FILE.py:FUNCTION")
    p.add_argument("--fidelity", type=int, choices=(12, 200), help="nb201 evaluators: 12 (default) or 200")
    add_evaluator_flags(p)
    p.add_argument("--csv", metavar="OUT", help="write arch,accuracy,score,seconds,error to OUT")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    where.add_flags(p)
    p.set_defaults(run=cmd_evaluate)
