"""`pynas slim ARCH --target-ms T --dataset D`: Network Slimming to a latency target
(`pynas.ship.slimming`): sparsity training on the dataset's proxy task, pruning planned on the
latency model, fine-tuning; optionally against uniform width scaling at the same target.

    pynas slim mnasnet-a1 --target-ms 8 --dataset fashion-mnist --train-images 10000 --json slim.json -o slim.pt

Every input (architecture, bundle, target, dataset, subset sizes, output paths) is checked before
any training; a target below the smallest architecture slimming reaches is an error naming
--target-ms.

Where the plan may go: every count in steps of 8 channels (--lanes),
and no segment below the widths the bundle was fitted on (--beyond-fit lifts that). When the bundle
is this machine's, the planned network is measured here and planned again under a tightened target
while it measures over T (--verify-rounds, 0: not measured; `pynas.ship.plan_check`); with another
machine's bundle the output says it was not measured, and why.
"""
from __future__ import annotations

from pathlib import Path

from pynas.cli import flags


def _output(path: str | None, flag: str, force: bool) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{flag} {out}: expected a file path, got a folder")
    if not out.parent.is_dir():
        raise ValueError(f"{flag} {out}: expected a file in an existing folder, got no folder {out.parent}")
    if out.exists() and not force:
        raise ValueError(f"{flag} {out}: expected a new file, got an existing one (--force overwrites it)")
    return out


def _check_subset(flag: str, wanted: int | None, available: int, name: str) -> None:
    if wanted is not None and wanted > available:
        raise ValueError(f"{flag}: expected at most {available} (the {name} split's images), got {wanted}")


def cmd_slim(args) -> None:
    import json
    import time
    import warnings

    from pynas.cli.common import load_for_prediction, print_warnings
    from pynas.data import load_dataset
    from pynas.presets import resolve
    from pynas.ship import plan_check, slimming

    json_path = _output(args.json, "--json", args.force)
    model_path = _output(args.output, "-o", args.force)
    arch = resolve(args.arch)
    limits = {"lanes": args.lanes, "within_fit": not args.beyond_fit}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load_for_prediction(args.predictor)
        smallest, full = slimming.check_target(arch, predictor, args.target_ms, field_name="--target-ms", **limits)
        _, planned_within = slimming.planning_layout(arch, predictor, **limits)
        unmeasured = plan_check.cannot_measure(predictor) if args.verify_rounds else None
        uniform = (slimming.uniform_width_baseline(arch, predictor, args.target_ms) if args.compare_uniform
                   else None)
    print_warnings("slim", caught)
    data = load_dataset(args.dataset, seed=args.data_seed)
    _check_subset("--train-images", args.train_images, len(data.x_train), "training")
    _check_subset("--val-images", args.val_images, len(data.x_val), "validation")
    print(f"{arch}: predicted {full:.3f} ms by {predictor.name}; target {args.target_ms:g} ms (slimming reaches "
          f"down to {smallest:.3f} ms); training on {data.describe()} at {args.resolution} px")
    for note in planned_within.notes:
        print(f"  plan: {note}")
    if unmeasured is not None:
        print(f"  plan: will not be measured here ({unmeasured})")
    if uniform is not None:
        print(f"uniform width baseline: x{uniform.multiplier:g}, predicted {uniform.predicted_ms:.3f} ms"
              + ("" if unmeasured is not None or not args.verify_rounds else
                 " (measured before training, and narrowed while it measures over T, as the plan is)"))
    start = time.perf_counter()
    options = dict(epochs=args.epochs, finetune_epochs=args.finetune_epochs, l1=args.l1, resolution=args.resolution,
                   finetune_lr=args.finetune_lr, verify_rounds=args.verify_rounds, **limits, seed=args.seed, threads=args.threads, batch_size=args.batch_size,
                   lr=args.lr, train_images=args.train_images, val_images=args.val_images,
                   progress=lambda phase: print(f"  [{time.perf_counter() - start:.0f} s] {phase}", flush=True))
    if args.compare_uniform:
        comparison = slimming.compare_with_uniform(arch, data, predictor, args.target_ms, **options)
        result = comparison["slim"]
    else:
        comparison, result = None, slimming.slim(arch, data, predictor, args.target_ms, **options)
    _print_result(result)
    summary = result.as_dict()
    if comparison is not None:
        u = comparison["uniform"]
        print(f"uniform x{u['multiplier']:g}: {u['arch']}\n  predicted {u['predicted_ms']:.3f} ms, top-1 "
              f"{u['accuracy']:.2f}% after {u['epochs']} epochs; slimming {comparison['accuracy_gain']:+.2f} points at "
              f"{comparison['ms_difference']:+.3f} ms")
        if "rounds" in u["verification"]:
            for r in u["verification"]["rounds"]:
                print(f"  uniform measured: x{r['multiplier']:g} {r['measured_ms']:.4g} ms ({r['measured_over_target']:.3f} "
                      f"x T), with {100 * r['slack']:.1f}% slack {r['upper_ms']:.4g} ms{', fits' if r['fits'] else ''}")
        summary["uniform"] = u
        summary["accuracy_gain"] = comparison["accuracy_gain"]
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {json_path}")
    if model_path is not None:
        import torch

        torch.save(result.export(), model_path)
        print(f"wrote {model_path} (torch.load(..., weights_only=True): arch, target_arch, state_dict)")


