"""`pynas slim` (pynas/cli/slim.py): bad inputs end in one line naming the field, exit 2, before any
training; a tiny run on digits writes its JSON and a model torch.load(weights_only=True) reads."""
import json
import re

import pytest

from pynas.cli import flags, slim as slim_cli

# The shipped bundle of a machine like this one (priced anywhere; it warns that it was made elsewhere).
PREDICTOR = "x86-avx512-native"
ARCH = "mnasnet-a1"  # predicted 3.66 ms by it; slimming reaches about 0.5 ms


def run(argv):
    """The command through a local parser, errors as `pynas.cli.main` reports them: (status, stderr)."""
    parser = flags.Parser(prog="pynas")
    commands = parser.add_subparsers(dest="command", required=True)
    slim_cli.add_parsers(commands)
    try:
        args = parser.parse_args(["slim", *argv])
    except SystemExit as done:
        return done.code, None
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        return 2, " ".join(str(error).split())  # as pynas.cli.main prints it
    return 0, None


@pytest.fixture
def no_training(monkeypatch):
    from pynas.ship import slimming

    monkeypatch.setattr(slimming, "train_sparse", lambda *a, **k: pytest.fail("trained before the inputs were checked"))


BASE = [ARCH, "--dataset", "digits", "--predictor", PREDICTOR]


@pytest.mark.parametrize("argv, field", [
    (["--target-ms", "0"], None),  # flag type: exit 2 from argparse
    (["--target-ms", "abc"], None),
    (["--target-ms", "5", "--epochs", "0"], None),
    (["--target-ms", "5", "--l1", "-1"], None),
    (["--target-ms", "5", "--train-images", "1"], None),
    (["--target-ms", "5", "--lanes", "7"], None),
    (["--target-ms", "5", "--lanes", "abc"], None),
    (["--target-ms", "5", "--verify-rounds", "-1"], None),
    (["--target-ms", "5", "--verify-rounds", "1.5"], None),
])
def test_bad_flags_exit_2(argv, field, capsys, no_training):
    status, _ = run(BASE + argv)
    assert status == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error: argument" in err
    assert argv[-2] in err  # the flag is named


@pytest.mark.parametrize("changes, expected", [
    ({"--target-ms": "0.001"}, r"^--target-ms: expected at least [0-9.]+ ms \(the smallest"),
    ({"--target-ms": "1000"}, r"^--target-ms: expected less than [0-9.]+ ms"),
    ({"--predictor": "no-such-bundle"}, r"no-such-bundle"),
    ({"--train-images": "100000"}, r"^--train-images: expected at most"),
    ({"--val-images": "100000"}, r"^--val-images: expected at most"),
    ({"--dataset": "no/such/folder"}, r"no/such/folder"),
])
def test_bad_inputs_are_one_line_errors_naming_the_field(changes, expected, no_training):
    pytest.importorskip("sklearn")
    options = {"--dataset": "digits", "--predictor": PREDICTOR, "--target-ms": "3", **changes}
    status, message = run([ARCH] + [x for item in options.items() for x in item])
    assert status == 2
    assert message is not None and "\n" not in message
    assert re.search(expected, message), message


def test_bad_architecture_and_outputs(tmp_path, no_training):
    status, message = run(["net_res224_cls1000:stem_k3_s2_c16:bogus_r1:head_c64", "--target-ms", "3",
                           "--dataset", "digits"])
    assert status == 2 and "bogus" in message
    existing = tmp_path / "out.json"
    existing.write_text("{}")
    status, message = run(BASE + ["--target-ms", "3", "--json", str(existing)])
    assert status == 2 and message.startswith("--json") and "--force" in message
    status, message = run(BASE + ["--target-ms", "3", "-o", str(tmp_path / "no" / "model.pt")])
    assert status == 2 and message.startswith("-o")


def test_a_tiny_run_writes_json_and_a_weights_only_model(tmp_path, capsys):
    pytest.importorskip("sklearn")
    torch = pytest.importorskip("torch")
    out, model = tmp_path / "slim.json", tmp_path / "slim.pt"
    status, message = run(BASE + ["--target-ms", "2.5", "--epochs", "1", "--finetune-epochs", "1",
                                  "--resolution", "8", "--train-images", "256", "--batch-size", "64",
                                  "--json", str(out), "-o", str(model)])
    assert status == 0, message
    summary = json.loads(out.read_text())
    assert summary["pruned_ms"] <= 2.5 < summary["predicted_ms"]
    saved = torch.load(model, weights_only=True)
    from pynas.torch_builder import build_torch

    build_torch(saved["arch"]).load_state_dict(saved["state_dict"])
    assert saved["target_arch"] == summary["pruned_arch"]
    out = capsys.readouterr().out
    assert "top-1" in out
    # The shipped bundle is another machine's: the plan is not measured, and the output and JSON say why.
    assert "not this machine" in summary["verification"]["skipped"]
    assert "plan: will not be measured here" in out and "not measured:" in out
    assert summary["limits"]["lanes"] == 8 and summary["limits"]["within_fit"]
    assert any(n.startswith("fitted widths: stem >= 32") for n in summary["limits"]["notes"])


def test_compare_uniform_reports_the_uniform_width_baseline_at_the_same_target(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    out = tmp_path / "slim.json"
    status, message = run(BASE + ["--target-ms", "2.5", "--epochs", "1", "--finetune-epochs", "1", "--resolution", "8",
                                  "--train-images", "256", "--batch-size", "64", "--compare-uniform", "--json", str(out)])
    assert status == 0, message
    summary = json.loads(out.read_text())
    assert summary["uniform"]["predicted_ms"] <= 2.5 and 0 < summary["uniform"]["multiplier"] < 1
    assert summary["accuracy_gain"] == pytest.approx(summary["accuracy_finetuned"] - summary["uniform"]["accuracy"])
    assert f"uniform width baseline: x{summary['uniform']['multiplier']:g}" in capsys.readouterr().out
    assert "not this machine" in summary["uniform"]["verification"]["skipped"]  # the shipped AMD bundle


def test_defaults_are_the_modules():
    from pynas.ship import slimming

    parser = flags.Parser(prog="pynas")
    slim_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["slim", ARCH, "--target-ms", "3", "--dataset", "digits"])
    assert (args.epochs, args.finetune_epochs, args.l1, args.finetune_lr) == (
        slimming.DEFAULT_EPOCHS, slimming.DEFAULT_FINETUNE_EPOCHS, slimming.DEFAULT_L1, slimming.DEFAULT_FINETUNE_LR)
    assert (args.epochs, args.finetune_epochs, args.l1, args.finetune_lr) == (2, 6, 0.02, 0.05)
    from pynas.ship.plan_check import DEFAULT_ROUNDS

    assert (args.lanes, args.beyond_fit, args.verify_rounds) == (None, False, DEFAULT_ROUNDS)
