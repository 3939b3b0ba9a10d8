"""`pynas adapt ARCH --target-ms T --evaluator E`: NetAdapt on the latency model (`pynas.ship.netadapt`).

    pynas adapt mnasnet-a1 --target-ms 9 --evaluator train:fashion-mnist:1 \\
        --evaluator-option train_images=2000 --proxy-resolution 28 --json adapt.json

Each step narrows one width group or one expansion ratio by the least that cuts the predicted
latency by delta (--delta, a fraction of the start latency: 0.01), scores every such proposal with
the evaluator and keeps the best accuracy change per ms given up; it prints each step (what
changed, predicted ms, accuracy, ratio) and ends with the final architecture. Evaluations run where
--executor/--workers/--ray say (as in `pynas evaluate`). The predictor must be a model bundle (a
table bundle prices only its space's grid, and adapted widths leave it).

Bad input ends before any work with a one-line error naming the flag (exit 2), a target below what
the narrowest architecture is predicted at included; a run that stops short of the target (no
shrink cuts delta any more, every proposal's evaluation failed) prints its steps, writes --json,
then ends with that error naming --target-ms.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from pynas.cli import execution as where, flags
from pynas.cli.evaluator_options import add_flags as add_evaluator_flags, options_from_args

# Evaluators that score an architecture itself, without tokens of a space: the only ones that can
# score widths off every space's grid (pynas.cli.evaluate.ARCHITECTURE_KINDS).
EVALUATOR_KINDS = ("train", "python")


def _json_path(args) -> Path | None:
    if args.json is None:
        return None
    path = Path(args.json)
    if path.exists() and not args.force:
        raise ValueError(f"--json {path}: expected a new file, got an existing one (--force overwrites it)")
    if not path.parent.is_dir():
        raise ValueError(f"--json {path}: expected a file in an existing folder, got no folder {path.parent}")
    return path


def _model_bundle(name: str | None):
    from pynas.cli.common import load_for_prediction
    from pynas.predictor.predictors import Predictor

    bundle = load_for_prediction(name)
    if not isinstance(bundle, Predictor):
        raise ValueError(f"--predictor {bundle.name}: expected a model bundle (kind xgboost, e.g. this machine's "
                         f"own from `pynas device init`), got kind {bundle.manifest.kind}: it prices only its "
                         f"space's grid, and NetAdapt's widths leave it")
    return bundle


def cmd_adapt(args) -> None:
    from pynas.cli.common import arch_from_args, print_warnings
    from pynas.ship import netadapt

    execution = where.execution_from_args(args)
    arch = arch_from_args(args)
    kind = args.evaluator.partition(":")[0]
    if kind not in EVALUATOR_KINDS:
        raise ValueError(f"--evaluator: expected train:DATASET[:EPOCHS] or python:MODULE:FUNCTION (evaluators that "
                         f"score an architecture off a space's grid), got {args.evaluator!r}")
    json_path = _json_path(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = _model_bundle(args.predictor)
        start_ms = predictor.predict(arch)
        floor_ms = netadapt.check_target(arch, predictor, args.target_ms)
    print_warnings("adapt", caught)

    from pynas.cli.evaluate import EvaluationFailed
    from pynas.search.evaluators import make_evaluator
    from pynas.search.workers import close, default_execution, with_workers
    from pynas.space import get_space

    # The space only tells the evaluator that candidates are block architectures (adapted ones
    # carry no tokens of it).
    space = get_space("mnasnet")
    options = options_from_args(args)
    judge = make_evaluator(args.evaluator, space, options=options)
    config = {"spec": args.evaluator, "fidelity": None, "options": options}
    judge = with_workers(judge, config, space, execution or default_execution(args.evaluator))
    floor = (f"{floor_ms:.3f} ms" if floor_ms is not None else
             "beyond what the latency model prices, so the target is checked as the steps go")
    print(f"latency model {predictor.name}: {start_ms:.3f} ms predicted for {arch}; target {args.target_ms:g} ms "
          f"(the narrowest architecture: {floor})")
    print(f"evaluator {judge.describe()}")
    sys.stdout.flush()

    def say(line: str) -> None:
        print(line)
        sys.stdout.flush()

    try:
        result = netadapt.adapt(arch, predictor, args.target_ms, judge, delta_fraction=args.delta,
                                max_steps=args.max_steps, log=say)
    except netadapt.EvaluationError as error:
        raise EvaluationFailed(str(error)) from None
    finally:
        close(judge)
    print(f"stopped: {result.stop_reason}")
    print(f"final: {result.predicted_ms:.3f} ms predicted (start {result.start_ms:.3f}), accuracy "
          f"{result.accuracy:.2f} (start {result.start_accuracy:.2f}), {len(result.steps)} step(s)")
    print(result.arch)
    if json_path is not None:
        record = {**result.to_json(), "predictor": predictor.name, "evaluator": judge.name,
                  "evaluator_options": options, "delta_fraction": args.delta}
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {json_path}")
    if result.stalled:
        raise ValueError(f"--target-ms: {args.target_ms:g} ms is below the smallest architecture NetAdapt reaches "
                         f"from {arch} ({result.predicted_ms:.3f} ms: {result.stop_reason})")


def add_parsers(commands) -> None:
    from pynas.ship.netadapt import DEFAULT_DELTA_FRACTION

    p = commands.add_parser(
        "adapt", help="NetAdapt: narrow an architecture step by step down to a latency target",
        description="Each step proposes, per width group and per ir stage, the least shrink that cuts the "
                    "predicted latency by delta, scores the proposals with the evaluator and keeps the best "
                    "accuracy change per ms cut; it stops at the target.")
    p.add_argument("arch", metavar="ARCH", help="a preset or an architecture string (its deployment form: the "
                                                "latency is predicted for it)")
    p.add_argument("--resolution", type=flags.integer(1, 4096), help="the architecture's input resolution (its own)")
    p.add_argument("--target-ms", type=flags.number(0, low_open=True), required=True, help="latency target T, ms")
    p.add_argument("--evaluator", required=True, help="train:DATASET[:EPOCHS] or python:MODULE:FUNCTION "
                                                      "(python:FILE.py:FUNCTION)")
    add_evaluator_flags(p)
    p.add_argument("--predictor", help="a model bundle (`pynas predictors`); default: this machine's own "
                                       "(`pynas device init`)")
    p.add_argument("--delta", type=flags.number(0, 0.5, low_open=True), default=DEFAULT_DELTA_FRACTION,
                   metavar="FRACTION", help=f"least cut per step, as a fraction of the start latency (default "
                                            f"{DEFAULT_DELTA_FRACTION:g}, MobileNetV3's)")
    p.add_argument("--max-steps", type=flags.integer(1, 1_000_000), metavar="N",
                   help="stop after N steps even above the target (default: until the target)")
    p.add_argument("--json", metavar="OUT", help="write the run (every step's proposals and scores) to OUT")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    where.add_flags(p)
    p.set_defaults(run=cmd_adapt)
