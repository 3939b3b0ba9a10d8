"""Predictor bundles: save a trained predictor, load one by name or path, predict with it.

    from pynas import predictor
    p = predictor.load("this-machine-native")       # a name under the bundle path, or a folder
    p.predict("mnasnet-a1")                         # ms
    p.predict_batch(archs)                          # ms per arch (the compiled table when it fits)
    p.explain("mnasnet-a1")                         # per segment

A bundle folder holds `manifest.json` (pynas.predictor.manifest), `model.ubj` (XGBoost, portable
UBJ; never pickle), optionally `table.npz` (the space's compiled table, pickle-free) and
`report.json` (held-out accuracy). Bundles are found under, in this order: the folders in
$PYNAS_PREDICTORS (os.pathsep-separated), the `predictors` folder installed with pynas, the
source tree's `predictors/`. A name found nowhere is an error listing where it looked.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from pynas.arch import Arch
from pynas.predictor.features import FEATURE_NAMES
from pynas.predictor.manifest import BundleError, Manifest, write_manifest
from pynas.predictor.train import Dataset, SegmentModel, Trained

MODEL = "model.ubj"
TABLE = "table.npz"
REPORT = "report.json"


def search_path() -> list[Path]:
    paths = [Path(p) for p in os.environ.get("PYNAS_PREDICTORS", "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parent.parent
    paths += [package / "predictors", package.parent / "predictors"]
    return paths


def _resolve(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if os.sep not in str(name_or_path) and "/" not in str(name_or_path):
        for root in search_path():
            if (root / str(name_or_path)).is_dir():
                return root / str(name_or_path)
    looked = ", ".join(str(p) for p in search_path())
    raise BundleError(f"predictor {str(name_or_path)!r}: expected a bundle folder or the name of one under {looked}")


def list_bundles() -> list[tuple[str, Path, Manifest | BundleError]]:
    """(name, folder, manifest or the error reading it) of every bundle on the search path."""
    found = []
    for root in search_path():
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
                try:
                    found.append((folder.name, folder, Manifest.read(folder)))
                except BundleError as error:
                    found.append((folder.name, folder, error))
    return found


def _resolve_arch(arch: Arch | str) -> Arch:
    if isinstance(arch, Arch):
        return arch
    from pynas.presets import resolve

    return resolve(arch)


class Predictor:
    def __init__(self, folder: Path, manifest: Manifest, model: SegmentModel, table=None):
        self.folder, self.manifest, self.model, self.table = folder, manifest, model, table
        self.scale = float(manifest.network_term["scale"])
        self.overhead_ms = float(manifest.network_term["overhead_ms"])

    @property
    def name(self) -> str:
        return self.manifest.name

    def _segments(self, arch: Arch):
        from pynas.ir import lower
        from pynas.ir.segments import segments

        return segments(lower(arch))

    def explain(self, arch: Arch | str) -> list[dict]:
        """Per segment: id, key, kind, predicted ms (scaled as in the network sum); then the overhead."""
        arch = _resolve_arch(arch)
        segs = self._segments(arch)
        ms = self.model.predict([s.features() for s in segs]) * self.scale
        rows = [{"segment": s.id, "kind": s.kind, "key": s.key, "ms": float(m)} for s, m in zip(segs, ms)]
        return rows + [{"segment": "overhead", "kind": "network", "key": "", "ms": self.overhead_ms}]

    def predict(self, arch: Arch | str) -> float:
        return float(sum(row["ms"] for row in self.explain(arch)))

    def predict_batch(self, archs_or_tokens: Sequence[Arch | str] | np.ndarray) -> np.ndarray:
        """ms per architecture. Token arrays (N x D) need the bundle's compiled table; a list of
        architectures uses it when they are in its space, else XGBoost on all their distinct
        segments at once."""
        if isinstance(archs_or_tokens, np.ndarray):
            if self.table is None:
                raise BundleError(f"bundle {self.name}: token arrays need a compiled table; this bundle has none "
                                  "(pass architectures, or calibrate with --space)")
            return self.table.predict_batch(archs_or_tokens)
        archs = [_resolve_arch(a) for a in archs_or_tokens]
        per_arch = [self._segments(a) for a in archs]
        distinct = {s.key: s.features() for segs in per_arch for s in segs}
        keys = list(distinct)
        ms = dict(zip(keys, self.model.predict([distinct[k] for k in keys]))) if keys else {}
        return np.array([self.scale * sum(ms[s.key] for s in segs) + self.overhead_ms for segs in per_arch])


def load(name_or_path: str | os.PathLike, space=None) -> Predictor:
    """Load and check a bundle (schema, features, files' sha256; the table against `space` if given)."""
    folder = _resolve(name_or_path)
    manifest = Manifest.read(folder)
    manifest.check_files(folder)
    if manifest.kind != "xgboost":
        raise BundleError(f"{folder}: kind: expected 'xgboost' for pynas.predictor.load, got {manifest.kind!r} "
                          "(a measured table bundle: see pynas.hwnasbench)")
    manifest.check_features(FEATURE_NAMES)
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(folder / MODEL))
    caches = manifest.extra.get("caches", {})
    model = SegmentModel(caches, booster=booster)
    table = None
    if TABLE in manifest.files:
        from pynas.predictor.table import CompiledTable
        from pynas.space import get_space

        if space is None:
            space = get_space(manifest.space["name"], resolution=manifest.space["resolution"])
        table = CompiledTable.load(folder / TABLE, space)
    return Predictor(folder, manifest, model, table)


