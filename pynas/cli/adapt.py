"""`pynas adapt ARCH --target-ms T --evaluator E`: NetAdapt on the latency model (`pynas.ship.netadapt`).

    pynas adapt mnasnet-a1 --target-ms 9 --evaluator train:fashion-mnist:5 --proxy-resolution 16 \\
        --evaluator-option train_images=5000 --finetune-epochs 3 --json adapt.json -o adapted.pt
    pynas adapt mnasnet-a1 --target-ms 9 --evaluator python:acc.py:score      # the user's scores

Each step narrows one width group or one expansion ratio by the least that cuts the predicted
latency by delta (--delta, a fraction of the start latency: 0.01), scores every such proposal and
keeps the best accuracy change per ms given up; it prints each step (what changed, predicted ms,
accuracy, ratio) and ends with the final architecture. The predictor must be a model bundle (a
table bundle prices only its space's grid, and adapted widths leave it).

How proposals are scored (--scoring):

* ``fine-tune`` (the default with a train: evaluator; NetAdapt's own way, `pynas.ship.tuning`):
  the seed's proxy is trained for the evaluator's EPOCHS on `train_images` of the training split;
  each proposal removes the channels with the smallest BN-folded filter norms from the current
  network, is fine-tuned on --tune-images images at --tune-lr and scored on --holdout-images other
  training images; the kept proposal's network carries on. --finetune-epochs E fine-tunes the final
  network E epochs and scores it on the validation split (`val_images` of it); -o saves it. The
  evaluator's options set the proxy (resolution, train_images, val_images, seed, threads, lr,
  batch_size; widths stay the architecture's own: channels are removed one for one). Runs in this
  process (no --executor).
* ``scratch`` (the only way with python:): every proposal scored on its own by the evaluator (a
  train: one trains each from scratch: its seed noise, a point or more at a proxy budget, can
  exceed the differences between proposals); evaluations run where --executor/--workers/--ray say.

A run is long (at delta 0.01 tens of steps, each fine-tuning a dozen proposals): --checkpoint DIR
makes the seed's training and every accepted step durable in DIR (`pynas.ship.checkpoint`), and the
same command run again with it resumes at the next step (the seed is not trained again; its log says
"resumed at step N"); a checkpoint of another run (architecture, target, delta, latency model,
scorer or its options) is refused with the field that differs.

When the bundle describes this machine, the network reached is measured (`pynas verify`'s way) and
the steps go on under a tightened aim while it measures over T with its slack, up to
--verify-rounds measurements (the module docstring of `pynas.ship.netadapt`; every measurement in
--json's "rounds"); with another machine's bundle the output says why nothing was measured.

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


def _json_path(args, attribute: str = "json", flag: str = "--json") -> Path | None:
    if getattr(args, attribute) is None:
        return None
    path = Path(getattr(args, attribute))
    if path.is_dir():
        raise ValueError(f"{flag} {path}: expected a file path, got a folder")
    if path.exists() and not args.force:
        raise ValueError(f"{flag} {path}: expected a new file, got an existing one (--force overwrites it)")
    if not path.parent.is_dir():
        raise ValueError(f"{flag} {path}: expected a file in an existing folder, got no folder {path.parent}")
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


def _scoring(args, kind: str, execution) -> str:
    scoring = args.scoring or ("fine-tune" if kind == "train" else "scratch")
    if scoring == "fine-tune":
        if kind != "train":
            raise ValueError(f"--scoring: expected scratch with a {kind}: evaluator (fine-tune trains the network "
                             f"itself: it needs train:DATASET[:EPOCHS]), got fine-tune")
        if execution is not None:
            raise ValueError("--executor: expected none with --scoring fine-tune (the network's weights are carried "
                             "from step to step in this process), got one")
    else:
        for flag, value in (("--finetune-epochs", args.finetune_epochs), ("-o", args.output),
                            ("--tune-images", args.tune_images), ("--tune-lr", args.tune_lr),
                            ("--holdout-images", args.holdout_images)):
            if value is not None:
                raise ValueError(f"{flag}: expected only with --scoring fine-tune (a train: evaluator), got {value}")
    return scoring


def _fine_tune_scorer(judge, args):
    """A `pynas.ship.tuning.FineTuneScorer` with the train: evaluator's data and options."""
    from pynas.ship import tuning

    if judge.width_mult != 1.0:
        raise ValueError(f"--width-mult: expected 1 with --scoring fine-tune (channels are removed from the "
                         f"architecture's own widths, one for one), got {judge.width_mult:g}")
    if judge.exact:
        raise ValueError("evaluator option exact: expected false with --scoring fine-tune (the proxy's header is "
                         "adapted to the data), got true")
    holdout = args.holdout_images or tuning.DEFAULT_HOLDOUT
    train_images = judge.train_images
    if train_images is None:
        train_images = len(judge.data.x_train) - holdout
    return tuning.FineTuneScorer(
        judge.data, pretrain_epochs=judge.epochs, resolution=judge.resolution, train_images=train_images,
        holdout_images=holdout, tune_images=args.tune_images or min(tuning.DEFAULT_TUNE_IMAGES, train_images),
        tune_lr=args.tune_lr or tuning.DEFAULT_TUNE_LR, lr=judge.lr, batch_size=judge.batch_size,
        val_images=judge.val_images, seed=judge.seed, threads=judge.threads)