def _print_result(result) -> None:
    from pynas.ship import plan_check

    aim = f", planned for {result.planned_for_ms:.4g}" if result.planned_for_ms != result.target_ms else ""
    print(f"pruned: {result.pruned_arch}\n  predicted {result.pruned_ms:.3f} ms (from {result.predicted_ms:.3f}; "
          f"target {result.target_ms:g}{aim})")
    print(plan_check.describe(result.verification))
    for row in result.stages:
        before, after = row["channels"]
        line = f"  {row['part']:>8}: c {before} -> {after}"
        if "expanded" in row:
            line += f", e {row['expansion'][0]:g} -> {row['expansion'][1]:g} (expanded {row['expanded'][0]} -> " \
                    f"{row['expanded'][1]})"
        print(line)
    print(f"top-1: {result.accuracy_sparse:.2f}% after sparsity training, {result.accuracy_pruned:.2f}% pruned, "
          f"{result.accuracy_finetuned:.2f}% fine-tuned ({result.seconds:.0f} s)")


def add_parsers(commands) -> None:
    from pynas.ship.plan_check import DEFAULT_ROUNDS
    from pynas.ship.slimming import ALLOWED_LANES, SIMD_LANES, DEFAULT_EPOCHS, DEFAULT_FINETUNE_EPOCHS, DEFAULT_FINETUNE_LR, DEFAULT_L1

    p = commands.add_parser(
        "slim", help="Network Slimming to a latency target (L1 on BN scales, pruning on the latency model)",
        description="Trains ARCH's proxy (the dataset's channels and classes, --resolution px, the same widths) "
                    "with an L1 penalty on BatchNorm scale factors, prunes the channels with the smallest ones "
                    "down to widths the latency model predicts at or under --target-ms, fine-tunes, and prints "
                    "the pruned architecture and its accuracy.")
    p.add_argument("arch", metavar="ARCH", help="a preset or architecture string (as the predictor prices it)")
    p.add_argument("--target-ms", type=flags.number(0, low_open=True), required=True,
                   help="the pruned architecture's predicted latency bound (ms)")
    p.add_argument("--dataset", required=True, help="fashion-mnist, digits, a folder of class folders or a file.npz")
    p.add_argument("--data-seed", type=flags.integer(0), default=0, help="the dataset's train/validation split seed")
    p.add_argument("--predictor", metavar="BUNDLE", help="latency bundle (default: this machine's)")
    p.add_argument("--epochs", type=flags.integer(1, 10_000), default=DEFAULT_EPOCHS,
                   help=f"sparsity training epochs ({DEFAULT_EPOCHS})")
    p.add_argument("--finetune-epochs", type=flags.integer(1, 10_000), default=DEFAULT_FINETUNE_EPOCHS,
                   help=f"fine-tuning epochs ({DEFAULT_FINETUNE_EPOCHS})")
    p.add_argument("--l1", type=flags.number(0, 1), default=DEFAULT_L1,
                   help=f"L1 penalty on BN scale factors ({DEFAULT_L1:g} for a few epochs; Liu et al.'s 1e-4 is for 160)")
    p.add_argument("--resolution", type=flags.integer(8, 4096), default=32, help="proxy input resolution (32)")
    p.add_argument("--train-images", type=flags.integer(2), help="a seeded subset of the training split (default all)")
    p.add_argument("--val-images", type=flags.integer(1), help="a seeded subset of the validation split")
    p.add_argument("--batch-size", type=flags.integer(1, 100_000), default=128)
    p.add_argument("--lr", type=flags.number(0, 10, low_open=True), default=0.05, help="sparsity training lr (0.05)")
    p.add_argument("--finetune-lr", type=flags.number(0, 10, low_open=True), default=DEFAULT_FINETUNE_LR,
                   help=f"fine-tuning peak lr ({DEFAULT_FINETUNE_LR:g})")
    p.add_argument("--seed", type=flags.integer(0, 2**32 - 1), default=0)
    p.add_argument("--threads", type=flags.threads, default=1, help="torch threads (results depend on it)")
    p.add_argument("--lanes", type=flags.integer_of(ALLOWED_LANES), default=None,
                   help=f"plan every count in steps of this many channels, or the original count ({SIMD_LANES}: AVX2's "
                        f"float32 lanes; on AVX-512 8-channel steps measured in proportion too)")
    p.add_argument("--beyond-fit", action="store_true",
                   help="let the plan go below the channel counts the bundle's segments were measured with (its "
                        "prices are extrapolations there)")
    p.add_argument("--verify-rounds", type=flags.integer(0, 20), default=DEFAULT_ROUNDS,
                   help=f"measure the planned network here (the bundle must be this machine's) and re-plan under a "
                        f"tightened target while it measures over T, up to this many measurements ({DEFAULT_ROUNDS}; "
                        f"0: do not measure)")
    p.add_argument("--compare-uniform", action="store_true",
                   help="also train the uniform width multiplier that fits the target, for the same total epochs")
    p.add_argument("--json", metavar="OUT", help="write the result (and the comparison) as JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="torch.save the pruned fine-tuned model: arch + state_dict")
    p.add_argument("--force", action="store_true", help="overwrite --json / -o files that exist")
    p.set_defaults(run=cmd_slim)
