"""Predictor bundle manifests: what a bundle is for, checked when it is loaded.

A bundle is a folder `predictors/<name>/` holding `manifest.json` and the files it lists (an
XGBoost model as UBJ, a compiled table as .npz without pickles, an accuracy report), each with its
sha256. The manifest says what the numbers mean (units, features in order, the network term), where
they were measured (device fingerprint, backend and version, threads) and with what (library
versions). Loading checks the schema version, the feature list and every file's hash, and a
prediction checks the space and resolution: a mismatch raises BundleError saying expected vs got.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class BundleError(ValueError):
    pass


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Manifest:
    name: str
    kind: str  # "xgboost" (model + optional compiled table) or "table" (a measured per-segment table only)
    units: str  # "ms"
    features: list[str]  # the model's input features in order ([] for kind "table")
    device: dict  # the store's device fingerprint (+ "device_id"), or a description for foreign data
    backend: str
    backend_version: str
    threads: int
    space: dict | None  # space_info(): {"name", "resolution", "options", "layout"} of the compiled table, or None
    network_term: dict  # {"scale", "overhead_ms", "weight_ms_per_mb", few-shot: "group_scales", ...}: see Predictor.segment_ms
    libraries: dict  # {"pynas", "xgboost", "numpy"}: versions that made the files
    files: dict  # file name -> sha256
    created_at: str
    source: str = ""  # where the measurements came from (store path and series, or a dataset)
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST
        if not path.is_file():
            raise BundleError(f"{folder}: not a predictor bundle (expected {MANIFEST} in it)")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{path}: unreadable manifest ({error})") from error
        if not isinstance(data, dict):
            raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
        got = data.get("schema_version")
        if got != SCHEMA_VERSION:
            raise BundleError(f"{path}: schema_version: expected {SCHEMA_VERSION}, got {got!r} "
                              "(made by another pynas version)")
        names = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - names, {n for n in names if n not in data} - {"extra", "source"}
        if unknown or missing:
            raise BundleError(f"{path}: fields: expected {sorted(names)}, got unknown {sorted(unknown)} "
                              f"and missing {sorted(missing)}")
        return cls(**data)

    def check_files(self, folder: Path) -> None:
        for name, digest in self.files.items():
            path = folder / name
            if not path.is_file():
                raise BundleError(f"{folder}: file {name} listed in the manifest is missing")
            got = sha256_of(path)
            if got != digest:
                raise BundleError(f"{path}: sha256: expected {digest} (manifest), got {got}: the file changed")

    def check_features(self, expected: list[str] | tuple[str, ...]) -> None:
        if list(self.features) != list(expected):
            first = next((i for i, (a, b) in enumerate(zip(self.features, expected)) if a != b),
                         min(len(self.features), len(expected)))
            raise BundleError(f"bundle {self.name}: features: expected this pynas's {len(expected)} features, got "
                              f"{len(self.features)}; first difference at #{first}: expected "
                              f"{list(expected)[first:first + 1]}, got {list(self.features)[first:first + 1]}")

    def check_space(self, space) -> None:
        """`space` (a SearchSpace) must be the one the bundle's table was compiled for."""
        want = space_info(space)
        if self.space != want:
            raise BundleError(f"bundle {self.name}: space: expected {want} (the one asked for), got {self.space} "
                              "(the bundle's compiled table)")


def space_info(space) -> dict:
    """How a manifest names a search space: enough to rebuild it (`space_of`) and to tell two apart."""
    return {"name": space.name, "resolution": space.resolution, "options": space.options(),
            "layout": space.table_layout().layout.space}


def space_of(info: dict):
    from pynas.space import get_space

    try:
        return get_space(info["name"], **info["options"])
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"space: expected a space this pynas knows ({{name, options}}), got {info} ({error})") from error


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Hashes the listed files and writes the manifest last, atomically: a bundle with a manifest
    is complete."""
    manifest.files = {name: sha256_of(folder / name) for name in sorted(manifest.files)}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json() + "\n")
    tmp.replace(folder / MANIFEST)

