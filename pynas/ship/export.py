"""`pynas export`: an architecture, or a search's pick, as a file a runtime loads, checked against
the PyTorch module it came from.

    done = export("runs/a", "onnx", "a.onnx")              # a search folder: its best.txt
    done = export("mnasnet-a1", "torch", "a1.pt", seed=0)  # a preset or arch string: initialised weights
    done = export(None, "tflite", "a1.tflite", weights="a1.pt")  # the weights of a torch export
    print(done.report()); assert done.check.passed
    net = load_torch_export("a1.pt")                       # build_torch(arch) holding the file's weights
    read_exported("a1.tflite").arch                        # what any exported file records (pynas verify FILE)

Formats and their runtimes (each checked before any work; a missing one names the extra to install):

* ``torch``: `torch.save` of a dict of primitives and tensors (no pickled objects; read with
  `torch.load(weights_only=True)`): ``format`` / ``version``, ``arch`` (the string), ``state_dict``
  of `build_torch(arch)` (BatchNorm kept: the file can be fine-tuned) and ``meta`` (source, weights
  origin, pynas version, ``weights_sha256`` over the tensors' names, dtypes, shapes and bytes,
  which `load_torch_export` checks). Runtime: PyTorch.
* ``onnx``: the TorchScript exporter, opset 17, one input ``x`` (1 x C x R x R float32, NCHW), as
  `pynas.runtimes` converts; the arch string and the weights' origin in the model's metadata
  (``pynas.arch``, ``pynas.weights``). Runtime: ONNX Runtime (``pip install 'pynas[onnx]'``).
* ``tflite``: litert-torch's converter (NCHW input as the module's); the same two entries in the
  model's metadata (``pynas.arch``, ``pynas.weights``: name -> a buffer of UTF-8 bytes, as TFLite's
  own ``min_runtime_version``). Runtime: LiteRT with XNNPACK (``pip install 'pynas[litert]'``).

`read_exported` tells a file's format by its extension (.pt, .onnx, .tflite) and reads back what it
records; `pynas verify FILE` (`pynas.ship.verify_export`) times the file itself in its runtime.

ONNX and TFLite get the module with every BatchNorm folded into the conv before it
(`pynas.torch_builder.fold_batchnorm`), as a deployed model runs.

Weights: from the evaluator that trained them where there are any, else initialised. A search
scored by ``supernet:PATH`` exports its pick's sub-network of that supernet, its BatchNorm
recalibrated exactly as the search's evaluator did (same images, seed and options; the file must be
the one the search used, by sha256), and reports the sub-network's accuracy next to the search's.
A supernet trained on a proxy task (e.g. 28 px grey images, 10 classes) for a search of another
resolution/classes/input (224 px RGB, 1000 classes) has no weights for the search's stem and
classifier: the export is then the same blocks at the supernet's own resolution, classes and input
channels, and the report says so (export the search's string itself for initialised weights at its
own shape). Other evaluators (``train:``, ``zero-cost:``, ``python:``, ``nb201:``) keep no weights:
the network is initialised (`build_torch`'s init, seeded) and the report says "initialised weights
(no trained weights)". ``--weights FILE`` takes a torch export of this command or a supernet file.

The check: the exported file run by its runtime on CHECK_INPUTS seeded N(0, 1) inputs against the
PyTorch module (eval mode, BatchNorm unfolded: the fold is checked too). The figure is the largest
absolute difference over the largest |output| of PyTorch (the output's scale). Tolerances:

* torch 0 (bit-exact): the same module and weights on the same kernels.
* onnx 1e-4: ONNX Runtime's convolutions (MLAS) sum in another order than PyTorch's and the folded
  BN rounds the weights once more: float32 rounding over ~20 layers. Measured on this x86 machine
  (MnasNet-A1, MobileNetV2-1.0, MobileNetV3-Large with random BN statistics, 64 and 224 px):
  1.3e-6..6.2e-6 of the scale, so 1e-4 leaves a 16x margin; a wrong weight, op or fold is off by
  1e-2..1 (tests/test_ship_export.py shows the check failing on one).
* tflite 1e-3: measured 1.6e-6..5.6e-6 here, as ONNX; the wider bound is for XNNPACK's other
  kernels on other CPUs (ARM phones: other convolution algorithms and its own hard-swish/sigmoid),
  still an order below a wrong network.

A file past its tolerance is kept (the report says the check failed) and `Exported.check.passed`
is False (`pynas export` exits 1).
"""
from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pynas import runtimes
from pynas.arch import Arch