def check_writable(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """`folder` as a Path, if a bundle may be written there (BundleError if one exists and not `overwrite`)."""
    folder = Path(folder)
    if (folder / "manifest.json").exists() and not overwrite:
        raise BundleError(f"{folder}: a bundle is already there (overwrite it with --force / overwrite=True)")
    return folder


def save(folder: str | os.PathLike, trained: Trained, data: Dataset, *, name: str | None = None, space=None,
         source: str = "", overwrite: bool = False) -> Path:
    """Write a bundle: model, report, the compiled table of `space` if given, manifest last. An
    existing bundle in `folder` is kept unless `overwrite`."""
    folder = check_writable(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or folder.name
    trained.model.booster.save_model(str(folder / MODEL))
    (folder / REPORT).write_text(json.dumps(trained.report, indent=1, sort_keys=True) + "\n")
    files = {MODEL: "", REPORT: ""}
    space_info = None
    if space is not None:
        from pynas.predictor.table import compile_table
        from pynas.profiling.configs import space_segments

        configs = space_segments(space)
        keys = list(configs)
        ms = trained.model.predict([configs[k].features for k in keys]) * trained.scale
        table = compile_table(space, dict(zip(keys, map(float, ms))), overhead_ms=trained.overhead_ms)
        table.save(folder / TABLE)
        files[TABLE] = ""
        space_info = {"name": space.name, "resolution": space.resolution}
    import pynas

    manifest = Manifest(
        name=name, kind="xgboost", units="ms", features=list(FEATURE_NAMES),
        device={"device_id": data.device_id, **data.device}, backend=data.backend,
        backend_version=data.backend_version, threads=data.threads, space=space_info,
        network_term={"scale": trained.scale, "overhead_ms": trained.overhead_ms},
        libraries={"pynas": pynas.__version__, "xgboost": importlib.metadata.version(_xgboost_dist()),
                   "numpy": np.__version__},
        files=files, created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), source=source,
        extra={"caches": data.caches, "report": trained.report})
    write_manifest(folder, manifest)
    return folder


def _xgboost_dist() -> str:
    for dist in ("xgboost-cpu", "xgboost"):
        try:
            importlib.metadata.version(dist)
            return dist
        except importlib.metadata.PackageNotFoundError:
            continue
    raise BundleError("xgboost: not installed (pip install xgboost-cpu on Linux x86_64, else xgboost)")
