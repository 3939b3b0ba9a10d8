"""Network runs flush denormals (cpp/network/flush_denormals.h): a run's time must not depend on the
weights' values (an SE gate's underflow made a MnasNet pick take 1.7x its flushed time on a Xeon),
and the caller's floating-point mode is left as it was."""
import platform

import numpy as np
import pytest

from pynas import _core

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"),
                                reason="flushing is set on x86-64 and AArch64 only")

DENORMAL = np.float32(1e-39)  # below float32's smallest normal, 1.18e-38


def _doubling_network(threads: int, h: int, w: int, c: int):
    net = _core.Network(threads)
    x = net.input(h, w, c)
    net.finalize(net.add(x, x))
    return net


@pytest.mark.parametrize("threads, shape", [(1, (1, 1, 16)), (2, (64, 64, 64))])
def test_denormal_values_run_as_zeros_and_the_caller_keeps_its_mode(threads, shape):
    assert DENORMAL * np.float32(2) != 0  # numpy here keeps denormals: the mode we must leave as found
    net = _doubling_network(threads, *shape)
    image = np.full(shape, DENORMAL, np.float32)
    image[0, 0, 0] = 1.5  # normal values are untouched
    out = np.asarray(net.run(image)).reshape(-1)
    assert out[0] == 3.0 and not out[1:].any(), out[:4]
    assert DENORMAL * np.float32(2) != 0  # restored after the run


def test_an_onnx_runtime_runner_leaves_the_process_keeping_denormals():
    # Regression: sessions made with ONNX Runtime's session.set_denormal_as_zero set FTZ/DAZ on the
    # creating thread for good, so every later numpy (and hypothesis) computation flushed denormals.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from pynas.runtimes import make_runner

    module = torch.nn.Conv2d(3, 4, 1).eval()
    example = np.zeros((1, 3, 4, 4), np.float32)
    run = make_runner("onnxruntime", module, example, threads=1, key=None)
    run(example)
    assert DENORMAL * np.float32(2) != 0
    make_runner("onnxruntime", module, example, threads=2, key=None)(example)
    assert DENORMAL * np.float32(2) != 0
