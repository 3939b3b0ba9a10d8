"""`pynas adapt` (pynas/cli/adapt.py): NetAdapt from the command line with a shipped model bundle
and a python: evaluator; bad input is one line, exit 2, before any evaluation."""
from __future__ import annotations

import json
import textwrap
import warnings

import pytest

from pynas import cli
from pynas.cli import adapt, flags

ARCH = "net_res224_cls10:stem_k3_s2_c16:ds_r1_k3_s1_c16:ir_r2_k3_s2_e4_c24:ir_r2_k5_s2_e4_c40_se0.25:head_c256"
BUNDLE = "x86-avx512-native"  # shipped; made on another machine (a warning on stderr says so)
EVALUATOR = '''
import zlib
from pathlib import Path
def accuracy(archs):
    with open(Path(__file__).with_name("calls.txt"), "a") as f:
        f.write(f"{len(archs)}\\n")
    return [40 + (zlib.crc32(a.encode()) % 4000) / 100 for a in archs]
def only_the_start(archs):
    return [50.0 if a == START else None for a in archs]
START = START_ARCH
'''


def _parser() -> flags.Parser:
    parser = flags.Parser(prog="pynas")
    commands = parser.add_subparsers(dest="command", required=True)
    adapt.add_parsers(commands)
    return parser


