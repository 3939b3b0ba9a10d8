"""Writing predictor bundles: a trained XGBoost predictor, a compiled table from elsewhere, a
lookup of per-architecture latencies (`pynas.predictor.lookup`).

Every writer stages the bundle in a folder beside its destination and moves it into place whole
(`_staged`), manifest last, so a failure half-way leaves an existing bundle as it was, and
`check_writable` refuses to overwrite one unless asked (checked before minutes of training).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pynas.predictor.features import FEATURE_NAMES
from pynas.predictor.manifest import BundleError, Manifest, space_info, write_manifest
from pynas.predictor.network_term import NetworkTerm
from pynas.predictor.predictors import Predictor
from pynas.predictor.train import Dataset, SegmentModel, Trained

MODEL = "model.ubj"
TABLE = "table.npz"
REPORT = "report.json"
# A trained model (+ compiled table), a table measured elsewhere, or one latency per architecture.
KINDS = ("xgboost", "table", "lookup")


def check_writable(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """`folder` as a Path, if a bundle may be written there: absent, an empty folder, or a bundle
    to replace with `overwrite`, in a place this process can write. BundleError naming the path
    otherwise: called before minutes of training, so nothing is computed for nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BundleError(f"{folder}: expected a folder for the bundle, got a file there")
    if (folder / "manifest.json").exists() and not overwrite:
        raise BundleError(f"{folder}: a bundle is already there (overwrite it with --force / overwrite=True)")
    if folder.is_dir() and not (folder / "manifest.json").is_file() and any(folder.iterdir()):
        raise BundleError(f"{folder}: expected an empty folder or a bundle to replace, got other files there")
    existing = folder.resolve() if folder.exists() else folder.resolve().parent
    while not existing.exists():  # the nearest ancestor that exists must let us create below it
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BundleError(f"{folder}: cannot write there ({existing} is not a writable folder)")
    return folder


