"""`pynas scale`: EfficientNet compound scaling of an architecture, by phi or to a latency target.

    pynas scale mnasnet-a1 --phi 2                   # depth 1.2^2, width 1.1^2, resolution 1.15^2
    pynas scale runs/a --target-ms 30                # a search's best.txt: the largest phi under 30 ms
    pynas scale mnasnet-a1 --target-ms 30 --grid     # also search (alpha, beta, gamma) under the constraint
    pynas scale mnasnet-a1 --phi -1 --alpha 1.1 --beta 1.15 --gamma 1.15 --json scaled.json

The arithmetic and the scan are `pynas.ship.scaling`'s (its docstring says how each dimension is
rounded). Predictions come from --predictor, else (ARCH a search run's folder) the bundle the run
searched with (its summary.json names it), else this machine's own bundle (`pynas device init`), as
`pynas predict`; --phi alone needs none (without one, no latency column).
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from pynas import ui
from pynas.cli import flags
from pynas.cli.common import human, print_warnings

GRID_ROWS = 10  # coefficient triples printed by --grid (all in --json)


def arch_from(text: str):
    """ARCH: a preset, an architecture string, or a search run's folder (its best.txt's first line)."""
    return arch_and_bundle(text)[0]


def arch_and_bundle(text: str):
    """(the architecture, the run's bundle or None) of ARCH: a preset, an architecture string, or a
    finished search's folder (its pick, best.txt's first line: `pynas.search.report.read_pick`)."""
    from pynas.presets import resolve

    if os.path.isdir(text):
        from pynas.search.report import read_pick

        pick = read_pick(text)
        return pick.arch, pick.predictor
    if ":" not in text and ("/" in text or os.sep in text):
        raise FileNotFoundError(f"ARCH: expected a preset, an architecture string or a search run's folder, got "
                                f"{text!r}: no such folder")
    try:
        return resolve(text), None
    except ValueError as error:
        raise ValueError(f"ARCH: {error}") from None


def _flagged(error: ValueError) -> ValueError:
    """A library error naming a field the command line spells as a flag (phi -> --phi)."""
    text = str(error)
    for field in ("phi", "predictor"):
        if text.startswith(field + ":"):
            return ValueError("--" + text)
    return error


def _check_output(path: str | None) -> None:
    if path is None:
        return
    folder = Path(path).parent
    if Path(path).is_dir():
        raise IsADirectoryError(f"--json: expected a file to write, got the folder {path}")
    if not folder.is_dir():
        raise FileNotFoundError(f"--json: expected a file in an existing folder, got {path} ({folder} does not exist)")


def _load_predictor(args, run_bundle: str | None):
    """The bundle to price with: --predictor, else the search run's (`run_bundle`), else this
    machine's own; None for --phi when there is none of these."""
    from pynas.cli.common import load_for_prediction
    from pynas.predictor import device
    from pynas.ship.scaling import check_predictor

    name = args.predictor or run_bundle
    if name is None and args.phi is not None and device.default_bundle("native", 1) is None:
        print("pynas scale: note: no latency column: this machine has no bundle of its own (`pynas device init`) "
              "and --predictor names none", file=sys.stderr)
        return None
    if args.predictor is None and run_bundle is not None:
        try:  # the run's bundle: errors name where it came from (--predictor overrides it)
            p = load_for_prediction(run_bundle)
            check_predictor(p)
        except ValueError as error:
            why = " ".join(str(error).split()).removeprefix("predictor: ")
            raise ValueError(f"ARCH {args.arch}: the run's bundle {run_bundle} (summary.json; --predictor names "
                             f"another): {why}") from None
        return p
    p = load_for_prediction(args.predictor)
    try:
        check_predictor(p)
    except ValueError as error:
        raise _flagged(error) from None
    return p


