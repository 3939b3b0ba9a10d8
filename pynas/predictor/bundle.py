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

import contextlib
import importlib.metadata
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from pynas.arch import Arch
from pynas.predictor.features import FEATURE_NAMES
from pynas.predictor.manifest import BundleError, Manifest, sha256_of, space_info, space_of, write_manifest
from pynas.predictor.train import Dataset, SegmentModel, Trained

MODEL = "model.ubj"
TABLE = "table.npz"
REPORT = "report.json"
MEASUREMENTS = "measurements.jsonl.gz"  # optional: what an XGBoost bundle was trained on
KINDS = ("xgboost", "table")  # a trained model (+ compiled table), or a table measured elsewhere


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
    """An XGBoost bundle: segments priced by the model, network = scale x sum + overhead."""

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

    def segment_ms(self, kinds: Sequence[str], features: Sequence[dict]) -> np.ndarray:
        """Predicted ms of segments (their kinds and features) as they count in a network: the
        model's, times the network term's scale, plus its per-segment cost (both per op-type
        group after a few-shot calibration: `group_scales`, `group_offsets`), plus the cold
        fetch of the segment's weights (`weight_ms_per_mb`)."""
        if not features:
            return np.zeros(0)
        scales, offsets = self.segment_terms(kinds, features)
        return self.model.predict(list(features)) * scales + offsets

    def segment_terms(self, kinds: Sequence[str], features: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(scales, offsets) of segments: what multiplies each one's model prediction, and what adds
        to it (its op-type group's per-segment cost and the cold fetch of its weights)."""
        from pynas.predictor.fewshot import segment_group

        groups = [segment_group(k, f) for k, f in zip(kinds, features)]
        scales = np.array([self.group_scale(g) for g in groups])
        offsets = np.array([self.group_offset(g) + self.group_weight_ms_per_mb(g) * f["weight_bytes"] / 1e6
                            for g, f in zip(groups, features)])
        return scales, offsets

    def group_weight_ms_per_mb(self, group: str) -> float:
        term = self.manifest.network_term
        return float(term.get("group_weight_ms_per_mb", {}).get(group, term.get("weight_ms_per_mb", 0.0)))

    def training_data(self) -> Dataset | None:
        """The Dataset this bundle was trained on, from the measurements it ships (`MEASUREMENTS`;
        None without them): to retrain it or re-check its report."""
        import tempfile

        from pynas.predictor.train import load_dataset
        from pynas.store import Store, import_jsonl

        path = self.folder / MEASUREMENTS
        if not path.is_file():
            return None
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.sqlite") as store:
            import_jsonl(store, path)
            return load_dataset(store, backend=self.manifest.backend, threads=self.manifest.threads)

    def batched(self, space):
        """The XGBoost path over token rows of `space`, vectorised (`pynas.predictor.batched`)."""
        from pynas.predictor.batched import BatchedModel

        return BatchedModel(self, space)

    def group_scale(self, group: str) -> float:
        return float(self.manifest.network_term.get("group_scales", {}).get(group, self.scale))

    def group_offset(self, group: str) -> float:
        term = self.manifest.network_term
        return float(term.get("group_offsets", {}).get(group, term.get("segment_ms", 0.0)))

    def explain(self, arch: Arch | str) -> list[dict]:
        """Per segment: id, key, kind, predicted ms (as counted in the network sum); then the overhead."""
        arch = _resolve_arch(arch)
        segs = self._segments(arch)
        ms = self.segment_ms([s.kind for s in segs], [s.features() for s in segs])
        rows = [{"segment": s.id, "kind": s.kind, "key": s.key, "ms": float(m)} for s, m in zip(segs, ms)]
        return rows + [{"segment": "overhead", "kind": "network", "key": "", "ms": self.overhead_ms}]

    def predict(self, arch: Arch | str) -> float:
        return float(sum(row["ms"] for row in self.explain(arch)))

    def predict_batch(self, archs_or_tokens: Sequence[Arch | str] | np.ndarray) -> np.ndarray:
        """ms per architecture. Token arrays (N x D) need the bundle's compiled table; a list of
        architectures is priced by XGBoost on all their distinct segments at once (any space)."""
        if isinstance(archs_or_tokens, np.ndarray):
            if self.table is None:
                raise BundleError(f"bundle {self.name}: token arrays need a compiled table; this bundle has none "
                                  "(pass architectures, or calibrate with --space)")
            return self.table.predict_batch(archs_or_tokens)
        archs = [_resolve_arch(a) for a in archs_or_tokens]
        per_arch = [self._segments(a) for a in archs]
        distinct = {s.key: s for segs in per_arch for s in segs}
        ms = dict(zip(distinct, self.segment_ms([s.kind for s in distinct.values()],
                                                [s.features() for s in distinct.values()])))
        return np.array([sum(ms[s.key] for s in segs) + self.overhead_ms for segs in per_arch])


class TablePredictor:
    """A table bundle: latencies measured per block elsewhere (e.g. HW-NAS-Bench's phones), only
    for the one space its compiled table covers."""

    def __init__(self, folder: Path, manifest: Manifest, table):
        self.folder, self.manifest, self.table = folder, manifest, table

    @property
    def name(self) -> str:
        return self.manifest.name

    def _rows(self, archs_or_tokens):
        if isinstance(archs_or_tokens, np.ndarray):
            return archs_or_tokens
        return [a if not isinstance(a, (Arch, str)) else _resolve_arch(a) for a in archs_or_tokens]

    def explain(self, arch: Arch | str | Sequence[int]) -> list[dict]:
        """The table cells the architecture reads (stem, each layer, head, overhead)."""
        row = _resolve_arch(arch) if isinstance(arch, (Arch, str)) else arch
        return [{"segment": r["part"], "kind": r["cell"], "key": "", "ms": r["ms"]} for r in self.table.explain(row)]

    def predict(self, arch: Arch | str | Sequence[int]) -> float:
        return float(self.predict_batch([arch])[0])

    def predict_batch(self, archs_or_tokens) -> np.ndarray:
        return self.table.predict_batch(self._rows(archs_or_tokens))


def load(name_or_path: str | os.PathLike, space=None) -> Predictor | TablePredictor:
    """Load and check a bundle (schema, features, files' sha256; its space against `space` if given)."""
    folder = _resolve(name_or_path)
    manifest = Manifest.read(folder)
    manifest.check_files(folder)
    if manifest.kind not in KINDS:
        raise BundleError(f"{folder}: kind: expected one of {', '.join(KINDS)}, got {manifest.kind!r}")
    table = None
    if TABLE in manifest.files:
        from pynas.predictor.table import CompiledTable

        if space is not None:
            manifest.check_space(space)
        else:
            space = space_of(manifest.space)
        table = CompiledTable.load(folder / TABLE, space)
    if manifest.kind == "table":
        if table is None:
            raise BundleError(f"{folder}: kind 'table': expected a {TABLE} listed in the manifest, got none")
        return TablePredictor(folder, manifest, table)
    manifest.check_features(FEATURE_NAMES)
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(folder / MODEL))
    caches = manifest.extra.get("caches", {})
    return Predictor(folder, manifest, SegmentModel(caches, booster=booster), table)


def check_writable(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """`folder` as a Path, if a bundle may be written there (BundleError if one exists and not `overwrite`)."""
    folder = Path(folder)
    if (folder / "manifest.json").exists() and not overwrite:
        raise BundleError(f"{folder}: a bundle is already there (overwrite it with --force / overwrite=True)")
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
        network_term = trained.network_term
        if space is not None:
            _compile_into(stage, space, _pricing(trained.model, network_term))
            files[TABLE] = ""
            info = space_info(space)
        write_manifest(stage, Manifest(
            name=name or folder.name, kind="xgboost", units="ms", features=list(FEATURE_NAMES),
        device={"device_id": data.device_id, **data.device}, backend=data.backend,
        backend_version=data.backend_version, threads=data.threads, space=info,
        network_term=network_term, libraries=_libraries(xgboost=True), files=files, created_at=_now(),
        source=source, extra={"caches": data.caches, "report": trained.report}))
    return folder


def _pricing(model: SegmentModel, network_term: dict) -> Predictor:
    """A Predictor over `model` with `network_term`, to price segments exactly as loading will."""
    stub = Manifest(name="", kind="xgboost", units="ms", features=[], device={}, backend="", backend_version="",
                    threads=0, space=None, network_term=network_term, libraries={}, files={}, created_at="")
    return Predictor(Path("."), stub, model)


def _compile_into(folder: Path, space, predictor: Predictor) -> None:
    """The compiled table of `space` priced by `predictor`'s segment pricing, saved in `folder`."""
    from pynas.predictor.table import compile_table
    from pynas.profiling.configs import space_segments

    configs = space_segments(space)
    ms = predictor.segment_ms([c.kind for c in configs.values()], [c.features for c in configs.values()])
    prices = dict(zip(configs, map(float, ms)))
    compile_table(space, prices, overhead_ms=predictor.overhead_ms).save(folder / TABLE)


def save_calibrated(folder: str | os.PathLike, base: Predictor, calibration, report: dict, *, name: str | None = None,
                    device: dict | None = None, overwrite: bool = False) -> Path:
    """An XGBoost bundle adapted by few-shot calibration (`pynas.predictor.fewshot`): `base`'s model,
    a network term with the calibration's group scales and per-segment cost, its table recompiled."""
    folder = Path(folder)
    # The calibration rescales the base's segment prices (model x b_g + e_g + w_g x MB): composed,
    # a segment of group g costs model x (s_g b_g) + (s_g e_g + d) + (s_g w_g) x MB.
    groups = set(calibration.scales) | set(base.manifest.network_term.get("group_scales", {}))
    scale_of = lambda g: calibration.scales.get(g, calibration.scale)  # noqa: E731
    network_term = {"scale": calibration.scale * base.scale, "overhead_ms": calibration.overhead_ms,
                    "weight_ms_per_mb": calibration.scale * base.group_weight_ms_per_mb(""),
                    "group_weight_ms_per_mb": {g: scale_of(g) * base.group_weight_ms_per_mb(g) for g in sorted(groups)},
                    "segment_ms": calibration.scale * base.group_offset("") + calibration.segment_ms,
                    "group_scales": {g: scale_of(g) * base.group_scale(g) for g in sorted(groups)},
                    "group_offsets": {g: scale_of(g) * base.group_offset(g) + calibration.segment_ms
                                      for g in sorted(groups)}}
    m = base.manifest
    with _staged(folder, overwrite) as stage:
        base.model.booster.save_model(str(stage / MODEL))
        files = {MODEL: "", REPORT: _write_report(stage, report)}
        if base.table is not None:
            _compile_into(stage, base.table.space, _pricing(base.model, network_term))
            files[TABLE] = ""
        write_manifest(stage, Manifest(
            name=name or folder.name, kind="xgboost", units="ms", features=list(m.features),
            device=device or {"name": name or folder.name}, backend=m.backend, backend_version=m.backend_version,
            threads=m.threads, space=m.space, network_term=network_term, libraries=_libraries(xgboost=True),
            files=files, created_at=_now(), source=f"few-shot calibration of {base.name} on {calibration.k} networks",
            extra={"caches": m.extra.get("caches", {}), "report": report, "base": base.name}))
    return folder


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
            network_term={"scale": 1.0, "overhead_ms": table.overhead_ms}, libraries=_libraries(xgboost=False),
            files={TABLE: "", REPORT: _write_report(stage, report)}, created_at=_now(), source=source,
            extra={"report": report}))
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
    if folder.exists() and not (folder / "manifest.json").is_file() and any(folder.iterdir()):
        raise BundleError(f"{folder}: expected an empty folder or a bundle to replace, got other files there")
    folder.parent.mkdir(parents=True, exist_ok=True)
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


