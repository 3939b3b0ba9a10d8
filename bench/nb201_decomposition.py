"""HW-NAS-Bench's NAS-Bench-201 latencies decomposed per op and edge, and few-shot calibration to a
held-out device from k <= 20 networks (`pynas.predictor.cell_decomposition`).

    python3 bench/nb201_decomposition.py [--draws 8] [--ks 1,2,5,10,20] [--seed 0] [--all-methods]
        [--devices pixel3,raspi4,eyeriss,fpga] [--sections additivity,prices,fewshot,machine]
        [--machine predictors/intel-xeon-avx512-native-nb201[,BUNDLE...]]

Sections (each prints a table; everything seeded):

* additivity: per device and regime (connected cells, disconnected ones, all), the best additive
  fit in ms (least squares, unconstrained): relative RMS residual (RMS residual / RMS latency)
  and 1 - R^2; then the models `fit` makes (additive: prices >= 0, base >= the cheapest network;
  pairwise: + one term per pair of edges and ops), fitted on all 15,625 networks and scored on
  them: RMSPE, share within 10 %, Kendall tau, and the least latency the model gives any cell of
  the regime (min ms: ~0 where a non-additive device pulls the base to 0). And how much of the phones' non-additivity they
  share (correlation of pixel3's and raspi4's relative residuals: the same converted TFLite file
  ran on both).
* prices: each device's additive prices (connected regime), ms more than the edge's cheapest op.
* fewshot: leave-one-device-out. Each device is the target, the other three the bases; k
  calibration networks drawn (`--draws` times, seeded; the same draws for every method) from the
  connected cells; accuracy over all 15,284 connected cells (RMSPE, within 10 %, Kendall tau
  median [p10..p90]) and RMSPE over all 15,625 (the 341 disconnected cells, ~0.003-15 ms on the
  phones, are never drawn, so this column says how well the bases' disconnected regimes transfer).
  Methods (``bases+prices`` over the additive decompositions only with --all-methods):
  ``auto`` (the default of `calibrate` and the CLI: ``bases+prices`` over the pairwise
  decompositions or ``scratch``, whichever has the lower leave-one-out error on the k networks),
  ``bases+prices`` over the additive / pairwise decompositions or the measured latencies
  of the bases (their non-negative combination plus ridge-shrunk additive corrections),
  ``bases`` (the combination of the additive price tables alone), ``scale`` (the nearest base's
  measured latency times one scale), ``scratch`` (the additive model from the k networks alone).

* machine: a device HW-NAS-Bench never saw: the whole NAS-Bench-201 networks a cell-network bundle
  (`pynas calibrate --space nb201`) was fit from, as measured on its machine (the bundle ships them),
  are the target; all four HW-NAS-Bench devices are the bases. Accuracy vs k over the measured
  connected networks, next to the bundle's own model (fit on 80% of them, scored on the 20% held
  out: what k <= 20 networks stand in for).

Accuracy is over all networks including the k calibration ones (k <= 20 of 15,284: no visible
effect). "auto" reuses the draw's "bases+prices (pairwise)" and "scratch" fits it chooses between.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: threads only contend
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import time

import numpy as np

from pynas.predictor import cell_decomposition as cd
from pynas.space import nb201

SECTIONS = ("additivity", "prices", "fewshot", "machine")
MACHINE_BUNDLES = ("predictors/intel-xeon-avx512-native-nb201",)
SLOW = ("bases+prices (additive)",)  # run with --all-methods (the additive prices are in "bases" already)
FEWSHOT_METHODS = (  # label, method, base source
    ("auto (pairwise)", "auto", "pairwise"),
    ("bases+prices (pairwise)", "bases+prices", "pairwise"),
    ("bases+prices (additive)", "bases+prices", "additive"),
    ("bases+prices (measured)", "bases+prices", "measured"),
    ("bases (additive prices)", "bases", "additive"),
    ("scale (nearest, measured)", "scale", "measured"),
    ("scratch (additive, k only)", "scratch", None),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def additivity_rows(devices, tokens=None, latencies=None) -> list[dict]:
    """One row per device and regime (`tokens`/`latencies`: a subset, default the benchmark)."""
    data = nb201.benchmark()
    tokens = data.tokens if tokens is None else tokens
    rows = []
    for device in devices:
        ms = data.latency(device) if latencies is None else latencies[device]
        for regime, entry in cd.additivity(tokens, ms).items():
            rows.append({"device": device, "regime": regime, **{k: entry[k] for k in ("networks", "rel_rms",
                                                                                      "unexplained")},
                         **{f"{v}_{m}": entry[v][m] for v in cd.VARIANTS
                            for m in ("rmspe", "within10", "kendall", "min_model_ms")}})
    return rows


def shared_residual(tokens=None, latencies=None) -> float:
    """Correlation of pixel3's and raspi4's relative residuals of the additive model (connected)."""
    data = nb201.benchmark()
    tokens = data.tokens if tokens is None else tokens
    joined = cd.connected(tokens)
    residuals = []
    for device in ("pixel3", "raspi4"):
        ms = data.latency(device) if latencies is None else latencies[device]
        model = cd.fit(tokens, ms, "additive", device)
        residuals.append((model.predict(tokens[joined]) - ms[joined]) / ms[joined])
    return float(np.corrcoef(*residuals)[0, 1])


def format_additivity(rows) -> list[str]:
    def least(value) -> str:
        return f"{'-':>7}" if value is None else f"{value:7.3f}"

    lines = [(f"{'device':8} {'regime':12} {'nets':>5}  {'rel RMS':>7} {'1-R2':>6}  "
              f"{'additive: RMSPE  w10%    tau  min ms':>36}  {'pairwise: RMSPE  w10%    tau  min ms':>36}")]
    for r in rows:
        lines.append(f"{r['device']:8} {r['regime']:12} {r['networks']:5d}  {r['rel_rms']:7.4f} {r['unexplained']:6.4f}  "
                     f"{r['additive_rmspe']:16.2f} {r['additive_within10']:5.1f} {r['additive_kendall']:6.4f} "
                     f"{least(r['additive_min_model_ms'])}  "
                     f"{r['pairwise_rmspe']:16.2f} {r['pairwise_within10']:5.1f} {r['pairwise_kendall']:6.4f} "
                     f"{least(r['pairwise_min_model_ms'])}")
    return lines


def format_prices(model: cd.Decomposition, regime: str = "connected") -> list[str]:
    table = model.prices_table(regime)
    ops = nb201.OPS
    lines = [f"{model.device} ({regime}, ms):  " + " ".join(f"{op:>12}" for op in ops)]
    for row in table[:-1]:
        lines.append(f"  {row['edge']:10}" + " " * 7 + " ".join(
            f"{'-':>12}" if np.isnan(row[op]) else f"{row[op]:12.4f}" for op in ops))
    lines.append(f"  base {table[-1]['ms']:.4f} ms")
    return lines


def fewshot_rows(devices, ks, draws: int, seed: int, methods=FEWSHOT_METHODS, pool=None) -> list[dict]:
    data = nb201.benchmark()
    rows = []
    for target in devices:
        started = time.time()
        sources = {src: cd.hwnasbench_bases(target, src) for _, _, src in methods if src is not None}
        labelled = {label: (method, sources[src] if src else []) for label, method, src in methods}
        result = cd.evaluate(data.latency(target), None, ks=ks, draws=draws, seed=seed, methods=labelled, pool=pool)
        for label, per_k in result.items():
            for k, s in per_k.items():
                rows.append({"target": target, "method": label, "k": k, **s})
        log(f"fewshot: {target} done in {time.time() - started:.0f} s")
    return rows


def machine_target(bundle_folder) -> tuple[str, np.ndarray, dict]:
    """A cell-network bundle's measured networks as a target: (its name, one latency per benchmark
    network with NaN where not measured, its report's held-out accuracy). The bundle is loaded (and
    its files checked) as any bundle; its shipped measurements are read through a store."""
    import tempfile
    import warnings
    from pathlib import Path

    from pynas.predictor import bundle
    from pynas.predictor.cellnet import load_cells
    from pynas.predictor.predictors import MEASUREMENTS
    from pynas.space import get_space
    from pynas.store import Store, import_jsonl

    with warnings.catch_warnings():  # another machine's bundle: its measurements are the point here
        warnings.simplefilter("ignore")
        manifest = bundle.load(bundle_folder).manifest
    space = get_space("nb201")
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
        import_jsonl(store, Path(bundle_folder) / MEASUREMENTS)
        cells = load_cells(store, space, backend=manifest.backend, threads=manifest.threads)
    ms = np.full(len(nb201.benchmark().tokens), np.nan)
    ms[space.index_of(cells.tokens)] = cells.ms
    return manifest.name, ms, ((manifest.extra or {}).get("report") or {}).get("heldout_networks", {})


def machine_rows(bundles, ks, draws: int, seed: int, methods=FEWSHOT_METHODS) -> list[dict]:
    rows = []
    bases = {src: cd.hwnasbench_bases(None, src) for _, _, src in methods if src is not None}
    labelled = {label: (method, bases[src] if src else []) for label, method, src in methods}
    for folder in bundles:
        started = time.time()
        name, ms, heldout = machine_target(folder)
        result = cd.evaluate(ms, None, ks=ks, draws=draws, seed=seed, methods=labelled)
        measured = int(np.isfinite(ms).sum())
        for label, per_k in result.items():
            for k, s in per_k.items():
                rows.append({"target": name, "method": label, "k": k, "measured": measured, **s})
        if heldout:
            rows.append({"target": name, "method": "its bundle (80% fit, 20% held out)", "k": 0,
                         "measured": measured, "within10": heldout["within10"], "rmspe": heldout["rmspe"],
                         "kendall": float("nan"), "kendall_p10": float("nan"), "kendall_p90": float("nan"),
                         "rmspe_all": float("nan")})
        log(f"machine: {name} ({measured} networks) done in {time.time() - started:.0f} s")
    return rows


def format_fewshot(rows) -> list[str]:
    lines = [(f"{'target':8} {'method':27} {'k':>3}  {'within 10 %':>11} {'RMSPE %':>8}  "
              f"{'Kendall tau [p10..p90]':>24}  {'RMSPE all %':>11}")]
    last = None
    for r in rows:
        target = r["target"] if r["target"] != last else ""
        last = r["target"]
        lines.append(f"{target:8} {r['method']:27} {r['k']:3d}  {r['within10']:11.1f} {r['rmspe']:8.2f}  "
                     f"{r['kendall']:8.4f} [{r['kendall_p10']:.3f}..{r['kendall_p90']:.3f}]  {r['rmspe_all']:11.1f}")
    return lines


def best_per_k(rows) -> list[str]:
    """Per target and k, the method of lowest median RMSPE (connected cells)."""
    lines = []
    for target in dict.fromkeys(r["target"] for r in rows):
        for k in dict.fromkeys(r["k"] for r in rows):
            pick = min((r for r in rows if r["target"] == target and r["k"] == k), key=lambda r: r["rmspe"])
            lines.append(f"  {target:8} k={k:2d}: {pick['method']} (RMSPE {pick['rmspe']:.2f} %, tau {pick['kendall']:.4f})")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--draws", type=int, default=8, help="draws of the k networks per k (default 8)")
    p.add_argument("--all-methods", action="store_true", help=f"also {', '.join(SLOW)} (slower)")
    p.add_argument("--ks", default="1,2,5,10,20", help="comma-separated k values, each in 1..20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--devices", default=",".join(nb201.DEVICES), help="targets (and their decompositions)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--machine", default=",".join(MACHINE_BUNDLES),
                   help="comma-separated cell-network bundle folders (pynas calibrate --space nb201) for the machine "
                        "section")
    args = p.parse_args(argv)
    try:
        args.ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        p.error(f"--ks: expected comma-separated integers, got {args.ks!r}")
    if not all(1 <= k <= 20 for k in args.ks):
        p.error(f"--ks: expected values in 1..20, got {args.ks}")
    args.devices = tuple(args.devices.split(","))
    for d in args.devices:
        if d not in nb201.DEVICES:
            p.error(f"--devices: expected some of {', '.join(nb201.DEVICES)}, got {d!r}")
    args.sections = tuple(args.sections.split(","))
    for s in args.sections:
        if s not in SECTIONS:
            p.error(f"--sections: expected some of {', '.join(SECTIONS)}, got {s!r}")
    if args.draws < 1:
        p.error(f"--draws: expected >= 1, got {args.draws}")
    args.machine = tuple(args.machine.split(","))
    if "machine" in args.sections:
        from pathlib import Path

        for folder in args.machine:
            if not (Path(folder) / "measurements.jsonl.gz").is_file():
                p.error(f"--machine: expected bundle folders with the measurements they were fit from "
                        f"(measurements.jsonl.gz), got {folder!r}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    if "additivity" in args.sections:
        print("== additivity: HW-NAS-Bench's NAS-Bench-201 latencies, all 15,625 networks ==")
        print("\n".join(format_additivity(additivity_rows(args.devices))))
        if {"pixel3", "raspi4"} <= set(args.devices):
            print(f"correlation of pixel3's and raspi4's relative residuals (additive, connected): "
                  f"{shared_residual():.3f}")
        print()
    if "prices" in args.sections:
        print("== prices: additive decomposition, connected regime (ms over the edge's cheapest op) ==")
        for device in args.devices:
            print("\n".join(format_prices(cd.fit_device(device, "additive"))))
        print()
    methods = tuple(m for m in FEWSHOT_METHODS if args.all_methods or m[0] not in SLOW)
    if "fewshot" in args.sections:
        print(f"== few-shot calibration, leave-one-device-out: {args.draws} draws of k, seed {args.seed}; accuracy "
              f"over the 15,284 connected cells (RMSPE all: over all 15,625) ==")
        rows = fewshot_rows(args.devices, args.ks, args.draws, args.seed, methods)
        print("\n".join(format_fewshot(rows)))
        print("lowest RMSPE per target and k:")
        print("\n".join(best_per_k(rows)))
    if "machine" in args.sections:
        print(f"\n== few-shot calibration to a machine HW-NAS-Bench never saw, its 4 devices the bases: "
              f"{args.draws} draws of k, seed {args.seed}; accuracy over its measured connected networks ==")
        rows = machine_rows(args.machine, args.ks, args.draws, args.seed, methods)
        print("\n".join(format_fewshot(rows)))
    log(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
