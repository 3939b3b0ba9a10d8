"""`pynas evaluate` (pynas/cli/evaluate.py): architectures scored outside a search, from the command
line or a file, printed and written as CSV; bad input is one line, exit 2, before any evaluation;
a failed evaluation makes the exit status 1. Also `pynas search`'s new flags (--budget-seconds, the
executor flags): checked before any work."""
import csv
import textwrap

import pytest

from pynas.cli import main
from pynas.space import get_space

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|"
EVALUATOR = '''
import zlib
def accuracy(archs):
    calls.append(len(archs))
    return [None if "none~1" in a else 30 + (zlib.crc32(a.encode()) % 6000) / 100 for a in archs]
calls = []
'''


def evaluate(capsys, *args):
    code = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_architectures_from_the_command_line_and_a_file_with_a_csv(tmp_path, capsys):
    code, out, err = evaluate(capsys, A, B, "--evaluator", "nb201:cifar10", "--fidelity", 200)
    assert code == 0, err
    assert f"{A}  accuracy 94.36  0.000 s" in out and f"{B}  accuracy 80.47" in out
    listing = tmp_path / "archs.txt"
    listing.write_text(f"# two cells\n{A}\n\n   {B}  \n")
    code, out, err = evaluate(capsys, "--file", listing, "--evaluator", "nb201:cifar10", "--fidelity", 200,
                              "--csv", tmp_path / "out.csv", "--executor", "pool", "--workers", 2)
    assert code == 0, err
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["arch"] for r in rows] == [A, B] and rows[0]["accuracy"] == "94.3633" and rows[0]["error"] == ""
    assert list(rows[0]) == ["arch", "accuracy", "score", "seconds", "error"]
    code, out, err = evaluate(capsys, A, "--evaluator", "nb201:cifar10", "--csv", tmp_path / "out.csv")
    assert code == 2 and "--csv" in err and "--force overwrites it" in err and len(err.splitlines()) == 1


def test_mnasnet_architectures_with_a_python_evaluator_and_a_failure(tmp_path, capsys):
    (tmp_path / "acc.py").write_text(textwrap.dedent(EVALUATOR))
    space = get_space("mnasnet")
    archs = [str(a) for a in space.sample(3, seed=0)]
    code, out, err = evaluate(capsys, *archs, "--evaluator", f"python:{tmp_path / 'acc.py'}:accuracy")
    assert code == 0, err
    assert all(f"{a}  accuracy " in out for a in archs)
    code, out, err = evaluate(capsys, A, B, "--evaluator", f"python:{tmp_path / 'acc.py'}:accuracy")
    assert code == 1 and f"{B}  failed: the function returned no accuracy for it" in out
    assert err.strip() == "pynas evaluate: error: 1 of 2 evaluation(s) failed"


