"""`pynas cellfewshot`: a NAS-Bench-201 latency predictor for a new device from k <= 20 cells timed
there, calibrated with HW-NAS-Bench's devices as bases (`pynas.predictor.cell_decomposition`).

    pynas cellfewshot measured.csv -o predictors/my-board --backend tflite   # CSV 'arch,ms', k rows
    pynas predict "|nor_conv_3x3~0|+|...|" --predictor ./predictors/my-board
    pynas search --space nb201 --predictor ./predictors/my-board ...

`--base BUNDLE` (repeatable) adds any NAS-Bench-201 lookup bundle as a base too (one made by an
earlier calibration, or profiled on a machine). The CSV holds NAS-Bench-201 cell strings (the benchmark's, `pynas sample --space nb201`) and their
latency in ms on the new device. The bundle is a lookup bundle (every cell's calibrated latency,
the calibration and the k cells in its report), loaded as the `nb201-*` bundles are.
"""
from __future__ import annotations

import os

from pynas.cli.predictors import add_device_flags

SOURCES = ("pairwise", "additive", "measured")


def cmd_cellfewshot(args) -> None:
    import numpy as np

    from pynas.predictor import cell_decomposition as cd
    from pynas.predictor import fewshot
    from pynas.predictor.writers import check_writable
    from pynas.space.nb201 import Cell

    check_writable(args.output, args.force)
    names, ms = fewshot.read_measured(args.measured)
    if len(names) > MAX_K:
        raise ValueError(f"{args.measured}: expected at most {MAX_K} measured cells (few-shot), got {len(names)}")
    cells = []
    for line, text in enumerate(names, start=2):  # line 1 is the header
        try:
            cells.append(Cell.parse(text))
        except ValueError as error:
            raise ValueError(f"{args.measured}: line {line}: arch: {error}") from None
    tokens = np.array([c.tokens for c in cells], dtype=np.int64)
    seen = {}
    for line, cell in enumerate(cells, start=2):
        if str(cell) in seen:
            raise ValueError(f"{args.measured}: line {line}: arch: the cell of line {seen[str(cell)]} again (expected "
                             f"distinct cells: average repeated measurements)")
        seen[str(cell)] = line
    extra = [cd.Basis.of_bundle(name) for name in args.base]  # checked before any fitting
    bases = cd.hwnasbench_bases(args.exclude, args.bases) + extra
    cal = cd.calibrate(bases, tokens, ms, args.method)
    name = args.name or os.path.basename(os.path.normpath(args.output))
    folder = cd.save_calibrated(args.output, cal, device={"name": name}, backend=args.backend,
                                backend_version=args.backend_version, threads=args.threads,
                                measured=[{"arch": str(c), "ms": float(v)} for c, v in zip(cells, ms)],
                                name=args.name, overwrite=args.force)
    fit = cd.accuracy(cal.predict(tokens), ms)
    info = cal.info
    picked = info.get("auto", {}).get("picked", cal.method)
    chosen = f"{cal.method} -> {picked}" if picked != cal.method else cal.method
    print(f"calibrated on {len(cells)} cells ({chosen}); bases {', '.join(b.name for b in bases)} ({args.bases})"
          + (": unused, an additive model of the cells alone fits them best" if picked == "scratch" else ""))
    if cal.bases and picked != "scratch":
        print("weights (ms per base ms): " + ", ".join(f"{b} {w:.4f}" for b, w in zip(cal.bases, cal.weights))
              + f"; overhead {cal.overhead_ms:.4f} ms; nearest base {info.get('nearest')}")
    loo = info.get("correction_loo_rmspe", info.get("loo_rmspe"))
    if loo is not None:
        print(f"leave-one-out RMSPE on the {len(cells)} cells: {loo:.2f}%")
    print(f"on the {fit['n']} calibration cells: RMSPE {fit['rmspe']:.2f}%, within 10% {fit['within10']:.1f}%; "
          f"every cell {cal.ms.min():.4g}..{cal.ms.max():.4g} ms; bundle {folder}")


MAX_K = 20


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "cellfewshot", help="calibrate a NAS-Bench-201 latency lookup for a new device from k <= 20 measured cells",
        description="MEASURED is a CSV with header 'arch,ms': NAS-Bench-201 cell strings timed on the new device "
                    f"(1..{MAX_K}; 10-20 recommended). HW-NAS-Bench's devices (pixel3, raspi4, eyeriss, fpga) are the "
                    "bases; the bundle holds every cell's calibrated latency.")
    p.add_argument("measured", metavar="MEASURED")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new bundle folder")
    p.add_argument("--method", default="auto", choices=("auto", "bases+prices", "bases", "scale", "scratch"),
                   help="auto (default): bases+prices or scratch by leave-one-out; bases+prices: the bases' "
                        "non-negative combination plus per-op/per-edge corrections; bases: the combination alone; "
                        "scale: the nearest base times one factor; scratch: an additive model from the cells alone")
    p.add_argument("--bases", default="pairwise", choices=SOURCES,
                   help="the bases: HW-NAS-Bench's devices as pairwise (default) or additive decompositions, or "
                        "their measured latencies")
    p.add_argument("--base", action="append", default=[], metavar="BUNDLE",
                   help="another NAS-Bench-201 lookup bundle as a base too (its latencies; repeatable)")
    p.add_argument("--exclude", choices=("pixel3", "raspi4", "eyeriss", "fpga"),
                   help="leave this HW-NAS-Bench device out of the bases (when it is the device calibrated)")
    add_device_flags(p, "cells")
    p.set_defaults(run=cmd_cellfewshot)