FORMATS = ("torch", "onnx", "tflite")
RUNTIME = {"torch": "torch", "onnx": "onnxruntime", "tflite": "litert"}  # pynas.runtimes' names
SUFFIX = {"torch": ".pt", "onnx": ".onnx", "tflite": ".tflite"}  # how `read_exported` tells a file's format
ARCH_KEY, WEIGHTS_KEY = "pynas.arch", "pynas.weights"  # the ONNX and TFLite files' metadata
TOLERANCE = {"torch": 0.0, "onnx": 1e-4, "tflite": 1e-3}  # of the output's scale; see the docstring
OPSET = 17  # pynas.runtimes' TorchScript exporter
CHECK_INPUTS = 3
CHECK_SEED = 20240514  # the check's inputs: fixed, so a check is reproducible
FORMAT = "pynas-export"
VERSION = 1
_SUPERNET_FORMAT = "pynas-supernet"  # pynas.train.supernet.FORMAT (not imported: it imports torch)


# -- before any work: the format's runtime, the output path ---------------------------------------
def require_runtime(fmt: str) -> None:
    """ValueError naming --format and the extra to install when `fmt`'s runtime is missing here."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    reason = runtimes.unavailable(RUNTIME[fmt])
    if reason:
        raise ValueError(f"--format {fmt}: not installed here: {reason}")


def check_out(out: str | Path, force: bool = False) -> Path:
    """The output file: not a folder, in an existing folder, new unless `force`."""
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path}: expected a file to write, got an existing folder")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: expected a file in an existing folder, got no folder {path.parent}")
    if path.exists() and not force:
        raise ValueError(f"--out {path}: expected a new file, got an existing one (--force overwrites it)")
    return path


# -- where the architecture and its weights come from ---------------------------------------------
@dataclass
class Source:
    """What is exported: `arch` and `module` (eval mode, its weights), the weights' origin in one
    line, what was asked for (`source`) and notes for the report (a proxy supernet's shape, ...)."""

    arch: Arch
    module: object
    weights: str
    source: str
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # primitives, for the torch export's meta


def parse_arch(text: str, where: str = "ARCH_OR_RUN") -> Arch:
    """A preset name or an architecture string (ValueError naming `where`)."""
    from pynas.presets import resolve

    if text.startswith("|"):
        raise ValueError(f"{where}: expected a preset or a pynas architecture string, got a NAS-Bench-201 cell: "
                         f"pynas builds no network for those")
    if "/" in text or os.sep in text:
        raise ValueError(f"{where}: expected an architecture string, a preset or a search folder, got {text!r} "
                         f"(no such folder)")
    try:
        return resolve(text)
    except ValueError as error:
        raise ValueError(f"{where}: expected a preset, an architecture string or a search folder, got "
                         f"{text[:80]!r}: {' '.join(str(error).split())}") from None


def resolve_source(arch_or_run: str | None, weights: str | Path | None = None, seed: int = 0) -> Source:
    """The architecture and weights to export (see the module docstring); every input checked."""
    from pynas.search.report import read_pick

    run = target = None
    if arch_or_run is not None:
        if Path(arch_or_run).is_dir():
            run = read_pick(arch_or_run, where="ARCH_OR_RUN")
            target = run.arch
        else:
            target = parse_arch(arch_or_run)
    if weights is not None:
        weights = Path(weights)
        blob = _load_blob(weights, "--weights")
        kind = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        if kind not in (FORMAT, _SUPERNET_FORMAT):
            raise ValueError(f"--weights {weights}: expected a file of `pynas export --format torch` ({FORMAT}) or "
                             f"of `pynas supernet train` ({_SUPERNET_FORMAT}), got format {kind!r}")
        if kind == FORMAT:
            return _from_torch_export(weights, target, arch_or_run)
        if target is None:
            raise ValueError(f"ARCH_OR_RUN: expected the architecture (or a search folder) to take from the supernet "
                             f"--weights {weights}, got none")
        return _from_supernet(weights, blob.get("meta"), target, source=arch_or_run)
    if target is None:
        raise ValueError("ARCH_OR_RUN: expected an architecture string, a preset or a search folder (or --weights "
                         "FILE of a torch export), got none")
    if run is not None and run.evaluator.startswith("supernet:"):
        return _from_run_supernet(run)
    source = Source(target, initialised(target, seed), f"initialised weights (no trained weights), seed {seed}",
                    str(arch_or_run), meta={"seed": seed})
    if run is not None:
        source.notes.append(f"the run's evaluator {run.evaluator} keeps no weights (only a supernet: evaluator "
                            f"has them); its accuracy {run.accuracy:.2f} is not this file's")
    return source


def initialised(arch: Arch, seed: int):
    """`build_torch(arch)` with its init drawn from `seed` (eval mode); the global RNG is left as it was."""
    import torch

    from pynas.torch_builder import build_torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_torch(arch).eval()


def _load_blob(path: Path, where: str):
    import torch

    if not path.is_file():
        raise ValueError(f"{where} {path}: expected a file, got {'a folder' if path.exists() else 'nothing'}")
    try:
        return torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001  any unreadable file is the same one-line error
        raise ValueError(f"{where} {path}: expected a torch.save file of dicts and tensors, got an unreadable file "
                         f"({type(error).__name__})") from None


def _from_torch_export(path: Path, target: Arch | None, asked: str | None) -> Source:
    module, meta = _read_torch_export(path, "--weights")
    if target is not None and target != module.arch:
        raise ValueError(f"--weights {path}: expected the weights of {str(target)[:60]}..., got those of "
                         f"{str(module.arch)[:60]}...")
    origin = f"the torch export {path} (its weights: {meta.get('weights', 'unknown')})"
    return Source(module.arch, module, origin, asked or str(path), meta={"from_export": str(path)})


def _from_run_supernet(run) -> Source:
    """A supernet search's pick: the evaluator the search built (its options from the run's log),
    which must still be the same (the file's sha256, the dataset's)."""
    import pynas
    from pynas.search.evaluators import evaluator_from_config
    from pynas.search.log import SearchLog
    from pynas.space import get_space

    try:
        with SearchLog.open(run.folder, pynas.__version__) as log:
            config = log.config["evaluator"]
    except ValueError as error:  # LogError
        raise ValueError(f"ARCH_OR_RUN {run.folder}: expected its search log to read the supernet evaluator's "
                         f"options from: {' '.join(str(error).split())}") from None
    space = get_space(run.space["name"], **run.space["options"])
    try:
        evaluator = evaluator_from_config(config, space)
    except ValueError as error:
        raise ValueError(f"ARCH_OR_RUN {run.folder}: its evaluator {run.evaluator}: {error} (give the supernet "
                         f"file with --weights FILE)") from None
    if evaluator.fingerprint() != config["fingerprint"]:
        raise ValueError(f"ARCH_OR_RUN {run.folder}: its evaluator {run.evaluator}: expected the supernet the search "
                         f"used (sha256 {config['fingerprint'].get('sha256', '?')[:16]}...), got "
                         f"{evaluator.fingerprint()['sha256'][:16]}... (the file changed since)")
    return _subnetwork(evaluator, run.arch, str(run.folder), run.accuracy)


def _from_supernet(path: Path, meta, target: Arch, source: str | None) -> Source:
    """--weights SUPERNET (`meta`: the file's): `target`'s blocks in the file's own space, BN
    recalibrated as the supernet evaluator does by default."""
    from pynas.search.evaluators.supernet import SupernetEvaluator
    from pynas.space import get_space

    try:
        space = get_space(meta["space"], **meta["space_options"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"--weights {path}: expected a supernet file with its space in meta, got {error!r}") from None
    return _subnetwork(SupernetEvaluator(path, space), target, source or str(path), None)


def _subnetwork(evaluator, target: Arch, source: str, seen: float | None) -> Source:
    """`target`'s sub-network of the evaluator's supernet, recalibrated on its images as it scores
    candidates, with its validation accuracy."""
    own = evaluator.space
    shaped = target.replace(resolution=own.resolution, num_classes=own.num_classes, in_channels=own.in_channels)
    try:
        tokens = own.encode(shaped)
    except ValueError as error:
        raise ValueError(f"ARCH_OR_RUN: expected an architecture of the supernet's space {own.name}, got "
                         f"{str(target)[:60]}...: {' '.join(str(error).split())}") from None
    arch = own.decode(tokens)
    net, top1 = evaluator.subnetwork(arch)
    meta = evaluator.meta
    origin = (f"supernet {evaluator.path} (sha256 {evaluator.file_sha256[:12]}, {meta['epochs']} epochs on "
              f"{meta['dataset']}), BatchNorm recalibrated on {evaluator.calibration_images} training images as the "
              f"search's evaluator does; top-1 {top1:.2f}% on {evaluator.val_images} validation images"
              + (f" (the search saw {seen:.2f}%)" if seen is not None else ""))
    notes = []
    if arch != target:
        notes.append(f"the supernet's space is {own.name} {own.options()}: exported the same blocks at its "
                     f"resolution, classes and input channels ({arch.resolution} px, {arch.num_classes} classes, "
                     f"{arch.in_channels} channel(s)), not {target.resolution} px, {target.num_classes} classes, "
                     f"{target.in_channels} channel(s): it holds no weights for those (export the architecture "
                     f"string itself for initialised weights at its own shape)")
    return Source(arch, net.eval(), origin, source, notes,
                  meta={"supernet": str(evaluator.path), "supernet_sha256": evaluator.file_sha256,
                        "dataset": meta["dataset"], "calibration_images": evaluator.calibration_images,
                        "val_accuracy": top1})


# -- the torch format ---------------------------------------------------------------------------
def weights_sha256(state: dict) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes (sorted by name)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_torch(path: Path, source: Source) -> None:
    import torch

    import pynas

    state = {k: v.detach().clone() for k, v in source.module.state_dict().items()}
    meta = {"source": source.source, "weights": source.weights, "notes": list(source.notes),
            "pynas_version": pynas.__version__, "weights_sha256": weights_sha256(state), **source.meta}
    torch.save({"format": FORMAT, "version": VERSION, "arch": str(source.arch), "state_dict": state,
                "meta": meta}, str(path))


def _read_torch_export(path: Path, where: str):
    from pynas.torch_builder import build_torch

    blob = _load_blob(Path(path), where)
    got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
    if got != FORMAT or blob.get("version") != VERSION:
        raise ValueError(f"{where} {path}: expected format {FORMAT} version {VERSION}, got {got} version "
                         f"{blob.get('version') if isinstance(blob, dict) else None}")
    state, meta = blob.get("state_dict"), blob.get("meta")
    if not isinstance(state, dict) or not isinstance(meta, dict) or not isinstance(blob.get("arch"), str):
        raise ValueError(f"{where} {path}: expected arch, state_dict and meta, got keys {sorted(blob)}")
    arch = parse_arch(blob["arch"], where=f"{where} {path}: arch")
    if meta.get("weights_sha256") != weights_sha256(state):
        raise ValueError(f"{where} {path}: weights_sha256: expected {str(meta.get('weights_sha256'))[:16]}... (the "
                         f"file's), got {weights_sha256(state)[:16]}...: the tensors changed since the export")
    net = build_torch(arch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).split())[:200]
        raise ValueError(f"{where} {path}: expected the state dict of build_torch(arch), got other tensors: "
                         f"{first}") from None
    return net.eval(), meta


def load_torch_export(path: str | Path):
    """The network of a torch export (`build_torch(arch)` with its weights, eval mode)."""
    return _read_torch_export(Path(path), "torch export")[0]


# -- BatchNorm folding, the converted formats ---------------------------------------------------
def count_batchnorm(module) -> int:
    from torch import nn

    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def fold_batchnorm(module):
    """(a copy of `module` with every BatchNorm folded into the conv before it, how many were folded).
    Every BatchNorm of a `build_torch` network follows a conv; one left over is refused (a runtime
    would run it unfolded, and a timing of it would not be the deployed model's)."""
    from pynas.torch_builder import fold_batchnorm as fold

    before = count_batchnorm(module)
    folded = fold(module)
    left = count_batchnorm(folded)
    if left:
        raise ValueError(f"fold_batchnorm: expected every BatchNorm after a conv, got {left} of {before} left unfolded")
    return folded, before


def example_input(arch: Arch, seed: int = CHECK_SEED) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, arch.in_channels, arch.resolution, arch.resolution),
                                                       dtype=np.float32)


