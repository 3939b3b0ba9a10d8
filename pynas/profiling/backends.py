"""Measurement backends, one interface: time a segment (stem, block repeat, head; by its key) or a
whole network on this device at a thread count, with pynas's C++ harness.

* ``native``: pynas's own kernels (`pynas._core.Network`; fused block steps), timed entirely in
  C++ with the GIL released. Needs neither torch nor any other runtime: the phone path.
* ``torch`` / ``torch_cl``: PyTorch eager, NCHW / channels_last (BN folded, inference mode).
* ``onnxruntime``: ONNX exported from the PyTorch builder (sequential; workers spin at more than one
  thread, ORT's default).
* ``litert``: LiteRT (XNNPACK) on a .tflite converted with litert-torch.

The converted files (ONNX, .tflite) are cached on disk by segment key (`pynas.runtimes`), so an op
is converted once. A backend that cannot run here says why (`unavailable`); asking for it raises
BackendUnavailable with that reason, never a silent substitute.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pynas.arch import Arch
from pynas.native.runner import check_threads

BACKENDS = ("native", "torch", "torch_cl", "onnxruntime", "litert")
_VERSIONED = {"torch": ["torch"], "torch_cl": ["torch"], "onnxruntime": ["onnxruntime", "torch"],
              "litert": ["ai-edge-litert", "litert-torch", "torch"]}


class BackendUnavailable(RuntimeError):
    pass


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def unavailable(name: str) -> str | None:
    """None if backend `name` can run here, else why not."""
    check_backend(name)
    if name == "native":
        return None
    from pynas import runtimes

    return runtimes.unavailable(name)


def backend_version(name: str) -> str:
    """The versions that decide its speed, without whitespace (the store's rule), e.g.
    'ai-edge-litert==2.3.0,litert-torch==0.10.0,torch==2.13.0' or, for native, pynas's version and
    the kernel variants chosen on this CPU ('pynas==0.1.0+gemm_8x48__avx512f+dwconv_c16__avx512f+...')."""
    check_backend(name)
    if name == "native":
        from pynas import _core

        # In C++, shared with pynas-profile: its measurements join this backend's store series.
        return _core.native_backend_version()
    return ",".join(f"{dist}=={importlib.metadata.version(dist)}" for dist in _VERSIONED[name])


@dataclass
class Timed:
    """Something ready to time: `measure(**harness_options)` returns the harness's stats dict.
    `network` and `inputs` (native: the `_core.Network` and its input images) or `call` (other
    backends: a Python callable taking the call index) say what is run, so `time_interleaved` can
    time it against a reference of the same backend."""
    measure: Callable[..., dict]
    network: object | None = None
    inputs: list | None = None
    call: Callable[[int], object] | None = None


def time_interleaved(item: Timed, reference: Timed, **options) -> dict:
    """`item` timed as a ratio to `reference`, samples alternating (`_core.time_interleaved`; see
    cpp/profiling/interleaved.h): native networks entirely in C++, other backends' callables
    through Python. Both must come from one backend."""
    if item.network is not None and reference.network is not None:
        return item.network.measure_interleaved(item.inputs, reference.network, reference.inputs, **options)
    if item.call is not None and reference.call is not None:
        from pynas import _core

        return _core.time_interleaved(item.call, reference.call, **options)
    raise ValueError("reference: expected a Timed of the item's backend (both native networks or both callables)")


def _inputs(shape_hwc: tuple[int, int, int], count: int = 4, seed: int = 0) -> list[np.ndarray]:
    # Several inputs, rotated by the harness: repeated runs do not all hit the same warm lines.
    # Drawn in float32 directly: float64 draws cast down took a tenth of a segment's build.
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape_hwc, dtype=np.float32) for _ in range(count)]


class Backend:
    def __init__(self, name: str, threads: int = 1):
        check_backend(name)
        check_threads(threads)  # the native runner's bound, for every backend: one range for all
        reason = unavailable(name)
        if reason:
            raise BackendUnavailable(f"backend {name} is unavailable here: {reason}")
        self.name, self.threads = name, threads
        self.version = backend_version(name)

    def segment(self, arch: Arch, segment: str, key: str) -> Timed:
        """Segment `segment` of `arch` (converted files cached under `key`)."""
        return self._timed(arch, segment, key)

    def network(self, arch: Arch) -> Timed:
        return self._timed(arch, None, f"network:{arch}")

    def prepare(self, arch: Arch, segment: str | None, key: str) -> None:
        """Convert what `segment(...)` (or, with segment None, `network(arch)`) will run into the
        on-disk cache, without timing anything; nothing to do for native and torch."""
        if self.name in ("onnxruntime", "litert"):
            from pynas import runtimes

            module, shape = _torch_module(arch, segment)
            example = _inputs(shape, count=1)[0].transpose(2, 0, 1)[None].copy()
            runtimes.converted_path(self.name, module, example, key if segment is not None else f"network:{arch}")

    def _timed(self, arch: Arch, segment: str | None, key: str) -> Timed:
        if self.name == "native":
            from pynas.native.runner import NativeNetwork

            net = NativeNetwork(arch, weights=_segment_weights(arch, segment), threads=self.threads, segment=segment)
            inputs = _inputs(tuple(net.network.shape(0)))  # tensor 0: the (segment's) input
            return Timed(lambda **options: net.network.measure(inputs, **options), network=net.network, inputs=inputs)
        from pynas import runtimes

        module, shape = _torch_module(arch, segment)
        example = _inputs(shape, count=1)[0].transpose(2, 0, 1)[None].copy()
        return timed_call(runtimes.make_runner(self.name, module, example, self.threads, key=key), shape)


def timed_call(run: Callable[[np.ndarray], object], shape_hwc: tuple[int, int, int]) -> Timed:
    """A Timed of `run` (a callable on one 1 x C x H x W float32 array: a runtime's runner, e.g. of
    an exported file) over the inputs every backend's items rotate through, `shape_hwc` their shape."""
    from pynas import _core

    nchw = [x.transpose(2, 0, 1)[None].copy() for x in _inputs(shape_hwc)]
    call = lambda i: run(nchw[i % len(nchw)])  # noqa: E731
    return Timed(lambda **options: _core.time_calls(call, **options), call=call)


def _segment_weights(arch: Arch, segment: str | None):
    """Random weights for the ops a native build of `segment` uses (all ops for a whole network):
    drawing them for the whole network took most of a segment's build time."""
    from pynas.ir import lower
    from pynas.ir.segments import segment_of
    from pynas.native.weights import random_weights

    graph = lower(arch)
    return random_weights(graph, ops=None if segment is None else {op.id for op in graph.ops
                                                                     if segment_of(op) == segment})


def _torch_module(arch: Arch, segment: str | None):
    """The BN-folded eval PyTorch module of `arch`, or of one of its segments, and its input H, W, C."""
    from pynas.space.catalogue import segment_by_id
    from pynas.torch_builder import build_torch, fold_batchnorm

    model = fold_batchnorm(build_torch(arch)).eval()
    if segment is None:
        return model, (arch.resolution, arch.resolution, arch.in_channels)
    by_id = segment_by_id(arch)
    if segment not in by_id:
        raise ValueError(f"segment: expected one of {', '.join(by_id)} (segments of {arch}), got {segment!r}")
    if segment == "stem":
        module = model.stem
    elif segment == "head":
        module = model.head
    else:
        stage, repeat = (int(p) for p in segment[1:].split("."))
        module = model.blocks[sum(s.repeats for s in arch.stages[:stage]) + repeat]
    return module, by_id[segment].input_shape
