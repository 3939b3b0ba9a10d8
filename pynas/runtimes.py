"""Other runtimes, to compare the native kernels with: PyTorch (eager, channels_last), ONNX Runtime
and LiteRT (XNNPACK, converted with litert-torch). Each turns a PyTorch module into a callable on
an N x C x H x W float32 numpy array, single-threaded unless told otherwise.

A runtime that is not installed is reported by `unavailable(name)` with the reason; creating it
then raises RuntimeError saying what to install. Conversions are cached on disk by a caller-given
key, so an op is converted once.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

RUNTIMES = ("torch", "torch_cl", "onnxruntime", "litert")
_REQUIRES = {"torch": ["torch"], "torch_cl": ["torch"], "onnxruntime": ["torch", "onnxruntime", "onnx"],
             "litert": ["torch", "ai_edge_litert", "litert_torch"]}
_INSTALL = {"onnxruntime": "pip install 'pynas[onnx]'", "litert": "pip install 'pynas[litert]'"}


def unavailable(name: str) -> str | None:
    """None if runtime `name` can run here, else why not."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime: expected one of {', '.join(RUNTIMES)}, got {name!r}")
    missing = [m for m in _REQUIRES[name] if importlib.util.find_spec(m) is None]
    if missing:
        return f"{name} needs {', '.join(missing)} ({_INSTALL.get(name, 'pip install torch==2.13.0')})"
    return None


def hide_avx512() -> str | None:
    """Makes the rest of this process an AVX2 machine to every runtime: AVX-512 hidden from CPUID
    (pynas._core.hide_avx512_from_cpuid), so ONNX Runtime (MLAS), LiteRT (XNNPACK) and PyTorch, which
    choose kernels by CPUID when they load, run their AVX2 kernels, and pynas runs its own
    (PYNAS_ISA=avx2: it has seen the CPU already). The same core runs them all (its caches, clock and
    ports): AVX2 code side by side, not an AVX2-only CPU. Checked before anything is hidden: PYNAS_ISA
    unset or avx2, a CPU with AVX-512 (ValueError), no runtime loaded yet (RuntimeError); then a
    RuntimeError where CPUID cannot fault, or where PyTorch still sees more than AVX2. Returns what
    PyTorch now reports ("AVX2"), or None without PyTorch."""
    isa = os.environ.get("PYNAS_ISA", "avx2")
    if isa.strip().lower() != "avx2":
        raise ValueError(f"expected PYNAS_ISA unset or avx2, got {isa!r}")
    from pynas import _core

    if not _core.cpu_features()["avx512f"]:
        raise ValueError("expected a CPU with AVX-512, this one has none (it runs AVX2 code already)")
    loaded = sorted(m for m in ("torch", "onnxruntime", "ai_edge_litert") if m in sys.modules)
    if loaded:
        raise RuntimeError(f"expected no runtime loaded yet (they keep the CPU they saw), got {', '.join(loaded)}")
    _core.hide_avx512_from_cpuid()
    os.environ["PYNAS_ISA"] = "avx2"
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    seen = torch.backends.cpu.get_cpu_capability()
    if seen != "AVX2":
        raise RuntimeError(f"expected PyTorch to see AVX2 after hiding AVX-512, got {seen}")
    return seen


def cache_dir() -> Path:
    root = Path(os.environ.get("PYNAS_CACHE", Path.home() / ".cache" / "pynas"))
    return root / "converted"