def cmd_adapt(args) -> None:
    from pynas.cli.common import arch_from_args, print_warnings
    from pynas.ship import netadapt
    from pynas.ship.checkpoint import check_folder

    execution = where.execution_from_args(args)
    arch = arch_from_args(args)
    kind = args.evaluator.partition(":")[0]
    if kind not in EVALUATOR_KINDS:
        raise ValueError(f"--evaluator: expected train:DATASET[:EPOCHS] or python:MODULE:FUNCTION (evaluators that "
                         f"score an architecture off a space's grid), got {args.evaluator!r}")
    scoring = _scoring(args, kind, execution)
    json_path = _json_path(args)
    model_path = _json_path(args, "output", "-o")
    checkpoint = None if args.checkpoint is None else check_folder(args.checkpoint)
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
    if scoring == "fine-tune":
        judge = _fine_tune_scorer(judge, args)
    else:
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
                                max_steps=args.max_steps, log=say, checkpoint=checkpoint,
                                verify_rounds=args.verify_rounds)
    except netadapt.EvaluationError as error:
        raise EvaluationFailed(str(error)) from None
    finally:
        if scoring == "scratch":
            close(judge)
    print(f"stopped: {result.stop_reason}")
    if result.rounds_skipped and args.verify_rounds:
        print(f"not measured: {result.rounds_skipped}")
    print(f"final: {result.predicted_ms:.3f} ms predicted (start {result.start_ms:.3f}), accuracy "
          f"{result.accuracy:.2f} (start {result.start_accuracy:.2f}), {len(result.steps)} step(s)")
    print(result.arch)
    record = {**result.to_json(), "predictor": predictor.name, "evaluator": args.evaluator, "scoring": scoring,
              "evaluator_options": options, "delta_fraction": args.delta}
    if scoring == "fine-tune":
        record["validation_accuracy"] = judge.report(judge.model, judge.proxy)
        print(f"top-1 on the validation split: {record['validation_accuracy']:.2f} (the adapted network as carried)")
        if args.finetune_epochs:
            judge.model, _ = judge.long_term(args.finetune_epochs, model=judge.model)
            record["finetune_epochs"] = args.finetune_epochs
            record["finetuned_accuracy"] = judge.report(judge.model, judge.proxy)
            print(f"after {args.finetune_epochs} epoch(s) of fine-tuning: {record['finetuned_accuracy']:.2f}")
        if model_path is not None:
            import torch

            torch.save({"arch": str(judge.proxy), "target_arch": str(result.arch),
                        "state_dict": judge.model.state_dict()}, model_path)
            print(f"wrote {model_path} (torch.load(..., weights_only=True): arch, target_arch, state_dict)")
    if json_path is not None:
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {json_path}")
    if result.stalled and result.predicted_ms > args.target_ms:
        raise ValueError(f"--target-ms: {args.target_ms:g} ms is below the smallest architecture NetAdapt reaches "
                         f"from {arch} ({result.predicted_ms:.3f} ms: {result.stop_reason})")


def add_parsers(commands) -> None:
    from pynas.ship.netadapt import DEFAULT_DELTA_FRACTION
    from pynas.ship.plan_check import DEFAULT_ROUNDS
    from pynas.ship.tuning import DEFAULT_HOLDOUT, DEFAULT_TUNE_IMAGES, DEFAULT_TUNE_LR  # no torch at import

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
    p.add_argument("--scoring", choices=("fine-tune", "scratch"),
                   help="fine-tune: carry the trained network's weights, fine-tune each proposal briefly (default "
                        "with train:); scratch: score each proposal on its own (python:, or train: from scratch)")
    p.add_argument("--tune-images", type=flags.integer(2), metavar="N",
                   help=f"fine-tune: images per proposal's short fine-tune (default {DEFAULT_TUNE_IMAGES})")
    p.add_argument("--tune-lr", type=flags.number(0, 10, low_open=True), metavar="LR",
                   help=f"fine-tune: the short fine-tune's peak lr (default {DEFAULT_TUNE_LR:g})")
    p.add_argument("--holdout-images", type=flags.integer(1), metavar="N",
                   help=f"fine-tune: training images held out to score proposals on (default {DEFAULT_HOLDOUT})")
    p.add_argument("--finetune-epochs", type=flags.integer(1, 10_000), metavar="E",
                   help="fine-tune: fine-tune the final network E epochs (default: none)")
    p.add_argument("-o", "--output", metavar="FILE", help="fine-tune: torch.save the final network (arch, state_dict)")
    p.add_argument("--verify-rounds", type=flags.integer(0, 20), default=DEFAULT_ROUNDS, metavar="N",
                   help="when the bundle is this machine's: measure the network reached and go on under a tightened "
                        f"aim while it measures over T, up to N measurements (default {DEFAULT_ROUNDS}; 0: predicted "
                        "only)")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="make the run durable in folder DIR after the seed and every step (created if missing); "
                        "run the same command again to resume at the next step")
    p.add_argument("--json", metavar="OUT", help="write the run (every step's proposals and scores) to OUT")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    where.add_flags(p)
    p.set_defaults(run=cmd_adapt)