@pytest.fixture
def run(monkeypatch, capsys):
    """`pynas adapt ARGS` through the command line's own error handling (its parser: this module's)."""
    monkeypatch.setattr(cli, "build_parser", _parser)

    def call(*args):
        code = cli.main(["adapt", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err
    return call


@pytest.fixture
def evaluator(tmp_path):
    (tmp_path / "acc.py").write_text(textwrap.dedent(EVALUATOR.replace("START_ARCH", repr(ARCH))))
    return tmp_path


def _start_ms() -> float:
    from pynas.predictor import bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bundle.load(BUNDLE).predict(ARCH)


def test_a_run_prints_its_steps_and_writes_json(run, evaluator):
    target = 0.95 * _start_ms()
    out_json = evaluator / "adapt.json"
    code, out, err = run(ARCH, "--target-ms", target, "--evaluator", f"python:{evaluator / 'acc.py'}:accuracy",
                         "--predictor", BUNDLE, "--delta", 0.02, "--json", out_json)
    assert code == 0, err
    assert "describes another machine" in err  # the bundle's device warning, once
    assert "step 1: " in out and "ratio" in out and "stopped: reached the target" in out
    assert "not measured: " in out  # another machine's bundle: the network reached is not timed here
    record = json.loads(out_json.read_text())
    assert record["rounds"] == [] and record["measured_fits"] is None and "rounds_skipped" in record
    assert record["reached"] and record["predicted_ms"] <= target and record["steps"]
    assert record["predictor"] == BUNDLE and record["delta_fraction"] == 0.02
    assert out.splitlines()[-2] == record["arch"] and record["start"] == ARCH
    assert record["steps"][0]["chosen"]["ratio"] == max(p["ratio"] for p in record["steps"][0]["proposals"])


def test_a_run_resumes_from_its_checkpoint(run, evaluator):
    args = [ARCH, "--target-ms", 0.95 * _start_ms(), "--evaluator", f"python:{evaluator / 'acc.py'}:accuracy",
            "--predictor", BUNDLE, "--delta", 0.01]
    code, _, err = run(*args, "--json", evaluator / "whole.json")
    assert code == 0, err
    whole = json.loads((evaluator / "whole.json").read_text())
    assert len(whole["steps"]) >= 2
    folder = evaluator / "ckpt"
    code, out, err = run(*args, "--checkpoint", folder, "--max-steps", 1)  # as if killed after step 1
    assert code == 0 and "step 1: " in out and (folder / "adapt.json").is_file(), err
    code, out, err = run(*args, "--checkpoint", folder, "--json", evaluator / "resumed.json")
    assert code == 0, err
    assert "resumed at step 2 from checkpoint" in out and "step 1: " not in out
    resumed = json.loads((evaluator / "resumed.json").read_text())
    assert resumed["steps"] == whole["steps"] and resumed["arch"] == whole["arch"]
    code, out, err = run(*args[:2], 0.9 * _start_ms(), *args[3:], "--checkpoint", folder)
    assert code == 2 and err.splitlines()[-1].startswith(f"pynas adapt: error: --checkpoint {folder}: target_ms: ")


def test_a_run_that_stalls_ends_with_the_target_error(run, evaluator):
    code, out, err = run(ARCH, "--target-ms", 0.8 * _start_ms(), "--evaluator",
                         f"python:{evaluator / 'acc.py'}:only_the_start", "--predictor", BUNDLE,
                         "--json", evaluator / "adapt.json")
    assert code == 2 and "left out: evaluation failed" in out
    assert err.splitlines()[-1].startswith("pynas adapt: error: --target-ms: ")
    assert "every proposal's evaluation failed" in err.splitlines()[-1]
    assert json.loads((evaluator / "adapt.json").read_text())["stop"] == "all-failed"


def test_a_train_evaluator_carries_the_weights_by_default(run, tmp_path):
    pytest.importorskip("sklearn")
    torch = pytest.importorskip("torch")
    out_json, model = tmp_path / "adapt.json", tmp_path / "adapted.pt"
    code, out, err = run(ARCH, "--target-ms", 0.97 * _start_ms(), "--evaluator", "train:digits:1", "--predictor", BUNDLE,
                         "--proxy-resolution", 8, "--evaluator-option", "train_images=300", "--evaluator-option",
                         "batch_size=64", "--holdout-images", 100, "--tune-images", 128, "--delta", 0.02,
                         "--max-steps", 2, "--finetune-epochs", 1, "--json", out_json, "-o", model)
    assert code == 0, err
    assert "evaluator fine-tune: 1 pretraining epochs" in out and "100 held-out training images" in out
    record = json.loads(out_json.read_text())
    assert record["scoring"] == "fine-tune" and record["steps"] and 0 <= record["finetuned_accuracy"] <= 100
    saved = torch.load(model, weights_only=True)
    from pynas.arch import parse
    from pynas.torch_builder import build_torch

    assert parse(saved["target_arch"]) == parse(record["arch"])
    build_torch(parse(saved["arch"])).load_state_dict(saved["state_dict"])  # the adapted widths, loadable


@pytest.mark.parametrize("args, message", [
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--scoring", "fine-tune"],
     "--scoring: expected scratch with a python: evaluator"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--finetune-epochs", 2],
     "--finetune-epochs: expected only with --scoring fine-tune"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:digits:1", "--scoring", "scratch", "-o", "x.pt"],
     "-o: expected only with --scoring fine-tune"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:digits:1", "--executor", "pool"],
     "--executor: expected none with --scoring fine-tune"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:digits:1", "--width-mult", 0.5],
     "--width-mult: expected 1 with --scoring fine-tune"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:digits:1", "--evaluator-option", "train_images=300",
      "--tune-images", 400], "tune_images: expected at most 300"),

    ([ARCH, "--evaluator", "python:acc.py:accuracy"], "the following arguments are required: --target-ms"),
    ([ARCH, "--target-ms", 1], "the following arguments are required: --evaluator"),
    ([ARCH, "--target-ms", 1, "--evaluator", "zero-cost:synflow"], "--evaluator: expected train:"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:"], "evaluator: expected train:DATASET"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:no-such-data:1"], "no-such-data"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:nothing"], "expected a function nothing"),
    ([ARCH, "--target-ms", 1, "--evaluator", "train:digits:1", "--evaluator-option", "bogus=1"],
     "evaluator option bogus"),
    (["mnasnet-a1", "--target-ms", 0.2, "--evaluator", "python:ACC:accuracy"],
     "--target-ms: 0.2 ms is below the smallest architecture NetAdapt reaches from net_res224_cls1000:"),
    ([ARCH, "--target-ms", 0, "--evaluator", "python:ACC:accuracy"], "argument --target-ms: expected"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--delta", 0], "argument --delta: expected"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--delta", 0.9], "argument --delta: expected"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--delta", "nan"], "argument --delta"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--max-steps", 0], "argument --max-steps"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--verify-rounds", -1], "argument --verify-rounds"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--verify-rounds", "x"], "argument --verify-rounds"),
    (["net_res224_cls10:stem_k3_s2_c16:ir_r1_k4_s1_e4_c24:head_c64", "--target-ms", 1, "--evaluator",
      "python:ACC:accuracy"], "token 'k4'"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--predictor", "pixel3"],
     "--predictor pixel3: expected a model bundle"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--json", "EXISTING"],
     "--force overwrites it"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--checkpoint", "EXISTING"],
     "--checkpoint EXISTING: expected a folder, got a file"),
    ([ARCH, "--target-ms", 1, "--evaluator", "python:ACC:accuracy", "--checkpoint", "EXISTING/sub"],
     "expected a folder in an existing folder"),
])
def test_bad_input_is_one_line_before_any_evaluation(run, evaluator, args, message):
    (evaluator / "existing.json").write_text("{}")
    args = [str(a).replace("ACC", str(evaluator / "acc.py")).replace("EXISTING", str(evaluator / "existing.json"))
            for a in args]
    message = message.replace("EXISTING", str(evaluator / "existing.json"))
    if "--predictor" not in args:
        args += ["--predictor", BUNDLE]
    code, out, err = run(*args)
    lines = [line for line in err.splitlines() if "describes another machine" not in line]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (evaluator / "calls.txt").exists()  # nothing was evaluated