def _write_converted(fmt: str, path: Path, source: Source, folded) -> None:
    runtimes.convert_to_file(RUNTIME[fmt], folded, example_input(source.arch), path)
    # The arch and the weights' origin travel with the file (`read_exported`, `pynas verify FILE`).
    entries = {ARCH_KEY: str(source.arch), WEIGHTS_KEY: source.weights}
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path))
        for key, value in entries.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
    else:
        path.write_bytes(_tflite_with_metadata(path.read_bytes(), entries))


def _tflite_with_metadata(model_bytes: bytes, entries: dict[str, str]) -> bytes:
    """The .tflite flatbuffer with `entries` added to the model's metadata (name -> a buffer of
    UTF-8 bytes, as TFLite's own `min_runtime_version`): the schema's object API, so every table is
    written back as it was (the interpreter ignores metadata it does not know)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
    model.metadata = model.metadata or []
    for name, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# -- reading an exported file back (pynas verify FILE) --------------------------------------------
@dataclass
class ExportedFile:
    """An exported file: its format (by its extension), the architecture and weights' origin it
    records, and for a torch export its network (eval mode, BatchNorm kept)."""

    path: Path
    format: str
    arch: Arch
    weights: str
    module: object | None = None

    @property
    def runtime(self) -> str:
        return RUNTIME[self.format]


def read_exported(path: str | Path, where: str = "FILE") -> ExportedFile:
    """The file of `pynas export` at `path`, its runtime installed here, what it records read back;
    every problem a ValueError naming `where` and the file (an unknown extension, no file, its
    runtime missing: the extra to install, an unreadable file, no architecture recorded)."""
    path = Path(path)
    fmt = {suffix: fmt for fmt, suffix in SUFFIX.items()}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{where} {path}: expected a file of `pynas export` ({', '.join(SUFFIX.values())}), got the "
                         f"extension {path.suffix or '(none)'!r}")
    if not path.is_file():
        raise ValueError(f"{where} {path}: expected a file, got {'a folder' if path.exists() else 'nothing'}")
    reason = runtimes.unavailable(RUNTIME[fmt])
    if reason:
        raise ValueError(f"{where} {path}: its runtime {RUNTIME[fmt]} is not installed here: {reason}")
    if fmt == "torch":
        module, meta = _read_torch_export(path, where)
        return ExportedFile(path, fmt, module.arch, str(meta.get("weights", "unknown")), module)
    entries = _converted_metadata(fmt, path, where)
    if ARCH_KEY not in entries:
        raise ValueError(f"{where} {path}: expected the metadata {ARCH_KEY} `pynas export` records (the architecture), "
                         f"got {', '.join(sorted(entries)) or 'no metadata'}: a file of another exporter, or of an "
                         f"older pynas (export it again)")
    arch = parse_arch(entries[ARCH_KEY], where=f"{where} {path}: {ARCH_KEY}")
    return ExportedFile(path, fmt, arch, entries.get(WEIGHTS_KEY, "unknown"))


def _converted_metadata(fmt: str, path: Path, where: str) -> dict[str, str]:
    """The metadata of an .onnx (metadata_props) or .tflite (the model's metadata buffers) file."""
    kind = {"onnx": "an ONNX model", "tflite": "a TFLite flatbuffer"}[fmt]
    try:
        if fmt == "onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            return {p.key: p.value for p in model.metadata_props}
        from ai_edge_litert import schema_py_generated as schema

        data = path.read_bytes()
        if not schema.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 file identifier")
        model = schema.Model.GetRootAs(data, 0)
        out = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            out[entry.Name().decode("utf-8")] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode("utf-8")
        return out
    except Exception as error:  # noqa: BLE001  any unreadable file is the same one-line error
        raise ValueError(f"{where} {path}: expected {kind}, got an unreadable file ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:120]})") from None


# -- the check ----------------------------------------------------------------------------------
@dataclass
class Check:
    """The exported file against PyTorch: largest |difference|, over the output's scale."""

    runtime: str
    inputs: int
    max_abs: float
    scale: float
    tolerance: float
    problem: str | None = None  # a shape mismatch, a non-finite output

    @property
    def max_rel(self) -> float:
        if self.scale > 0:
            return self.max_abs / self.scale
        return 0.0 if self.max_abs == 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.problem is None and np.isfinite(self.max_abs) and self.max_rel <= self.tolerance

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        if self.problem:
            return f"{verdict}: {self.problem}"
        return (f"{verdict}: {self.runtime} vs PyTorch (eval) on {self.inputs} seeded inputs: max abs diff "
                f"{self.max_abs:.3g}, max rel diff {self.max_rel:.3g} of the output's scale {self.scale:.3g} "
                f"(tolerance {self.tolerance:g})")


def check(fmt: str, path: Path, reference, arch: Arch, threads: int = 1) -> Check:
    """Run the file at `path` on its runtime and compare with `reference` (the PyTorch module)."""
    import torch

    rng = np.random.default_rng(CHECK_SEED + 1)
    shape = (1, arch.in_channels, arch.resolution, arch.resolution)
    inputs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(CHECK_INPUTS)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            want = [reference.eval()(torch.from_numpy(x)).numpy() for x in inputs]
            if fmt == "torch":
                loaded = load_torch_export(path)
                got = [loaded(torch.from_numpy(x)).numpy() for x in inputs]
            else:
                run = runtimes.file_runner(RUNTIME[fmt], path, threads)
                got = [np.asarray(run(x)) for x in inputs]
    finally:
        torch.set_num_threads(previous)
    result = Check(RUNTIME[fmt], len(inputs), 0.0, max(float(np.abs(w).max()) for w in want), TOLERANCE[fmt])
    if any(g.shape != w.shape for g, w in zip(got, want)):
        result.problem = f"{RUNTIME[fmt]}'s output is {got[0].shape}, PyTorch's {want[0].shape}"
    elif not all(np.isfinite(g).all() for g in got):
        result.problem = f"{RUNTIME[fmt]}'s output is not finite (NaN/inf)"
    else:
        result.max_abs = max(float(np.abs(g.astype(np.float64) - w).max()) for g, w in zip(got, want))
    return result


# -- the whole command --------------------------------------------------------------------------
@dataclass
class Exported:
    format: str
    path: Path
    bytes: int
    source: Source
    folded: int | None  # BatchNorm layers folded (None: torch keeps them)
    check: Check

    def verify_hint(self) -> str:
        """The command that times the exported file itself in the format's runtime."""
        runtime = RUNTIME[self.format]
        hint = (f"pynas verify {shlex.quote(str(self.path))} (in {runtime}; against this machine's {runtime} bundle "
                f"when it has one: `pynas device init --backend {runtime}`)")
        if self.path.suffix.lower() != SUFFIX[self.format]:
            hint += f" once renamed to {SUFFIX[self.format]} (verify tells the format by the extension)"
        return hint

    def report(self) -> str:
        arch, shape = self.source.arch, f"1x{self.source.arch.in_channels}x{self.source.arch.resolution}x{self.source.arch.resolution}"
        kind = {"torch": f"torch.save dict (load_torch_export; input {shape} float32)",
                "onnx": f"ONNX opset {OPSET}, input x: {shape} float32 NCHW",
                "tflite": f"TFLite, input {shape} float32 NCHW"}[self.format]
        folded = ("kept (a torch export stays trainable)" if self.folded is None
                  else f"{self.folded} layer(s) folded into the conv before each")
        lines = [f"exported {arch}",
                 f"  format     {self.format}: {kind}",
                 f"  file       {self.path}, {self.bytes:,} bytes",
                 f"  weights    {self.source.weights}",
                 f"  BatchNorm  {folded}",
                 f"  check      {self.check.describe()}"]
        lines += [f"  note       {note}" for note in self.source.notes]
        if not self.check.passed:
            lines.append(f"  the file is kept at {self.path}, but it does not compute what the PyTorch module does")
        lines.append(f"  time it    {self.verify_hint()}")
        return "\n".join(lines)


def export(arch_or_run: str | None, fmt: str, out: str | Path, *, weights: str | Path | None = None, seed: int = 0,
           force: bool = False, threads: int = 1) -> Exported:
    """Export (see the module docstring). Every input is checked before any work (ValueError); the
    file is written under a temporary name and renamed, so a failed conversion loses nothing."""
    require_runtime(fmt)
    path = check_out(out, force)
    source = resolve_source(arch_or_run, weights, seed)
    folded_count = None
    staging = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        if fmt == "torch":
            write_torch(staging, source)
        else:
            folded, folded_count = fold_batchnorm(source.module)
            _write_converted(fmt, staging, source, folded)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    verdict = check(fmt, path, source.module, source.arch, threads)
    return Exported(fmt, path, path.stat().st_size, source, folded_count, verdict)


__all__ = ["FORMATS", "SUFFIX", "TOLERANCE", "Check", "Exported", "ExportedFile", "Source", "check", "count_batchnorm",
           "export", "fold_batchnorm", "initialised", "load_torch_export", "parse_arch", "read_exported",
           "require_runtime",
           "resolve_source", "weights_sha256"]
