"""The accuracy evaluators' benchmark (issue 13): every section's table, and the Kendall tau of the
supernet against stand-alone training on the same 30 MnasNet-space architectures.

    python bench/evaluators.py --out bench-out [--sections zero-cost,train,supernet,ray,e2e] [--supernet FILE]
    python bench/evaluators.py --from bench-out          # the summary of what a run saved

Sections (each its own script beside this one, run here with the settings the README's figures
come from; each writes DIR/<section>.json):

* ``zero-cost`` (`evaluators_zero_cost.py`): 1,000 NAS-Bench-201 cells, Fashion-MNIST batches of 64,
  two shards on two cores (~25 min on the 2-core Zen 3).
* ``train`` (`evaluators_train.py`): proxy training of 30 architectures for 1, 3 and 10 epochs on
  1,024 Fashion-MNIST images at 16 px, widths x 0.25 (~22 min on one core).
* ``supernet`` (`evaluators_supernet.py`): the same 30 architectures scored by a supernet (`--supernet
  FILE`, else one trained here: 750 steps of batch 64 at 28 px, ~25 min on one core).
* ``ray`` (`evaluators_ray.py`): 64 evaluations of `train:digits:1` serial, on a pool and on a local Ray.
* ``e2e``: `pynas search --space mnasnet --evaluator supernet:FILE --budget 1000 --batch-size 4` (evolution
  asks 4 children a step, which the default pool of this machine's CPUs evaluates in parallel) with the
  shipped x86-avx512-native bundle, T = 3 ms: its wall time and its pick's predicted latency over T.

The summary prints each section's table and the Kendall tau between the supernet's accuracies and
the stand-alone 1-, 3- and 10-epoch accuracies of the same architectures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = ("zero-cost", "train", "supernet", "ray", "e2e")
E2E_TARGET_MS = 3.0


def _python(script: str, *args: str, core: int | None = None) -> list[str]:
    command = [sys.executable, "-P", str(HERE / script), *args]
    return (["taskset", "-c", str(core)] if core is not None and _has_taskset() else []) + command


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


def _run(commands: list[list[str]], log: Path) -> None:
    """Run the commands side by side (one per core), their output into `log`; stop on a failure."""
    with open(log, "a") as out:
        procs = [subprocess.Popen(c, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()) for c in commands]
        codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"bench/evaluators.py: {commands} failed (exit {codes}); see {log}")


def run_sections(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    for section in args.sections:
        start = time.perf_counter()
        print(f"== {section}", flush=True)
        if section == "zero-cost":
            _run([_python("evaluators_zero_cost.py", "--archs", "1000", "--data", "fmnist", "--shard", f"{i}/2",
                          "--json", str(out / f"zero-cost-{i}.json"), core=i) for i in (0, 1)], log)
        elif section == "train":
            _run([_python("evaluators_train.py", "--train-images", "1024", "--json", str(out / "train.json"), core=1)],
                 log)
        elif section == "supernet":
            supernet = args.supernet or str(out / "supernet.pt")
            extra = ["--supernet", supernet] if args.supernet else [
                "--out", supernet, "--epochs", "1", "--train-images", "48000", "--batch-size", "64"]
            _run([_python("evaluators_supernet.py", *extra, "--val-images", "1000", "--json",
                          str(out / "supernet.json"), core=1)], log)
        elif section == "ray":
            _run([_python("evaluators_ray.py", "--json", str(out / "ray.json"))], log)
        elif section == "e2e":
            supernet = args.supernet or str(out / "supernet.pt")
            run = out / "e2e-run"
            command = [sys.executable, "-P", "-m", "pynas.cli", "search", "--space", "mnasnet", "--predictor",
                       "x86-avx512-native", "--target-ms", str(E2E_TARGET_MS), "--evaluator", f"supernet:{supernet}",
                       "--evaluator-option", "val_images=1000", "--budget", "1000", "--batch-size", "4", "--seed", "0",
                       "--out", str(run)]
            began = time.perf_counter()
            _run([command], log)
            summary = json.loads((run / "summary.json").read_text())
            (out / "e2e.json").write_text(json.dumps({"wall_s": time.perf_counter() - began, "summary": summary,
                                                      "command": command[3:]}, indent=1))
        print(f"   {time.perf_counter() - start:.0f} s", flush=True)


def summary(folder: Path) -> str:
    import numpy as np
    from scipy.stats import kendalltau

    lines = []
    shards = sorted(folder.glob("zero-cost-*.json"))
    if shards:
        sys.path.insert(0, str(HERE))
        import evaluators_zero_cost as zc

        merged = argparse.Namespace(merge=[str(p) for p in shards], nb201_csv=str(zc.NB201_CSV))
        lines += ["## zero-cost proxies (NAS-Bench-201, Spearman rho with 200-epoch test accuracy)",
                  zc.table(zc.run(merged)), ""]
    train = json.loads((folder / "train.json").read_text()) if (folder / "train.json").is_file() else None
    if train:
        sys.path.insert(0, str(HERE))
        import evaluators_train as tr

        lines += ["## proxy training (Fashion-MNIST, 30 MnasNet-space architectures)", tr.table(train["rows"]), ""]
    supernet = json.loads((folder / "supernet.json").read_text()) if (folder / "supernet.json").is_file() else None
    if supernet:
        ok = [r for r in supernet if r["supernet_acc"] is not None]
        acc = np.array([r["supernet_acc"] for r in ok])
        lines += ["## supernet (the same 30 architectures)",
                  f"{ok[0].get('sampling', 'sandwich')} sampling, trained {ok[0]['train_seconds']:.0f} s "
                  f"({ok[0]['train_steps']} steps); {len(ok)}/"
                  f"{len(supernet)} scored; accuracy {acc.min():.1f}..{acc.max():.1f} (median {np.median(acc):.1f}); "
                  f"{np.median([r['eval_seconds'] for r in supernet]):.2f} s per evaluation (median)"]
        if train:
            by_index = {r["index"]: r["supernet_acc"] for r in ok}
            for row in train["rows"]:
                pairs = [(by_index[i], a) for i, a in enumerate(row["accuracies"]) if i in by_index and a is not None]
                tau = kendalltau(*zip(*pairs))[0]
                lines.append(f"Kendall tau, supernet vs {row['evaluator']}: {tau:.3f} ({len(pairs)} archs)")
        alone = [(r["supernet_acc"], r["standalone_acc"]) for r in ok if r.get("standalone_acc") is not None]
        if len(alone) >= 3:
            r0 = next(r for r in ok if r.get("standalone_acc") is not None)
            lines.append(f"Kendall tau, supernet vs stand-alone ({r0['standalone_epochs']} epochs on "
                         f"{r0['standalone_images']} images at the supernet's resolution): "
                         f"{kendalltau(*zip(*alone))[0]:.3f} ({len(alone)} archs)")
        lines.append("")
    if (folder / "ray.json").is_file():
        rows = json.loads((folder / "ray.json").read_text())
        lines += ["## workers (the same evaluations serial, pool, Ray)"] + [
            f"{r['executor']:>6}  {r['workers']} worker(s)  {r['evaluations']} evaluations  wall {r['wall_s']:.1f} s  "
            f"identical: {'yes' if r['identical'] else 'no'}" for r in rows] + [""]
    if (folder / "e2e.json").is_file():
        e2e = json.loads((folder / "e2e.json").read_text())
        best = e2e["summary"].get("best") or {}
        lines += ["## end to end (supernet evaluator, budget 1000)",
                  f"wall {e2e['wall_s'] / 60:.1f} min; pick {best.get('accuracy')} % at predicted "
                  f"{best.get('latency_ms', float('nan')):.3f} ms = "
                  f"{best.get('latency_ms', float('nan')) / E2E_TARGET_MS:.3f} x T"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="a folder for the sections' results")
    parser.add_argument("--from", dest="source", help="print the summary of a folder of results")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--supernet", help="a trained supernet file (else the supernet section trains one)")
    args = parser.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in args.sections if s not in SECTIONS]
    if bad or (args.out is None) == (args.source is None):
        parser.error(f"expected --out DIR or --from DIR and sections among {', '.join(SECTIONS)}, got {bad or ''}")
    if args.out:
        run_sections(args)
    print(summary(Path(args.out or args.source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
