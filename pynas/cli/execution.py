"""Where evaluations run, as flags shared by `pynas search` and `pynas evaluate`: --executor,
--workers, --threads-per-evaluation, --ray, --ray-address (checked together before any work)."""
from __future__ import annotations

from pynas.cli import flags

EXECUTORS = ("serial", "pool", "ray")  # pynas.search.workers.EXECUTORS (not imported: the parser stays light)
FLAGS = ("executor", "workers", "threads_per_evaluation", "ray", "ray_address")


def add_flags(parser) -> None:
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="where evaluations run: serial (in-process), pool (local processes) or ray; default: a "
                             "pool for training evaluators, else in-process")
    parser.add_argument("--workers", type=flags.integer(1, 4096),
                        help="parallel evaluations (pool processes, or a local Ray's workers); default: this "
                             "machine's CPUs")
    parser.add_argument("--threads-per-evaluation", type=flags.threads, metavar="T",
                        help="torch threads per evaluation (Ray: the task's CPUs); default 1")
    parser.add_argument("--ray", action="store_true", help="run evaluations on a local Ray that pynas starts "
                                                           "(--executor ray)")
    parser.add_argument("--ray-address", metavar="ADDR", help="run evaluations on the Ray cluster at ADDR "
                                                              "(HOST:PORT, ray://HOST:PORT or auto)")


def execution_from_args(args):
    """An `Execution`, or None when no flag names one (the evaluator's default)."""
    from pynas.search.workers import Execution

    executor = args.executor
    if args.ray or args.ray_address is not None:
        flag = "--ray" if args.ray else "--ray-address"
        if executor not in (None, "ray"):
            raise ValueError(f"{flag}: expected with --executor ray (or no --executor), got --executor {executor}")
        executor = "ray"
    if executor is None:
        if args.workers is not None or args.threads_per_evaluation is not None:
            given = "--workers" if args.workers is not None else "--threads-per-evaluation"
            raise ValueError(f"{given}: expected with --executor pool|ray (or --ray), got no executor")
        return None
    if executor == "serial" and args.workers not in (None, 1):
        raise ValueError(f"--workers: expected 1 (or none) with --executor serial, got {args.workers}")
    workers = args.workers
    if workers is None:
        workers = 1 if executor == "serial" else _cpus()
    try:
        return Execution(executor, workers=workers, threads=args.threads_per_evaluation or 1,
                         ray_address=args.ray_address)
    except ValueError as error:
        raise ValueError(f"--executor {executor}: {error}") from None


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
