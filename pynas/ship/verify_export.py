"""`pynas verify FILE`: time an exported file itself in its runtime, against a bundle of that runtime.

    from pynas.ship.verify_export import verify_export
    v = verify_export("a1.onnx", passes=5, tolerance=0.10)   # this machine's onnxruntime bundle, if any
    print(v.measured_ms, v.p10_ms, v.p90_ms, v.predicted_ms, v.verdict)  # predicted None: "no prediction"

What is timed: the file as its runtime loads it (`pynas.ship.export.read_exported` tells the format
by the extension and reads the architecture the file records): an .onnx in ONNX Runtime and a
.tflite in LiteRT (`pynas.runtimes.file_runner`, as the profiling backends run their converted
files), a torch export (.pt) in PyTorch eager with its BatchNorm folded (`fold_batchnorm`,
inference mode: as the torch backend times networks, so a torch bundle's prediction is of the same
thing). Its own weights, not a rebuild: only the architecture the file records is rebuilt, to
predict it and to pick the reference.

How: as `pynas.verify.measure` verifies an architecture (its docstring): the file timed as a ratio
to a reference network in the SAME runtime (`backends.Backend(runtime).network`: the network
the bundle's profiling timed against, else the stem network of its space, else, with no bundle,
that of MnasNet at the file's resolution), interleaved, over `passes` passes, one thread timed by
its CPU time; measured = the median pass ratio x the reference's fast state in the bundle's
profiling run when the bundle ships its measurements, else over this verification (the spread of
the reference's times then adds to the uncertainty). A pass in an extreme state is dropped; too
few clean passes: too unsteady to judge.

The prediction: from a bundle of the file's runtime that describes this machine: --predictor, else
this machine's own for that runtime and thread count (`pynas device init --backend onnxruntime`).
None: the measurement and its spread are still given, with the verdict NO_PREDICTION, never a
prediction of another runtime or machine. Bad input (the file, its runtime not installed, a
bundle of another runtime or machine, --threads against the bundle's) is a ValueError naming the
field, before anything is timed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pynas.verify.measure import DEFAULT_PASSES, DEFAULT_TOLERANCE, STATE_LIMIT, Verification


def bundle_for(runtime: str, predictor, threads: int | None, where: str):
    """(the bundle of `runtime` describing this machine: `predictor`, else this machine's own at
    `threads` (default 1); or None, with why there is no prediction)."""
    from pynas.predictor.device import default_bundle
    from pynas.verify.measure import check_bundle, load_bundle

    if predictor is None:
        predictor = default_bundle(runtime, threads or 1)
        if predictor is None:
            return None, (f"this machine has no {runtime} bundle at {threads or 1} thread(s) and --predictor names "
                          f"none (`pynas device init --backend {runtime}` makes one)")
    with warnings.catch_warnings():  # a bundle of another machine is refused below, by name
        warnings.simplefilter("ignore")
        bundle = load_bundle(predictor)
    manifest = bundle.manifest
    if manifest.backend != runtime:
        raise ValueError(f"--predictor: expected a bundle of {runtime} ({where} runs there), got bundle "
                         f"{manifest.name} of {manifest.backend}: give one of {runtime} (`pynas device init --backend "
                         f"{runtime}`), or none to measure without a prediction")
    check_bundle(bundle, None)
    if threads is not None and threads != manifest.threads:
        raise ValueError(f"--threads: expected the bundle's thread count ({manifest.threads}: its latencies are for "
                         f"that many), got {threads}")
    return bundle, None


def file_runner(exported, threads: int):
    """A callable running the exported file in its runtime on a 1 x C x R x R float32 array."""
    from pynas import runtimes

    if exported.format == "torch":
        from pynas.ship.export import fold_batchnorm

        folded, _ = fold_batchnorm(exported.module)
        example = np.zeros((1, exported.arch.in_channels, exported.arch.resolution, exported.arch.resolution),
                           dtype=np.float32)
        return runtimes.make_runner("torch", folded.eval(), example, threads)
    return runtimes.file_runner(exported.runtime, exported.path, threads)


def verify_export(path: str | Path, predictor=None, *, passes: int = DEFAULT_PASSES,
                  tolerance: float = DEFAULT_TOLERANCE, threads: int | None = None, harness: dict | None = None,
                  state_limit: float = STATE_LIMIT, interleave=None, where: str = "FILE") -> Verification:
    """The exported file at `path` timed in its runtime (the module docstring), against `predictor`
    (a bundle of that runtime for this machine; None: this machine's own, if any). `harness`:
    timing options over `steady.NETWORK_HARNESS`; `interleave` stands in for
    `backends.time_interleaved` (tests). Bad input: ValueError naming the field, before any timing."""
    from pynas.predictor.device import describe, describe_here
    from pynas.profiling.backends import Backend, timed_call
    from pynas.profiling.steady import NETWORK_HARNESS, fast_state
    from pynas.ship.export import read_exported
    from pynas.verify.measure import check_options, choose_reference, interleaved_passes, verification

    check_options(passes, tolerance, state_limit)
    exported = read_exported(path, where)
    arch, runtime = exported.arch, exported.runtime
    bundle, no_prediction = bundle_for(runtime, predictor, threads, f"{where} {exported.path}")
    threads = bundle.manifest.threads if bundle is not None else threads or 1
    shape = (arch.resolution, arch.resolution, arch.in_channels)
    try:  # loaded and run once: a file its runtime cannot load or run is bad input, not a timing
        run = file_runner(exported, threads)
        run(np.zeros((1, shape[2], shape[0], shape[1]), dtype=np.float32))
    except Exception as error:  # noqa: BLE001  any failure of the runtime on the file is the same one-line error
        raise ValueError(f"{where} {exported.path}: {runtime} cannot run it on a 1x{shape[2]}x{shape[0]}x{shape[1]} "
                         f"input ({arch.resolution} px of {arch} as it records): {type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]}") from None
    predicted = None
    if bundle is not None:
        with warnings.catch_warnings():  # the bundle is checked to be this machine's
            warnings.simplefilter("ignore")
            try:
                predicted = float(bundle.predict(arch))
            except ValueError as error:  # BundleError: an architecture the bundle cannot price
                raise ValueError(f"--predictor: {' '.join(str(error).split())}") from None
    reference = choose_reference(bundle, arch)
    options = {**NETWORK_HARNESS, "cpu_time": threads == 1, **(harness or {})}
    [passes_run] = interleaved_passes([timed_call(run, shape)], Backend(runtime, threads).network(reference.arch),
                                      passes, options, interleave)
    fast = fast_state([p.reference_ms for p in passes_run])
    bundle_fast = fast_state(list(reference.bundle_times)) if reference.bundle_times else None
    if bundle is not None:
        device = describe(bundle.manifest)
    else:
        from pynas.store import this_device

        here = this_device()
        device = f"{here.cpu_model or 'unknown CPU'}, {describe_here(here)}"
    done = verification(str(arch), passes_run, predicted, fast, bundle_fast, tolerance=tolerance,
                        state_limit=state_limit, bundle=None if bundle is None else bundle.manifest.name,
                        backend=runtime, threads=threads, clock="cpu" if options.get("cpu_time") else "wall",
                        device=f"this machine ({device})", reference=reference.key,
                        reference_source=reference.source, file=str(exported.path))
    if no_prediction is not None:
        done.reason = f"no prediction to compare: {no_prediction}; {done.reason}"
    return done


__all__ = ["bundle_for", "file_runner", "verify_export"]
