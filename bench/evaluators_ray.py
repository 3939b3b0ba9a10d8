"""Evaluations on workers: the same evaluations in-process, on a process pool and on a local Ray;
wall time of each and whether all three gave identical outcomes.

    PYTHONPATH=$PWD python3 -P bench/evaluators_ray.py [--evaluations 64] [--workers 2] [--steps 1000]
        [--executors serial,pool,ray] [--json out.json]

The evaluator is `tiny_train` below (a copy with --steps fixed, as a `python:FILE.py:FUNCTION`
evaluator): a tiny MLP trained for --steps SGD steps (0.3 to 1.5 s at 1000 on one thread) on
synthetic data, everything seeded from
the architecture string, so that any worker gives it the same number. It stands in for proxy
training while the real train evaluator is written elsewhere; the lead switches this bench to
`train:digits:1` then. NAS-Bench-201 cells (sampled with seed 0) are the architectures; the cell's
ops set the MLP's depth and width, so architectures cost different times, as real training would.

Each executor builds its workers inside its timing (pool: forkserver processes importing torch;
Ray: `ray.init` of --workers CPUs), as a search pays for them once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib


def tiny_train(archs: list[str], steps: int = 1000) -> list[float]:
    """Accuracy in percent of a small MLP per NAS-Bench-201 cell string, trained `steps` steps."""
    import torch

    out = []
    for arch in archs:
        seed = zlib.crc32(arch.encode())
        g = torch.Generator().manual_seed(seed)
        convs = arch.count("conv")
        width, depth = 16 + 8 * convs, 1 + arch.count("skip_connect") % 3
        teacher = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
        x = torch.randn(512, 16, generator=g)
        y = (x @ teacher).argmax(1)
        layers, inp = [], 16
        torch.manual_seed(seed)  # the weights' init (the global generator, reseeded per architecture)
        for _ in range(depth):
            layers += [torch.nn.Linear(inp, width), torch.nn.ReLU()]
            inp = width
        model = torch.nn.Sequential(*layers, torch.nn.Linear(inp, 4))
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(steps):
            batch = slice((step * 64) % 384, (step * 64) % 384 + 64)
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
        with torch.no_grad():
            out.append(float((model(x[384:]).argmax(1) == y[384:]).float().mean()) * 100)
    return out


def _evaluator_file(steps: int, folder) -> str:
    """A copy of tiny_train with --steps fixed (a python: evaluator takes no options)."""
    import inspect
    from pathlib import Path

    path = Path(folder) / "tiny_train.py"
    path.write_text("import zlib\n\n" + inspect.getsource(tiny_train).replace("steps: int = 1000", f"steps: int = {steps}"))
    return f"python:{path}:tiny_train"


def run(args) -> list[dict]:
    import tempfile

    import torch

    from pynas.search.evaluators import Candidate, make_evaluator
    from pynas.search.workers import Execution, with_workers
    from pynas.space import get_space

    torch.set_num_threads(1)
    space = get_space("nb201")
    candidates = []
    for tokens in space.sample_tokens(args.evaluations, seed=0):
        cell = space.decode(tokens)
        candidates.append(Candidate(tuple(int(t) for t in tokens), cell, str(cell)))
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        spec = _evaluator_file(args.steps, folder)
        for executor in args.executors.split(","):
            start = time.perf_counter()
            execution = Execution(executor, workers=1 if executor == "serial" else args.workers, threads=1)
            judge = with_workers(make_evaluator(spec, space), {"spec": spec, "fidelity": None}, space, execution)
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
    parser.add_argument("--steps", type=int, default=1000, help="SGD steps per evaluation (~1 s at 1000, one thread)")
    parser.add_argument("--executors", default="serial,pool,ray")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
