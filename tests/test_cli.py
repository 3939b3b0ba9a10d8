"""The `pynas` command line: describe, sample, info, and errors without tracebacks."""
import os
import subprocess
import sys

import pytest

from pynas.arch import parse
from pynas.cli import main
from pynas.space import get_space


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, params, macs", [
    ("mnasnet-a1", "3,887,038 (3.89M)", "311,579,072 (311.58M)"),
    ("mobilenetv2-1.0", "3,504,872 (3.50M)", "300,774,272 (300.77M)"),
])
def test_describe_prints_ops_and_totals(capsys, name, params, macs):
    code, out, _ = run(capsys, "describe", name)
    assert code == 0
    assert f"total: params {params}  MACs {macs}" in out
    assert "s1.1.dw" in out and "dwconv" in out and "classifier" in out


@pytest.mark.parametrize("kernels, kind", [("fused", "pwconv"), ("blocks", "mbconv")])
def test_describe_kernels(capsys, kernels, kind):
    code, out, _ = run(capsys, "describe", "mnasnet-a1", "--kernels", kernels)
    assert code == 0 and f" {kind} " in out and "kernels from 101 ops" in out


def test_describe_accepts_strings_and_resolution(capsys):
    text = "net_res64_cls10:stem_k3_s2_c8:ir_r2_k3_s2_e3_c16_se0.25:head_c32"
    code, out, _ = run(capsys, "describe", text, "--resolution", "96")
    assert code == 0 and out.splitlines()[0] == text.replace("res64", "res96")


@pytest.mark.parametrize("arch, message", [
    ("net_res224_cls1000:stem_k3_s2_c32:ir_r2_k4_s2_e6_c24:head_c1280", "token 'k4' at position 40"),
    ("mnasnet-z9", "unknown preset 'mnasnet-z9'"),
])
def test_bad_arch_is_a_clear_error(capsys, arch, message):
    code, out, err = run(capsys, "describe", arch)
    assert code == 2 and message in err and "Traceback" not in err


def test_sample_is_seeded_and_in_the_space(capsys):
    code, out, _ = run(capsys, "sample", "--space", "mnasnet", "-n", "5", "--seed", "0")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    space = get_space("mnasnet")
    assert [space.encode(parse(line)) for line in lines] == [tuple(r) for r in space.sample_tokens(5, seed=0)]
    assert run(capsys, "sample", "-n", "5", "--seed", "0")[1] == out


def test_sample_describe_and_tokens(capsys):
    assert "size 2.808e+18" in run(capsys, "sample", "--describe")[1]
    tokens, arch = run(capsys, "sample", "-n", "1", "--seed", "3", "--tokens")[1].strip().split("\t")
    assert get_space("mnasnet").decode([int(t) for t in tokens.split()]) == parse(arch)
    code, _, err = run(capsys, "sample", "--space", "nope")
    assert code == 2 and "unknown search space 'nope'" in err


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and "pynas 0.1.0" in out and "kernel ISAs, best first:" in out and "scalar" in out


def test_console_entry_point_runs_as_a_process(tmp_path):
    # cwd elsewhere: from the repo root, `python -c` would import the source tree (no _core).
    result = subprocess.run([sys.executable, "-c", "import sys; from pynas.cli import main; sys.exit(main())", "--help"],
                            capture_output=True, text=True, env=os.environ.copy(), cwd=tmp_path)
    assert result.returncode == 0 and "describe" in result.stdout and "sample" in result.stdout


def test_run_times_a_native_network(capsys):
    code, out, _ = run(capsys, "run", "mnasnet-a1", "--resolution", "64", "--runs", "5", "--kernels")
    assert code == 0 and "1 thread(s), 5 runs: median" in out and "GFLOP/s" in out
    assert "gemm_" in out and "dwconv_" in out


def test_run_profile_prints_every_step_with_its_share_of_peak(capsys):
    code, out, _ = run(capsys, "run", "mnasnet-a1", "--resolution", "64", "--runs", "3", "--profile")
    assert code == 0 and "median ms" in out and "of peak" in out and "steps' medians sum to" in out
    assert sum(line.startswith("mbconv[") for line in out.splitlines()) == 16  # one row per block repeat


@pytest.mark.parametrize("argv, message", [
    # Regression: hung forever in the thread pool's constructor; --threads had no upper bound.
    (["run", "mnasnet-a1", "--threads", "1000"], "argument --threads: expected an integer 1..256, got '1000'"),
    # Regression: the parser and the IR took minutes (or never finished) on a huge size.
    (["run", "mnasnet-a1", "--resolution", "100000"], "argument --resolution: expected an integer 1..4096, got '100000'"),
    (["describe", "net_res224_cls1000:stem_k3_s2_c32:ir_r1000000_k3_s1_e6_c16:head_c1280"],
     "token 'r1000000' at position 37: stage.repeats: expected an integer in [0, 64], got 1000000"),
    # Regression: in range, but its activations do not fit: died of MemoryError with a traceback.
    (["run", "net_res4096_cls1000:stem_k3_s1_c16384:ds_r1_k3_s1_c16384:head_c16384"],
     "resolution: 4096 x 4096 needs an estimated"),
])
def test_out_of_range_sizes_fail_at_once_in_one_line(argv, message, tmp_path):
    """As a process with a timeout (a hang fails the test): exit status 2 and a one-line error."""
    done = subprocess.run([sys.executable, "-c", "import sys; from pynas.cli import main; sys.exit(main())", *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ.copy())
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"pynas {argv[0]}: error: {message}"), done.stderr