def _xgboost_dist() -> str:
    for dist in ("xgboost-cpu", "xgboost"):
        try:
            importlib.metadata.version(dist)
            return dist
        except importlib.metadata.PackageNotFoundError:
            continue
    raise BundleError("xgboost: not installed (pip install xgboost-cpu on Linux x86_64, else xgboost)")


INDEX = "index.json"
INDEX_SCHEMA = 1


def _index_entry(folder: Path, manifest: Manifest) -> dict:
    report = manifest.extra.get("report", {})
    summary = {name: {k: report[name][k] for k in ("n", "rmspe", "within10")}
               for name in ("heldout_networks", "heldout_segments") if isinstance(report.get(name), dict)}
    return {"name": folder.name, "kind": manifest.kind, "backend": manifest.backend,
            "backend_version": manifest.backend_version, "threads": manifest.threads,
            "space": manifest.space["layout"] if manifest.space else None,
            "device": manifest.device.get("name") or manifest.device.get("cpu_model") or manifest.device.get("device_id"),
            "manifest_sha256": sha256_of(folder / "manifest.json"), "accuracy": summary}


def write_index(root: str | os.PathLike) -> Path:
    """Write `root`/index.json listing every bundle folder under `root` (what a wheel ships)."""
    root = Path(root)
    entries = []
    for folder in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
        manifest = Manifest.read(folder)
        manifest.check_files(folder)
        entries.append(_index_entry(folder, manifest))
    tmp = root / (INDEX + ".tmp")
    tmp.write_text(json.dumps({"schema_version": INDEX_SCHEMA, "bundles": entries}, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / INDEX)
    return root / INDEX


def read_index(root: str | os.PathLike) -> list[dict]:
    """The bundles `root`/index.json lists, each checked against its folder (manifest hash), and no
    bundle folder left out: BundleError naming the first difference."""
    root = Path(root)
    path = root / INDEX
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: unreadable bundle index ({error})") from error
    if not isinstance(data, dict) or data.get("schema_version") != INDEX_SCHEMA or not isinstance(data.get("bundles"), list):
        raise BundleError(f"{path}: expected {{'schema_version': {INDEX_SCHEMA}, 'bundles': [...]}}, got "
                          f"{str(data)[:80]}")
    listed = {}
    for entry in data["bundles"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        folder = root / str(name)
        if not name or not (folder / "manifest.json").is_file():
            raise BundleError(f"{path}: bundle {name!r}: expected a bundle folder {folder}, got none")
        got = sha256_of(folder / "manifest.json")
        if entry.get("manifest_sha256") != got:
            raise BundleError(f"{path}: bundle {name}: manifest_sha256: expected {entry.get('manifest_sha256')} "
                              f"(index), got {got} (its manifest.json changed: rewrite the index)")
        listed[name] = entry
    unlisted = sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file() and p.name not in listed)
    if unlisted:
        raise BundleError(f"{path}: bundles: expected every bundle folder listed, got {unlisted} missing")
    return list(listed.values())