@pytest.mark.parametrize("args, message", [
    (["--file", "missing.txt", "--evaluator", "nb201:cifar10"], "--file missing.txt: expected a file of architectures"),
    (["--file", "bad.txt", "--evaluator", "nb201:cifar10"], "bad.txt:3: expected an architecture of space nb201"),
    ([A, "--file", "bad.txt", "--evaluator", "nb201:cifar10"], "ARCH: expected architectures or --file FILE, got both"),
    (["--evaluator", "nb201:cifar10"], "ARCH: expected architectures or --file FILE, got neither"),
    ([A, "--evaluator", "table"], "evaluator: expected one of nb201:cifar10|cifar100|imagenet16, python:MODULE:FUNCTION"),
    ([A, "--evaluator", "nb201:mnist"], "dataset: expected one of cifar10, cifar100, imagenet16, got 'mnist'"),
    ([A, "--evaluator", "nb201:cifar10", "--executor", "threads"], "--executor: invalid choice: 'threads'"),
    ([A, "--evaluator", "nb201:cifar10", "--workers", "0"], "--workers: expected an integer 1..4096, got '0'"),
    ([A, "--evaluator", "nb201:cifar10", "--workers", "2"], "--workers: expected with --executor pool|ray"),
    ([A, "--evaluator", "nb201:cifar10", "--ray", "--executor", "pool"], "--ray: expected with --executor ray"),
    ([A, "--evaluator", "nb201:cifar10", "--executor", "serial", "--workers", "2"],
     "--workers: expected 1 (or none) with --executor serial, got 2"),
    (["mnasnet-a1", "--evaluator", "nb201:cifar10", "--space", "nb201"], "ARCH 1: expected an architecture of space "
                                                                          "nb201, got 'mnasnet-a1'"),
])
def test_bad_input_is_one_line_exit_2_before_any_evaluation(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.txt").write_text(f"# a comment\n{A}\n|nor_conv_3x3~0|+|oops|\n")
    code, out, err = evaluate(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "accuracy" not in out


NB201 = ["--space", "nb201", "--predictor", "nb201-pixel3", "--evaluator", "nb201:imagenet16", "--target-ms", 5]


def test_search_budget_seconds_and_executor_flags(tmp_path, capsys):
    (tmp_path / "acc.py").write_text(textwrap.dedent(EVALUATOR))
    code = main(["search", *map(str, [*NB201, "--budget", 12, "--budget-seconds", 100, "--executor", "pool"]),
                 "--workers", "2", "--seed", "1", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "evaluations on pool: 2 worker(s), 1 thread(s) each" in out
    assert "budget 12 evaluations or 100 s of evaluation" in out and "stopped: budget; 12 evaluated" in out
    code = main(["search", "--resume", str(tmp_path / "run"), "--executor", "serial"])
    out, err = capsys.readouterr()
    assert code == 0 and "stopped: budget; 12 evaluated" in out, err


@pytest.mark.parametrize("args, message", [
    ([*NB201, "--budget-seconds", 0], "--budget-seconds: expected a finite number in (0, inf], got '0'"),
    ([*NB201], "--budget (or --budget-seconds): expected a value for a new search"),
    ([*NB201, "--budget", 5, "--ray-address", "h:1", "--executor", "pool"], "--ray-address: expected with --executor ray"),
    (["--report", "somewhere", "--workers", 2, "--executor", "pool"], "--report: expected alone"),
])
def test_search_bad_flags_are_one_line_exit_2_before_any_work(tmp_path, capsys, args, message):
    code = main(["search", *map(str, args), "--out", str(tmp_path / "run")] if "--report" not in args
                else ["search", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_search_on_a_ray_address_that_refuses_is_one_line_before_the_log(tmp_path, capsys):
    pytest.importorskip("ray")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    code = main(["search", *map(str, NB201), "--budget", "5", "--ray-address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 2 and f"ray address 127.0.0.1:{port}: expected a Ray cluster there, got no answer" in err
    assert not (tmp_path / "run").exists()


def test_a_preset_outside_the_space_with_the_train_evaluator(capsys):
    """Train scores an architecture as a network: any valid string or preset (MnasNet-A1 is not in the
    MnasNet search space); an evaluator of points of the space refuses it, exit 2, naming the space."""
    code, out, _ = evaluate(capsys, "mnasnet-a1", "--evaluator", "train:digits:1", "--executor", "serial",
                            "--proxy-resolution", 8, "--width-mult", 0.25, "--evaluator-option", "lr=0.1")
    assert code == 0 and "header adapted to in1 cls10 res8" in out and "accuracy" in out.splitlines()[-1]
    code, _, err = evaluate(capsys, "mnasnet-a1", "--evaluator", "zero-cost:params")
    assert code == 2 and "ARCH 1: expected an architecture of space mnasnet (evaluator zero-cost: scores points" in err
    code, _, err = evaluate(capsys, "mnasnet-a1", "--evaluator", "train:digits:1", "--evaluator-option", "lr")
    assert code == 2 and "--evaluator-option: expected KEY=VALUE, got 'lr'" in err
    code, _, err = evaluate(capsys, "mnasnet-a1", "--evaluator", "train:digits:1", "--width-mult", 0.5,
                            "--evaluator-option", "width_mult=0.5")
    assert code == 2 and "--width-mult: expected it or --evaluator-option width_mult=..., got both" in err
