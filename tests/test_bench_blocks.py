"""bench/blocks.py: the per-block table lines up the native steps with ONNX Runtime's nodes, and bad
flags are refused before any work."""

import pytest

from pynas.presets import resolve
from pynas.runtimes import unavailable

SMALL = str(resolve("mnasnet-a1")).replace("net_res224", "net_res32", 1)


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("blocks")


@pytest.mark.skipif(unavailable("onnxruntime") is not None, reason="needs ONNX Runtime and onnx")
def test_every_block_has_a_row_on_both_runtimes(bench, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PYNAS_CACHE", str(tmp_path / "cache"))
    assert bench.main(["--arch", SMALL, "--runs", "5"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    arch = resolve(SMALL)
    blocks = [f"s{i}.{j}" for i, stage in enumerate(arch.stages) for j in range(stage.repeats)]
    assert rows == ["block", "stem", *blocks, "head", "sum of blocks"]
    for line in out.splitlines()[3:-2]:
        native_ms, ort_ms = (float(cell) for cell in line.split("|")[3:5])
        assert native_ms > 0 and ort_ms > 0  # every block found on both sides
    assert "whole runs: native" in out


@pytest.mark.parametrize("flags, field", [(["--runs", "2"], "--runs"), (["--arch", "net_res32:nonsense"], "--arch"),
                                          (["--cpu", "4096"], "--cpu")])
def test_bad_flags_exit_2_naming_the_flag(bench, capsys, flags, field):
    with pytest.raises(SystemExit) as exit:
        bench.main(flags)
    assert exit.value.code == 2
    assert field in capsys.readouterr().err.strip().splitlines()[-1]
