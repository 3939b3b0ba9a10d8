"""bench/kernels.py: at more than one thread the single-op cases time the native runner's threaded
step, not a kernel call on one thread against runtimes on several (which made the 2-thread op rows
look level with ONNX Runtime while native used one core)."""

import importlib.util

import numpy as np
import pytest

pytestmark = [pytest.mark.skipif(importlib.util.find_spec(m) is None, reason=f"bench/kernels.py needs {m}")
              for m in ("torch", "rich")]


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("kernels")


def _native_outputs(bench, name: str, threads: int, monkeypatch) -> tuple[dict, np.ndarray]:
    import torch

    monkeypatch.setattr(bench, "THREADS", threads)
    torch.manual_seed(0)
    case = bench.CASES[name]()
    module = case.build()
    x = np.random.default_rng(0).standard_normal(case.shape).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x[None]))[0].numpy().transpose(1, 2, 0)
    hwc = np.ascontiguousarray(x.transpose(1, 2, 0))
    return {row: fn(hwc) for row, fn in case.native(module).items()}, expected


@pytest.mark.parametrize("name", ["dw3x3", "dw5x5", "pw"])
def test_an_op_at_two_threads_runs_as_a_two_thread_runner_step(bench, name, monkeypatch):
    from pynas import _core

    outputs, expected = _native_outputs(bench, name, 2, monkeypatch)
    op = "gemm" if name == "pw" else "dwconv"
    assert list(outputs) == [f"{_core.selected_kernels()[op]} (2 threads)"]
    np.testing.assert_allclose(next(iter(outputs.values())), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["dw3x3", "pw"])
def test_an_op_at_one_thread_has_a_row_per_kernel_variant(bench, name, monkeypatch):
    from pynas import _core

    outputs, expected = _native_outputs(bench, name, 1, monkeypatch)
    op = "gemm" if name == "pw" else "dwconv"
    assert list(outputs) == [v["name"] for v in _core.kernel_variants() if v["op"] == op and v["runnable"]]
    for out in outputs.values():
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