def make_runner(name: str, module, example: np.ndarray, threads: int = 1, key: str | None = None) -> Callable:
    """A callable running `module` (eval mode) on inputs shaped like `example` with runtime `name`.
    `key` names the conversion in the on-disk cache (e.g. an IR canonical key)."""
    reason = unavailable(name)
    if reason:
        raise RuntimeError(f"runtime {name} is unavailable: {reason}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    module = module.eval()
    if name in ("torch", "torch_cl"):
        return _torch_runner(module, threads, channels_last=name == "torch_cl")
    path = converted_path(name, module, example, key)
    return (_onnx_runner if name == "onnxruntime" else _litert_runner)(path, threads)


def _torch_runner(module, threads: int, channels_last: bool) -> Callable:
    import torch

    torch.set_num_threads(threads)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return module(t).numpy()
    return run


def _cached(kind: str, key: str | None, module, example: np.ndarray, suffix: str, convert) -> Path:
    """Path of the converted model, converting only when the cache lacks it."""
    digest = hashlib.sha256(f"{kind}|{key or id(module)}|{example.shape}".encode()).hexdigest()[:24]
    path = cache_dir() / f"{kind}-{digest}{suffix}"
    if key is None or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        with _converter_output_to(path.with_suffix(".log")):
            convert(tmp)
        os.replace(tmp, path)  # atomic: a killed conversion never leaves a half-written model
    return path


@contextlib.contextmanager
def _converter_output_to(log: Path):
    """Sends what converters print (litert-torch's progress, absl and TF logs, at the file
    descriptor level) to `log`; on failure the error carries the log's tail."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except Exception as error:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"conversion failed: {error}\n--- converter output ({log}) ---\n{tail}") from error
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def converted_path(name: str, module, example: np.ndarray, key: str | None) -> Path | None:
    """Convert `module` for runtime `name` into the on-disk cache unless it is there already, and
    return the file (None for runtimes that run the module itself: torch, torch_cl). Conversion is
    CPU work that needs no quiet machine: `pynas profile --prepare-only` runs it ahead, in parallel,
    so the timing run that follows only loads files."""
    reason = unavailable(name)
    if reason:
        raise RuntimeError(f"runtime {name} is unavailable: {reason}")
    module = module.eval()
    if name == "onnxruntime":
        return _cached("onnx", key, module, example, ".onnx", lambda path: _convert_onnx(module, example, path))
    if name == "litert":
        return _cached("litert", key, module, example, ".tflite", lambda path: _convert_litert(module, example, path))
    return None


def convert_to_file(name: str, module, example: np.ndarray, path: Path) -> None:
    """Convert `module` (as it is: fold BatchNorm first where wanted) for runtime `name`
    (onnxruntime or litert) into `path`, exactly as the cache's conversions; what the converter
    prints goes to a log in the temporary folder, removed on success, named (with its tail) by the
    RuntimeError of a failure."""
    reason = unavailable(name)
    if reason:
        raise RuntimeError(f"runtime {name} is unavailable: {reason}")
    if name not in ("onnxruntime", "litert"):
        raise ValueError(f"runtime: expected onnxruntime or litert (the runtimes that read a file), got {name!r}")
    import tempfile

    handle, log = tempfile.mkstemp(prefix=f"pynas-{name}-", suffix=".log")
    os.close(handle)
    log = Path(log)
    with _converter_output_to(log):
        (_convert_onnx if name == "onnxruntime" else _convert_litert)(module.eval(), example, Path(path))
    log.unlink(missing_ok=True)  # kept only when the conversion failed (the error names it)


def file_runner(name: str, path: Path, threads: int = 1) -> Callable:
    """A callable running the converted model in `path` (.onnx for onnxruntime, .tflite for litert)
    on an N x C x H x W float32 numpy array shaped as it was converted."""
    reason = unavailable(name)
    if reason:
        raise RuntimeError(f"runtime {name} is unavailable: {reason}")
    if name not in ("onnxruntime", "litert"):
        raise ValueError(f"runtime: expected onnxruntime or litert (the runtimes that read a file), got {name!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    return (_onnx_runner if name == "onnxruntime" else _litert_runner)(Path(path), threads)


def _convert_onnx(module, example: np.ndarray, path: Path) -> None:
    import torch

    buffer = io.BytesIO()
    # The TorchScript exporter: the dynamo one needs onnxscript and is slower to export.
    with _without_converter_deprecations():
        torch.onnx.export(module, (torch.from_numpy(example),), buffer, dynamo=False, opset_version=17,
                          input_names=["x"])
    path.write_bytes(buffer.getvalue())


def _convert_litert(module, example: np.ndarray, path: Path) -> None:
    import litert_torch
    import torch

    with _without_converter_deprecations():
        litert_torch.convert(module, (torch.from_numpy(example),)).export(str(path))


@contextlib.contextmanager
def _without_converter_deprecations():
    """The converters warn that they (torch's TorchScript exporter) or functions of torch they call
    (litert-torch on torch 2.13) are deprecated: nothing a user of pynas can act on, and the test
    suite makes every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _onnx_runner(path: Path, threads: int) -> Callable:
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def onnx_session(path: Path, threads: int, profile_prefix: str | None = None):
    """An ONNX Runtime session of the file at `path`, set up as pynas times ORT everywhere; with
    `profile_prefix`, its per-node profiler on (bench/blocks.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # One thread has no workers to spin; with more, ORT's default (workers spin between ops, as
    # deployed): pynas's native runs are compared against ORT as people run it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
    # Not "session.set_denormal_as_zero": ORT sets it on the creating thread for good (the whole
    # Python process then flushed denormals, numpy included); and flushing measured no faster here
    # (MnasNet-A1 24.24 vs 24.22 ms, interleaved, Xeon).
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _litert_runner(path: Path, threads: int) -> Callable:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)
    return run
