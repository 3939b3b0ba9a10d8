"""`pynas search`: a new search, `--resume DIR` after a kill, `--report DIR` for its results.

    pynas search --space mnasnet --target-ms 8 --evaluator zero-cost:params --budget 300 --out runs/a
    pynas search --resume runs/a --verify-top 12
    pynas search --report runs/a

At its end (a new or resumed run) the search verifies its pick where the run's bundle runs (this
machine, or --adb SERIAL): the architectures predicted <= T, best first, are measured until one
measures within 5% under T, up to --verify-top K (default 8); the first in rank order within that
band (else the first <= T) is the verified pick, best.txt's first line
(`pynas.search.verification`). When the model under-estimated the best ranked and the pick is
missing, more than 5% under T or from far down the ranking, the search goes on at T / bias for
--refine-budget N more evaluations (default a quarter of those spent; 0: never) and verifies
again, at most --refine-rounds R times (default 3; none when the strategy ended on its own, as
darts): `pynas.search.refine`. --no-verify skips all of it.
"""
from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np

from pynas import ui
from pynas.cli import execution as where, flags
from pynas.cli.evaluator_options import FLAGS as EVALUATOR_FLAGS, add_flags as add_evaluator_flags, key_values, \
    options_from_args as evaluator_options

NEW_RUN_FLAGS = ("space", "predictor", "target_ms", "target_quantile", "reward", "strategy", "strategy_option",
                 "evaluator", *EVALUATOR_FLAGS, "fidelity", "budget", "budget_seconds", "seed", "out", "batch_size", "resolution", "setting")


class Tracker:
    """The progress bar's label: best reward, best accuracy under T, the front's size (recomputed at most
    every half second: the label is what a person reads, not a per-sample cost)."""

    def __init__(self, bar, budget: int | None, target_ms: float):
        self.bar, self.budget, self.target = bar, budget, target_ms
        self.points: list[tuple[float, float]] = []
        self.best_reward = self.best_under = -np.inf
        self.evaluated, self.front, self.last = 0, 0, 0.0

    def __call__(self, log, rows) -> None:
        from pynas.search.report import pareto_mask

        for r in rows:
            if not r.cached and r.status != "pending":
                self.evaluated += 1
            if r.status == "done" and not r.cached:
                self.points.append((r.accuracy, r.latency_ms))
                if r.reward is not None:
                    self.best_reward = max(self.best_reward, r.reward)
                if r.latency_ms <= self.target:
                    self.best_under = max(self.best_under, r.accuracy)
        now = time.monotonic()
        if now - self.last > 0.5 or (self.budget is not None and self.evaluated >= self.budget):
            self.last = now
            if self.points:
                acc, lat = np.array(self.points).T
                self.front = int(pareto_mask(acc, lat).sum())
        under = f"{self.best_under:.2f}" if np.isfinite(self.best_under) else "-"
        self.bar.update(self.evaluated, f"best reward {self.best_reward:.3f}  best acc <= T {under}  front {self.front}")


