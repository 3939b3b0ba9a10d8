"""The command line on NAS-Bench-201: sampling benchmark strings, pricing them with the nb201
bundles, and one-line refusals (exit 2) where a command needs a pynas network. (Profiling nb201
and its bundles: tests/test_profiling_session.py, tests/test_predictor_cellnet.py.)"""
import pytest

from pynas.cli import main
from pynas.space import get_space
from pynas.space.nb201 import Cell, benchmark

CELL = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"  # index 0


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_prints_benchmark_strings(capsys):
    code, out, err = run(capsys, "sample", "--space", "nb201", "-n", "5", "--seed", "0")
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines == [str(c) for c in get_space("nb201").sample(5, seed=0)]
    assert all(str(Cell.parse(line)) == line for line in lines)
    code, out, _ = run(capsys, "sample", "--space", "nb201", "-n", "2", "--seed", "0", "--tokens")
    tokens, text = out.splitlines()[0].split("\t")
    assert code == 0 and get_space("nb201").encode(text) == tuple(map(int, tokens.split()))
    code, out, _ = run(capsys, "sample", "--space", "nb201", "--describe")
    assert code == 0 and "search space nb201: 6 decisions" in out


@pytest.mark.parametrize("device", ("pixel3", "raspi4", "eyeriss", "fpga"))
def test_predict_a_cell_with_an_nb201_bundle(capsys, device):
    code, out, err = run(capsys, "predict", CELL, "--predictor", f"nb201-{device}")
    assert code == 0 and not err  # no mismatch warning: these are a phone's and simulators' numbers
    assert out.startswith(f"{benchmark().latency(device)[0]:.4f} ms  (nb201-{device}: {device}, ")
    code, out, _ = run(capsys, "predict", CELL, "--predictor", f"nb201-{device}", "--breakdown")
    assert code == 0 and "nb201 index 0" in out and "lookup" in out


def test_predictors_lists_the_lookup_bundles(capsys):
    code, out, _ = run(capsys, "predictors")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("nb201-")}
    assert code == 0 and set(rows) == {"nb201-pixel3", "nb201-raspi4", "nb201-eyeriss", "nb201-fpga"}
    assert all(r[1] == "lookup" and "nb201@32" in r for r in rows.values())


@pytest.mark.parametrize("argv, message", [
    (("run", CELL, "--runs", "1", "--predict"), "pynas run: error: --predict: expected a block network"),
    (("describe", CELL, "--resolution", "30"), "pynas describe: error: resolution: expected a multiple of 4"),
    (("describe", "cellnet_res32_cls10:darts_c36_l20"), "pynas describe: error: token 'cellnet_res32_cls10:darts_c36_l20' "
                                                        "at position 0: expected cellnet, skeleton, cell and node parts"),
    (("predict", CELL, "--predictor", "pixel3"), "pynas predict: error: ARCH: expected a preset or a pynas "
                                                 "architecture string, got the NAS-Bench-201 cell"),
    (("predict", "mnasnet-a1", "--predictor", "nb201-pixel3"),
     "pynas predict: error: ARCH: NAS-Bench-201 cell 'mnasnet-a1': expected 3 groups joined by '+'"),
    (("predict", CELL.replace("~2", "~1"), "--predictor", "nb201-pixel3"),
     "pynas predict: error: ARCH: NAS-Bench-201 cell '|avg_pool_3x3~0|"),
    (("predict", CELL, "--predictor", "nb201-pixel3", "--resolution", "64"),
     "pynas predict: error: --resolution: expected none with nb201-pixel3 (a lookup of nb201@32 architectures), "
     "got 64"),
    (("sample", "--space", "nb201", "--resolution", "64"), "pynas sample: error: resolution: expected 32"),
    (("sample", "--space", "nb201", "--setting", "cifar100"),
     "pynas sample: error: search space 'nb201': unknown option 'setting', expected one of resolution"),
    (("sample", "--space", "nb202"), "pynas sample: error: unknown search space 'nb202': expected one of mnasnet, "
                                     "fbnet, nb201, darts, nasnet, enas"),
    (("calibrate", "nowhere.db", "-o", "out", "--space", "darts"),
     "pynas calibrate: error: --space: expected a space of pynas networks to compile a table for (mnasnet, fbnet), "
     "got darts"),
    (("profile", "--space", "nb201", "--neighbours", "3"),
     "pynas profile: error: --neighbours: expected none with --space nb201, whose networks are profiled whole"),
])
def test_refusals_are_one_line_with_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out
    assert err.startswith(message) and err.count("\n") == 1, err


def test_profile_refuses_the_cell_spaces_it_does_not_profile(capsys, tmp_path):
    code, _, err = run(capsys, "profile", "--space", "enas", "--db", str(tmp_path / "m.sqlite"))
    assert code == 2 and err.count("\n") == 1
    assert "pynas profile: error: --space: expected a space pynas profiles (mnasnet, fbnet, nb201), got enas" in err
    assert not (tmp_path / "m.sqlite").exists()


def test_describe_shows_a_cell_s_network(capsys):
    """A NAS-Bench-201 cell, or its network's cellnet string: the benchmark's network, lowered."""
    code, out, _ = run(capsys, "describe", CELL)
    network = str(get_space("nb201").network(CELL))
    assert code == 0 and out.startswith(network + "\n")
    params = f"{round(benchmark().params[0] * 1e6):,}"
    assert f"total: params {params} " in out
    code, again, _ = run(capsys, "describe", network)
    assert code == 0 and again == out
    code, out, _ = run(capsys, "describe", network, "--kernels", "fused")
    assert code == 0 and "kernels from" in out


def test_sample_cell_spaces(capsys):
    for name in ("darts", "nasnet", "enas"):
        code, out, _ = run(capsys, "sample", "--space", name, "-n", "2", "--seed", "0")
        lines = out.splitlines()
        assert code == 0 and len(lines) == 2 and all(line.startswith("cellnet_res32_cls10:darts_c36_l20:")
                                                     for line in lines)


def test_run_times_a_cell_s_network(capsys):
    from pynas import _core

    if not hasattr(_core.Network, "sum"):
        pytest.skip("pynas._core was built before the cell steps: rebuild it (scripts/dev-build.sh)")
    code, out, _ = run(capsys, "run", CELL, "--runs", "2")
    assert code == 0 and out.startswith(str(get_space("nb201").network(CELL)) + "\n") and "2 runs: median" in out