def _libraries(xgboost: bool) -> dict:
    import pynas

    libraries = {"pynas": pynas.__version__, "numpy": np.__version__}
    if xgboost:
        libraries["xgboost"] = importlib.metadata.version(_xgboost_dist())
    return libraries


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save(folder: str | os.PathLike, trained: Trained, data: Dataset, *, name: str | None = None, space=None,
         source: str = "", overwrite: bool = False, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a bundle: model, report, the compiled table of `space` if given, `extra_files`
    (name -> bytes, e.g. the measurements it was trained on), manifest last. An existing bundle in
    `folder` is kept unless `overwrite`; the bundle is staged and moved into place whole."""
    folder = Path(folder)
    with _staged(folder, overwrite) as stage:
        trained.model.booster.save_model(str(stage / MODEL))
        files = {MODEL: "", REPORT: _write_report(stage, trained.report)}
        for file_name, content in (extra_files or {}).items():
            (stage / file_name).write_bytes(content)
            files[file_name] = ""
        info = None
        if space is not None:
            _compile_into(stage, space, _pricing(trained.model, trained.term))
            files[TABLE] = ""
            info = space_info(space)
        write_manifest(stage, Manifest(
            name=name or folder.name, kind="xgboost", units="ms", features=list(FEATURE_NAMES),
            device={"device_id": data.device_id, **data.device}, backend=data.backend,
            backend_version=data.backend_version, threads=data.threads, space=info,
            network_term=trained.term.to_json(), libraries=_libraries(xgboost=True), files=files, created_at=_now(),
            source=source, extra={"caches": data.caches, "report": trained.report, "domain": data.domain()}))
    return folder


def _pricing(model: SegmentModel, term: NetworkTerm) -> Predictor:
    """A Predictor over `model` with `term`, to price segments exactly as loading will."""
    stub = Manifest(name="", kind="xgboost", units="ms", features=[], device={}, backend="", backend_version="",
                    threads=0, space=None, network_term=term.to_json(), libraries={}, files={}, created_at="")
    return Predictor(Path("."), stub, model, term=term)


def _compile_into(folder: Path, space, predictor: Predictor) -> None:
    """The compiled table of `space` priced by `predictor`'s segment pricing, saved in `folder`."""
    from pynas.predictor.table import compile_table
    from pynas.space.catalogue import space_items

    items = space_items(space)
    ms = predictor.segment_ms([c.kind for c in items.values()], [c.features for c in items.values()])
    prices = dict(zip(items, map(float, ms)))
    compile_table(space, prices, overhead_ms=predictor.overhead_ms).save(folder / TABLE)


def save_table(folder: str | os.PathLike, table, space, *, device: dict, backend: str, backend_version: str,
               threads: int, report: dict, source: str, name: str | None = None, overwrite: bool = False) -> Path:
    """Write a table bundle (kind "table"): a compiled table of `space` priced from measurements
    made elsewhere (no model), its report, manifest last."""
    folder = Path(folder)
    with _staged(folder, overwrite) as stage:
        table.save(stage / TABLE)
        write_manifest(stage, Manifest(
            name=name or folder.name, kind="table", units="ms", features=[], device=device, backend=backend,
            backend_version=backend_version, threads=threads, space=space_info(space),
            network_term=NetworkTerm(overhead_ms=table.overhead_ms).to_json(), libraries=_libraries(xgboost=False),
            files={TABLE: "", REPORT: _write_report(stage, report)}, created_at=_now(), source=source,
            extra={"report": report}))
    return folder


def save_lookup(folder: str | os.PathLike, ms, space, *, device: dict, backend: str, backend_version: str,
                threads: int, report: dict, source: str, name: str | None = None, overwrite: bool = False,
                features: list[str] | None = None, extra_files: dict[str, bytes] | None = None,
                extra: dict | None = None) -> Path:
    """Write a lookup bundle (kind "lookup"): `ms[i]` the latency of architecture i of `space` (an
    indexed space: NAS-Bench-201), checked as loading checks it, its report, manifest last. A lookup
    computed by a model (`pynas.predictor.cellnet`) ships it too: its `features`, `extra_files`
    (name -> bytes: the model, the measurements) and `extra` manifest fields."""
    from pynas.predictor.lookup import KIND, LOOKUP, read_lookup, write_lookup

    folder = Path(folder)
    with _staged(folder, overwrite) as stage:
        write_lookup(stage / LOOKUP, ms)
        read_lookup(stage / LOOKUP, space)  # length, finite, > 0: refused here, not when loaded
        files = {LOOKUP: "", REPORT: _write_report(stage, report)}
        for file_name, content in (extra_files or {}).items():
            (stage / file_name).write_bytes(content)
            files[file_name] = ""
        write_manifest(stage, Manifest(
            name=name or folder.name, kind=KIND, units="ms", features=list(features or []), device=device,
            backend=backend, backend_version=backend_version, threads=threads, space=space_info(space),
            network_term=NetworkTerm().to_json(), libraries=_libraries(xgboost=bool(features)),
            files=files, created_at=_now(), source=source, extra={**(extra or {}), "report": report}))
    return folder


def _write_report(folder: Path, report: dict) -> str:
    (folder / REPORT).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return ""  # the manifest hashes it


@contextlib.contextmanager
def _staged(folder: Path, overwrite: bool):
    """A staging folder beside `folder` to write a bundle into, moved into place whole when the
    block succeeds: a failure half-way (a key the table cannot price, a full disk) leaves
    `folder`, an existing bundle included, as it was. `folder` may be absent, empty or a bundle
    (replaced only with `overwrite`); anything else is refused, not deleted."""
    check_writable(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(folder)
    stage = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        if folder.exists():
            folder.rename(old)
        try:
            stage.rename(folder)
        except OSError:
            if old.exists():
                old.rename(folder)
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging and replaced-bundle folders (`.NAME.staging-PID`, `.NAME.old-PID`) that
    a writer killed before its cleanup left beside `folder`, those of processes no longer alive."""
    removed = []
    for leftover in folder.parent.glob(f".{folder.name}.*-*"):
        kind, _, pid = leftover.name[len(folder.name) + 2:].rpartition("-")
        if kind not in ("staging", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _xgboost_dist() -> str:
    for dist in ("xgboost-cpu", "xgboost"):
        try:
            importlib.metadata.version(dist)
            return dist
        except importlib.metadata.PackageNotFoundError:
            continue
    raise BundleError("xgboost: not installed (pip install xgboost-cpu on Linux x86_64, else xgboost)")