def _where(p) -> str:
    from pynas.predictor.device import describe, describes_a_host

    threads = f"{p.manifest.threads} thread(s)" if p.manifest.threads else "threads not stated by its source"
    here = p.device_differences() == [] and describes_a_host(p.manifest)
    return f"{p.name} ({'this machine' if here else describe(p.manifest)}, {threads})"


def _table(rows: list[dict], target_ms: float | None, coefficients: bool = False) -> str:
    header = ["phi"] + (["alpha", "beta", "gamma", "a*b^2*g^2"] if coefficients else []) + \
        ["resolution", "repeats", "MACs", "params", "predicted ms"] + (["/ T"] if target_ms is not None else [])
    lines = []
    for r in rows:
        ms = r["predicted_ms"]
        shown = "-" if ms is None else f"{ms:.3f}" + ("*" if r.get("beyond_fitted") else "")
        line = [f"{r['phi']:g}"]
        if coefficients:
            line += [f"{r['alpha']:g}", f"{r['beta']:g}", f"{r['gamma']:g}", f"{r['flops_factor']:.3f}"]
        line += [r["resolution"], r["repeats"], human(r["macs"]), human(r["params"]), shown]
        if target_ms is not None:
            line.append("-" if ms is None else f"{ms / target_ms:.3f}")
        lines.append(line)
    return ui.table(header, lines, right=set(range(1, len(header))))


def _fitted_note(p, rows: list[dict]) -> str | None:
    if p is None or not any(r.get("beyond_fitted") for r in rows):
        return None
    low, high = p.term.fitted_ms
    return (f"* beyond the {low:.3g}-{high:.3g} ms of the networks {p.name}'s network term was fitted on: an "
            f"extrapolation (measure it: the bench's predicted-vs-measured table)")