def cmd_search(args) -> None:
    from pynas import search
    from pynas.search import target as targets

    modes = [m for m in ("resume", "report") if getattr(args, m)]
    execution = None if args.report else where.execution_from_args(args)  # checked before any work
    adb = None if args.report else _adb_from_args(args)
    if modes:
        given = [f"--{f.replace('_', '-')}" for f in NEW_RUN_FLAGS if getattr(args, f, None) not in (None, [])]
        if args.report:
            given += [f"--{f.replace('_', '-')}" for f in (*where.FLAGS, *VERIFY_FLAGS)
                      if getattr(args, f, None) not in (None, False)]
        if len(modes) > 1 or given:
            raise ValueError(f"--{modes[0]}: expected alone (the run's settings are in its log), got also "
                             f"{', '.join(['--' + m for m in modes[1:]] + given)}")
        if args.report:
            print(search.report(args.report))
            return
        folder = args.resume
        from pynas.search.log import SearchLog

        import pynas

        with SearchLog.open(folder, pynas.__version__) as log:  # checked before any work
            budget, target, done = log.config["budget"], log.config["reward"]["target_ms"], log.evaluated()
        with ui.Progress(budget or log.config["max_asks"], description="search (resumed)") as bar:
            bar.update(done, "")
            run = search.resume(folder, progress=Tracker(bar, budget, target), execution=execution)
        _finish(run, args, adb, execution)
        return
    budget = args.budget if args.budget is not None else args.budget_seconds
    missing = [f for f, v in (("--space", args.space), ("--evaluator", args.evaluator),
                              ("--budget (or --budget-seconds)", budget), ("--out", args.out)) if v is None]
    if args.target_ms is None and args.target_quantile is None:
        missing.append("--target-ms (or --target-quantile)")
    if missing:
        raise ValueError(f"{missing[0]}: expected a value for a new search (or --resume DIR / --report DIR)")
    if args.target_ms is not None and args.target_quantile is not None:
        raise ValueError("--target-quantile: expected either --target-ms or --target-quantile, got both")
    from pynas.cli.common import space_from_args
    from pynas.search.loop import DEFAULT_STRATEGY
    from pynas.search.reward import DEFAULT

    args.reward, args.strategy = args.reward or DEFAULT, args.strategy or DEFAULT_STRATEGY
    args.seed = 0 if args.seed is None else args.seed
    space = space_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target_ms = args.target_ms
        if target_ms is None:
            target_ms = targets.target_at_quantile(search.target_model(args.predictor, space), space,
                                                   args.target_quantile)
        configured = search.configure(
            space, args.predictor, target_ms, args.evaluator, args.budget, strategy=args.strategy, reward=args.reward,
            seed=args.seed, strategy_options=key_values(args.strategy_option, "--strategy-option"), batch_size=args.batch_size,
            fidelity=args.fidelity, evaluator_options=evaluator_options(args), budget_seconds=args.budget_seconds)
    config, space, model, judge = configured
    from pynas.cli.common import print_warnings

    print_warnings("search", caught)
    print(f"latency model: {model.name} ({model.path}) over {space.name}; evaluator {judge.describe()}")
    print(targets.describe(config["target_distribution"], target_ms))
    budgets = [f"{args.budget} evaluations" if args.budget is not None else "",
               f"{args.budget_seconds:g} s of evaluation" if args.budget_seconds is not None else ""]
    if execution is not None:
        print(f"evaluations on {execution.executor}: {execution.workers} worker(s), "
              f"{execution.threads} thread(s) each{' at ' + execution.ray_address if execution.ray_address else ''}")
    print(f"reward {search.make_reward(args.reward, target_ms).describe()}; strategy {args.strategy}, "
          f"budget {' or '.join(filter(None, budgets))}, seed {args.seed}")
    sys.stdout.flush()
    with ui.Progress(args.budget or config["max_asks"], description="search") as bar:
        run = search.start(configured, args.out, progress=Tracker(bar, args.budget, target_ms), execution=execution)
    _finish(run, args, adb, execution)


VERIFY_FLAGS = ("no_verify", "adb", "profiler", "verify_top", "refine_budget", "refine_rounds")


def _adb_from_args(args):
    """--adb SERIAL (with --profiler) checked before the search: the device answers, now; also
    --verify-top, which needs a verification."""
    for flag, meaning in (("verify_top", "how many candidates to verify"),
                          ("refine_budget", "evaluations of a refinement after verifying"),
                          ("refine_rounds", "how many refinements may follow the verification")):
        if getattr(args, flag) is not None and args.no_verify:
            raise ValueError(f"--{flag.replace('_', '-')}: expected without --no-verify (it is {meaning})")
    if args.profiler is not None and args.adb is None:
        raise ValueError("--profiler: expected with --adb only (the pynas-profile binary to run on the device)")
    if args.adb is None:
        return None
    if args.no_verify:
        raise ValueError("--adb: expected without --no-verify (the device is only used to verify the pick)")
    from pathlib import Path

    from pynas.profiling.adb import AdbError, answers
    from pynas.verify.measure import OverAdb

    if args.profiler is None or not Path(args.profiler).is_file():
        raise ValueError(f"--profiler: expected the pynas-profile binary built for the device with --adb "
                         f"(bash scripts/build-profiler.sh aarch64), got {args.profiler!r}")
    adb = OverAdb(args.adb, args.profiler)
    try:
        answers(adb.serial, adb=adb.adb, timeout=adb.timeout)
    except AdbError as error:
        raise ValueError(f"--adb: {error}") from None
    return adb


def _finish(run, args, adb, execution) -> None:
    from pynas import search
    from pynas.search.loop import STRATEGY_ENDED
    from pynas.search.refine import DEFAULT_ROUNDS, close_loop
    from pynas.search.verification import BAND, DEFAULT_TOP

    per_sample = 1000 * run.overhead_s / max(run.asked, 1)
    throughput = run.latency_rows / run.latency_seconds if run.latency_seconds else float("nan")
    print(f"stopped: {run.stop_reason}; {run.evaluated} evaluated, {run.asked} asked; overhead {per_sample:.3f} ms "
          f"per sample (strategy, reward, log); latency model {throughput:,.0f} archs/s in the loop")
    top = args.verify_top or DEFAULT_TOP
    if not args.no_verify:
        print(f"verifying the pick (measuring the best under T where the run's bundle runs, then the next best "
              f"until one measures within {BAND:.0%} under T, up to {top})...")
        sys.stdout.flush()

    def on_round(reason: str, entry: dict) -> None:
        print(f"refinement {entry['round']}: {reason}: searching on at T / {entry['bias']:.3f} = "
              f"{entry['target_ms']:.4g} ms for {entry['evaluations']} evaluations, then verifying again")
        sys.stdout.flush()

    @contextmanager
    def round_progress(entry: dict):  # a bar per refinement round, as the search's own
        with ui.Progress(entry["evaluations"], description=f"refinement {entry['round']}") as bar:
            yield Tracker(bar, entry["evaluations"], entry["target_ms"])

    close_loop(run.folder, top=top, adb=adb, refine_budget=args.refine_budget,
               rounds=DEFAULT_ROUNDS if args.refine_rounds is None else args.refine_rounds,
               skip="--no-verify" if args.no_verify else None, on_round=on_round, round_progress=round_progress,
               execution=execution, strategy_ended=run.stop_reason == STRATEGY_ENDED)
    print(search.report(run.folder))
    print(f"wrote {run.folder}/summary.json, best.txt, pareto.png, verification.json")


