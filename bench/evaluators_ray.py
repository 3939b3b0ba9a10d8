"""Evaluations on workers: the same evaluations in-process, on a process pool and on a local Ray;
wall time of each and whether all three gave identical outcomes.

    PYTHONPATH=$PWD python3 -P bench/evaluators_ray.py [--evaluations 64] [--workers 2]
        [--evaluator train:digits:1] [--option width_mult=0.25 ...] [--executors serial,pool,ray] [--json out.json]

The evaluator is real proxy training (`train:digits:1`: scikit-learn's digits, one epoch, the
architecture's header adapted to 8x8 grey images at 16 px, widths x 0.25, lr 0.1), each evaluation
seeded from its architecture string, so that any worker gives it the same number; the
architectures are MnasNet-space samples (seed 0), which cost different times, as a search's do.

Each executor builds its workers inside its timing (pool: forkserver processes importing torch;
Ray: `ray.init` of --workers CPUs), as a search pays for them once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_OPTIONS = {"resolution": 16, "width_mult": 0.25, "lr": 0.1, "batch_size": 64}


def run(args) -> list[dict]:
    import torch

    from pynas.search.evaluators import Candidate, make_evaluator
    from pynas.search.workers import Execution, with_workers
    from pynas.space import get_space

    torch.set_num_threads(1)
    space = get_space("mnasnet")
    candidates = []
    for tokens in space.sample_tokens(args.evaluations, seed=0):
        arch = space.decode(tokens)
        candidates.append(Candidate(tuple(int(t) for t in tokens), arch, str(arch)))
    rows, reference = [], None
    spec, options = args.evaluator, args.options
    for executor in args.executors.split(","):
        start = time.perf_counter()
        execution = Execution(executor, workers=1 if executor == "serial" else args.workers, threads=1)
        judge = with_workers(make_evaluator(spec, space, options=options),
                             {"spec": spec, "fidelity": None, "options": options}, space, execution)
        try:
            outcomes = judge.submit(candidates).result()
        finally:
            judge.close()
        wall = time.perf_counter() - start
        numbers = [(o.accuracy, o.error) for o in outcomes]
        reference = numbers if reference is None else reference
        rows.append({"executor": executor, "workers": execution.workers, "evaluations": len(candidates),
                     "wall_s": round(wall, 2), "evaluation_s": round(sum(o.seconds for o in outcomes), 2),
                     "failed": sum(not o.ok for o in outcomes), "identical": numbers == reference})
        print(f"{executor:>6}  {execution.workers} worker(s)  wall {wall:6.1f} s  evaluations' own "
              f"{rows[-1]['evaluation_s']:6.1f} s  failed {rows[-1]['failed']}  identical results: "
              f"{'yes' if rows[-1]['identical'] else 'no'}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evaluator", default="train:digits:1")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help=f"an evaluator option (repeatable); default {DEFAULT_OPTIONS} for the default evaluator")
    parser.add_argument("--executors", default="serial,pool,ray")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    args.options = {}
    for pair in args.option or []:
        key, _, value = pair.partition("=")
        try:
            args.options[key] = json.loads(value)
        except json.JSONDecodeError:
            args.options[key] = value
    if args.option is None and args.evaluator == "train:digits:1":
        args.options = dict(DEFAULT_OPTIONS)
    rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