def cmd_scale(args) -> None:
    from pynas.ship import scaling

    # Every input is checked before the scan, which can take a minute (--grid).
    arch, run_bundle = arch_and_bundle(args.arch)
    given = [f"--{name}" for name in ("alpha", "beta", "gamma") if getattr(args, name) is not None]
    if args.grid and args.target_ms is None:
        raise ValueError("--grid: expected with --target-ms (it picks the coefficients a latency target allows), "
                         "got --phi")
    if args.grid and given:
        raise ValueError(f"--grid: expected without --alpha/--beta/--gamma (the grid chooses them), got "
                         f"{', '.join(given)}")
    alpha, beta, gamma = (scaling.ALPHA if args.alpha is None else args.alpha,
                          scaling.BETA if args.beta is None else args.beta,
                          scaling.GAMMA if args.gamma is None else args.gamma)
    scaling.check_coefficients(alpha, beta, gamma, prefix="--")
    _check_output(args.json)
    if args.phi is not None:
        try:
            scaling.compound_scale(arch, args.phi, alpha, beta, gamma)
        except ValueError as error:
            raise _flagged(error) from None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = _load_predictor(args, run_bundle)
        try:
            result = _scale(arch, p, args, alpha, beta, gamma)
        except ValueError as error:
            raise _flagged(error) from None
    chosen, rows, shown = result
    if p is not None:
        print(f"latency model: {_where(p)}")
    print(chosen["arch"])
    print()
    print(_table(shown, args.target_ms, coefficients=args.grid))
    notes = [_fitted_note(p, shown)]
    if args.target_ms is not None and chosen.get("at_upper_end"):
        notes.append(f"phi={chosen['phi']:g} is the top of the scan ({scaling.PHI_RANGE[1]:g}): {args.target_ms:g} "
                     f"ms allows more than it reaches")
    if args.grid:
        fits = sum(r["fits"] for r in rows)
        notes.append(f"{len(rows)} coefficient triples with |alpha*beta^2*gamma^2 - 2| <= "
                     f"{scaling.COEFFICIENT_TOLERANCE:g}, {fits} reach under {args.target_ms:g} ms; chosen: the most "
                     f"MACs (first row); {min(GRID_ROWS, fits)} shown" + (", all in --json" if args.json else ""))
    for note in filter(None, notes):
        print(note)
    if args.json:
        out = {"input": str(arch), "predictor": None if p is None else p.name, "target_ms": args.target_ms,
               "mode": "grid" if args.grid else "target" if args.target_ms is not None else "phi",
               "chosen": chosen, "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    print_warnings("scale", caught)


def _scale(arch, p, args, alpha: float, beta: float, gamma: float) -> tuple[dict, list[dict], list[dict]]:
    """(the chosen row, all rows, the rows to print) of the mode asked for."""
    from pynas.ship import scaling

    if args.phi is not None:
        rows = scaling.scaling_table(arch, p, sorted({0.0, args.phi}), alpha, beta, gamma)
        return next(r for r in rows if r["phi"] == args.phi), rows, rows
    base = scaling.scaling_table(arch, p, (0.0,), alpha, beta, gamma)
    if not args.grid:
        fit = scaling.largest_phi(arch, p, args.target_ms, alpha, beta, gamma)
        chosen = dict(fit.row(p), at_upper_end=fit.at_upper_end)
        return chosen, base + [chosen], base + [chosen]
    triples = scaling.coefficient_grid()
    with ui.Progress(len(triples), description="scale --grid") as bar:
        grid = scaling.grid_search(arch, p, args.target_ms, triples=triples,
                                   progress=lambda done, label: bar.update(done, label))
    chosen = dict(grid.best.row(p), at_upper_end=grid.best.at_upper_end)
    fitting = sorted((r for r in grid.rows if r["fits"]), key=lambda r: -r["macs"])
    shown = [chosen] + [r for r in fitting if (r["alpha"], r["beta"], r["gamma"]) !=
                        (chosen["alpha"], chosen["beta"], chosen["gamma"])][:GRID_ROWS - 1]
    return chosen, grid.rows, shown


def add_parsers(commands) -> None:
    from pynas.ship.scaling import ALPHA, BETA, GAMMA, PHI_RANGE, PHI_STEP

    p = commands.add_parser(
        "scale", help="EfficientNet compound scaling: by phi, or the largest under a latency target",
        description="ARCH is a preset, an architecture string or a search run's folder (its best.txt). Depth x "
                    "alpha^phi (repeats rounded up), width x beta^phi (multiples of 8), resolution x gamma^phi, with "
                    "alpha * beta^2 * gamma^2 ~ 2 (FLOPs ~ x2 per unit of phi).")
    p.add_argument("arch", metavar="ARCH")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--phi", type=flags.number(*PHI_RANGE), help=f"the compound coefficient, in "
                                                                   f"[{PHI_RANGE[0]:g}, {PHI_RANGE[1]:g}]; "
                                                                   f"fractional and negative (smaller) allowed")
    mode.add_argument("--target-ms", type=flags.number(0, low_open=True), metavar="T",
                      help=f"the largest phi (on a grid of step {PHI_STEP:g}) whose predicted latency is <= T ms")
    p.add_argument("--predictor", help="bundle name (`pynas predictors`) or folder (./NAME) of kind xgboost; "
                                       "default: a search run's own (its summary.json), else this machine's "
                                       "(`pynas device init`)")
    p.add_argument("--grid", action="store_true", help="with --target-ms: also search (alpha, beta, gamma) in steps "
                                                       "of 0.05 under the constraint, keep the most MACs (63 "
                                                       "triples: a minute or two)")
    p.add_argument("--alpha", type=flags.number(1), help=f"depth coefficient (default {ALPHA:g})")
    p.add_argument("--beta", type=flags.number(1), help=f"width coefficient (default {BETA:g})")
    p.add_argument("--gamma", type=flags.number(1), help=f"resolution coefficient (default {GAMMA:g})")
    p.add_argument("--json", metavar="OUT", help="also write the rows (arch strings, MACs, params, ms) to OUT")
    p.set_defaults(run=cmd_scale)