def add_parsers(commands) -> None:
    from pynas.search.reward import DEFAULT, PRESETS
    from pynas.search.loop import DEFAULT_STRATEGY
    from pynas.search.strategies import STRATEGIES
    from pynas.search.verification import DEFAULT_TOP

    p = commands.add_parser(
        "search", help="search a space for the best architecture under a latency target",
        description="A new search needs --space, --target-ms (or --target-quantile), --evaluator, --budget and "
                    "--out; --resume DIR continues a stopped one, --report DIR prints (and writes) its results.")
    p.add_argument("--space", help="mnasnet, fbnet or nb201")
    p.add_argument("--resolution", type=flags.integer(1, 4096), help="the space's input resolution (its default)")
    p.add_argument("--setting", help="FBNet: imagenet or cifar100")
    p.add_argument("--predictor", help="latency bundle for the space (`pynas predictors`); default: this machine's "
                                       "own (`pynas device init`)")
    p.add_argument("--target-ms", type=flags.number(0, low_open=True), help="latency target T, ms")
    p.add_argument("--target-quantile", type=flags.number(0, 1, low_open=True),
                   help="T as a share of the space: the latency at this quantile (e.g. 0.25)")
    p.add_argument("--reward", choices=list(PRESETS),
                   help=f"default {DEFAULT}: lands at ~T in one search; soft/hard/v3: MnasNet's (see the README)")
    p.add_argument("--strategy", choices=list(STRATEGIES), help=f"default {DEFAULT_STRATEGY}")
    p.add_argument("--strategy-option", action="append", metavar="KEY=VALUE", help="a strategy's option (repeatable)")
    p.add_argument("--evaluator", help="nb201:cifar10|cifar100|imagenet16, python:MODULE:FUNCTION, "
                                       "python:FILE.py:FUNCTION, train:DATASET[:EPOCHS], zero-cost:PROXY or "
                                       "supernet:PATH")
    add_evaluator_flags(p)
    p.add_argument("--fidelity", type=int, choices=(12, 200), help="nb201 evaluators: 12 (default: 12-epoch "
                                                                    "validation accuracy, a proxy) or 200 (test)")
    p.add_argument("--budget", type=flags.integer(1, 10_000_000), help="accuracy evaluations")
    p.add_argument("--budget-seconds", type=flags.number(0, low_open=True), metavar="S",
                   help="stop when the evaluations' cost (as their evaluator reports it) sums to S seconds; with "
                        "--budget, whichever comes first")
    p.add_argument("--seed", type=flags.integer(0, 2**32 - 1), default=None)
    p.add_argument("--batch-size", type=flags.integer(1, 100_000), help="rows asked at a time (the strategy's default)")
    p.add_argument("--out", metavar="DIR", help="a new folder for the run's log and results")
    p.add_argument("--resume", metavar="DIR", help="continue the search in DIR")
    p.add_argument("--report", metavar="DIR", help="print the results of the search in DIR (writes pareto.png, "
                                                   "best.txt, summary.json)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not measure the pick at the end (by default the best under T is measured here when the "
                        "run's bundle is this machine's, or on --adb SERIAL, then the next best until one measures "
                        "<= T: `pynas verify`)")
    p.add_argument("--verify-top", type=flags.integer(1, 1000), metavar="K",
                   help=f"at the end, measure at most the K best architectures predicted under T (default {DEFAULT_TOP})")
    p.add_argument("--refine-budget", type=flags.integer(0, 10_000_000), metavar="N",
                   help="evaluations of a refinement round: when the latency model under-estimated the best ranked "
                        "and the verified pick is missing, more than 5%% under T or from far down the ranking, the "
                        "search goes on at T / bias for N more and verifies again (default: a quarter of the "
                        "evaluations spent; 0: never)")
    p.add_argument("--refine-rounds", type=flags.integer(0, 10), metavar="R",
                   help="refinement rounds at most (default 3; none after a strategy that ended on its own, as darts)")
    p.add_argument("--adb", metavar="SERIAL", help="verify the best architecture on this Android device (needs --profiler)")
    p.add_argument("--profiler", metavar="PATH", help="with --adb: pynas-profile built for the device")
    where.add_flags(p)
    p.set_defaults(run=cmd_search)
