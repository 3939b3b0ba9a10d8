"""Build the predictor bundles pynas ships (predictors/) and their index.

    python scripts/make-bundles.py --hwnasbench          # pixel3, raspi4, edgegpu, eyeriss (+ -cifar100)
    python scripts/make-bundles.py --nb201               # nb201-pixel3, nb201-raspi4, nb201-eyeriss, nb201-fpga
    python scripts/make-bundles.py --store native=/path/native.db --store litert=/path/litert.db
    python scripts/make-bundles.py --retrain                          # this machine's bundles, from what they ship
    python scripts/make-bundles.py --index-only

* HW-NAS-Bench devices: table bundles of the FBNet space from the table pynas ships
  (`pynas.predictor.hwnasbench.save_bundle`), ImageNet setting as `<device>`, CIFAR-100 as `<device>-cifar100`.
* NAS-Bench-201: lookup bundles (`pynas.predictor.hwnasbench.save_nb201_bundle`), HW-NAS-Bench's latency of
  every cell on each device, from the benchmark data pynas ships (`pynas/space/data/nb201.npz`, made
  by scripts/make-nb201-data.py), named `nb201-<device>`.
* `--retrain`: each shipped XGBoost bundle retrained from the measurements it ships (after a change to
  training or to the network term), keeping its name, source and measurements.
* This machine: `--store BACKEND=DB` trains an XGBoost bundle on the store's series for that backend
  (1 thread) and compiles the MnasNet@224 table into it; the series' measurements go into the bundle
  as measurements.jsonl.gz, so anyone can retrain it or re-check its accuracy. Named
  `<prefix>-<backend>` (--prefix, default x86-avx512).

Existing bundles are replaced. The index (predictors/index.json) is rewritten at the end.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def hwnasbench_bundles(out: Path, csv: str | None) -> None:
    from pynas.predictor import hwnasbench

    for setting in ("imagenet", "cifar100"):
        for device in hwnasbench.BUNDLED:
            name = device if setting == "imagenet" else f"{device}-{setting}"
            folder = hwnasbench.save_bundle(out / name, device, setting, csv, overwrite=True)
            print(f"{folder}: {device} {setting}")


def nb201_bundles(out: Path) -> None:
    from pynas.predictor.hwnasbench import save_nb201_bundle
    from pynas.space.nb201 import DEVICES

    for device in DEVICES:
        folder = save_nb201_bundle(out / f"nb201-{device}", device, overwrite=True)
        print(f"{folder}: {device} nb201 (lookup)")


def retrain(out: Path, rounds: int | None) -> None:
    """Every XGBoost bundle in `out` that ships its measurements, trained again from them. The old
    manifest is read as plain JSON: it may be one this pynas refuses (why it is retrained)."""
    import json

    from pynas.predictor import bundle
    from pynas.store import Store, import_jsonl

    for folder in sorted(p for p in out.iterdir() if (p / "manifest.json").is_file()):
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("kind") != "xgboost" or not (folder / bundle.MEASUREMENTS).is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "m.sqlite"
            with Store(db) as store:
                import_jsonl(store, folder / bundle.MEASUREMENTS)
            prefix = folder.name[: -len(manifest["backend"]) - 1]
            store_bundle(out, manifest["backend"], str(db), prefix, rounds, source_name=manifest["source"].split(":")[0])


def store_bundle(out: Path, backend: str, db: str, prefix: str, rounds: int | None, source_name: str | None = None
                 ) -> None:
    from pynas.predictor import bundle
    from pynas.predictor.train import load_dataset, train
    from pynas.space import get_space
    from pynas.store import Store, export_jsonl

    t0 = time.monotonic()
    with Store(db) as store:
        data = load_dataset(store, backend=backend, threads=1)
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / bundle.MEASUREMENTS
            export_jsonl(store, export, device_id=data.device_id, backend=backend, threads=1)
            measurements = export.read_bytes()
    space = get_space("mnasnet")
    trained = train(data, params={"rounds": rounds} if rounds else None, space=space)
    name = f"{prefix}-{backend}"
    folder = bundle.save(out / name, trained, data, space=space, overwrite=True,
                         source=f"{source_name or Path(db).name}: device {data.device_id}, {len(data.segments)} segments, "
                                f"{len(data.networks)} networks",
                         extra_files={bundle.MEASUREMENTS: measurements})
    r = trained.report
    print(f"{folder}: {len(data.segments)} segments, {len(data.networks)} networks, {time.monotonic() - t0:.0f} s")
    for key in ("heldout_segments", "heldout_networks", "heldout_networks_segment_holdout_model"):
        if key in r:
            print(f"  {key:<40} n={r[key]['n']:<5} RMSPE {r[key]['rmspe']:.2f}%  within 10% {r[key]['within10']:.1f}%"
                  f"  within 5% {r[key]['within5']:.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "predictors"))
    parser.add_argument("--hwnasbench", action="store_true",
                        help="build pixel3, raspi4, edgegpu, eyeriss (+ -cifar100)")
    parser.add_argument("--csv", help="HW-NAS-Bench's FBNet table (default: pynas.predictor.hwnasbench.DEFAULT_PATH)")
    parser.add_argument("--nb201", action="store_true",
                        help="build nb201-pixel3, nb201-raspi4, nb201-eyeriss, nb201-fpga (lookup bundles)")
    parser.add_argument("--store", action="append", default=[], metavar="BACKEND=DB")
    parser.add_argument("--retrain", action="store_true", help="retrain the XGBoost bundles from their measurements")
    parser.add_argument("--prefix", default="x86-avx512")
    parser.add_argument("--rounds", type=int, help="XGBoost boosting rounds (default: pynas.predictor.train's)")
    parser.add_argument("--index-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.index_only:
        if args.hwnasbench:
            hwnasbench_bundles(out, args.csv)
        if args.nb201:
            nb201_bundles(out)
        if args.retrain:
            retrain(out, args.rounds)
        for spec in args.store:
            backend, _, db = spec.partition("=")
            if not db:
                parser.error(f"--store: expected BACKEND=DB, got {spec!r}")
            store_bundle(out, backend, db, args.prefix, args.rounds)
    from pynas.predictor.bundle import read_index, write_index

    print(f"index: {write_index(out)} ({len(read_index(out))} bundles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
