"""Predictor bundle manifests: what a bundle is for, checked when it is loaded.

A bundle is a folder `predictors/<name>/` holding `manifest.json` and the files it lists (an
XGBoost model as UBJ, a compiled table or a per-architecture lookup as .npz without pickles, an
accuracy report), each with its sha256. The manifest says what the numbers mean (units, features
in order, the network term), where they were measured (device fingerprint, backend and version,
threads) and with what (library versions). A manifest is input from anywhere, so reading one
checks every field's type and value (file entries are plain names inside the folder, the network
term's numbers are finite and physical), then loading checks the feature list and every file's
hash, and a prediction the space: a mismatch raises BundleError saying expected vs got.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pynas.store.errors import shown

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 << 20  # a manifest is a few KB; a larger file is not one


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
    kind: str  # "xgboost" (model + optional compiled table), "table" (a measured per-segment table only) or
    # "lookup" (one latency per architecture of an indexed space: pynas.predictor.lookup)
    units: str  # "ms"
    features: list[str]  # the model's input features in order ([] for kind "table")
    device: dict  # the store's device fingerprint (+ "device_id"), or a description for foreign data
    backend: str
    backend_version: str
    threads: int  # 0: the source does not say
    space: dict | None  # space_info(): {"name", "resolution", "options", "layout"} of the table or lookup, or None
    network_term: dict  # pynas.predictor.network_term.NetworkTerm's JSON form
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
        """The manifest in `folder`, every field checked (BundleError naming the file and field)."""
        path = folder / MANIFEST
        if not path.is_file():
            raise BundleError(f"{folder}: not a predictor bundle (expected {MANIFEST} in it)")
        data = read_json(path, "manifest")
        if not isinstance(data, dict):
            raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
        got = data.get("schema_version")
        if got != SCHEMA_VERSION:
            raise BundleError(f"{path}: schema_version: expected {SCHEMA_VERSION}, got {_short(got)} "
                              "(made by another pynas version)")
        names = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - names, {n for n in names if n not in data} - {"extra", "source"}
        if unknown or missing:
            raise BundleError(f"{path}: fields: expected {sorted(names)}, got unknown {sorted(unknown)} "
                              f"and missing {sorted(missing)}")
        for name, check in _FIELD_CHECKS.items():
            problem = check(data[name]) if name in data else None
            if problem:
                raise BundleError(f"{path}: {name}: expected {problem}, got {_short(data[name])}")
        from pynas.predictor.network_term import NetworkTerm, NetworkTermError

        try:
            NetworkTerm.from_json(data["network_term"])
        except NetworkTermError as error:
            raise BundleError(f"{path}: {error}") from None
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
            got = "no space" if self.space is None else f"{self.space['name']}@{self.space['resolution']} " \
                                                      f"{self.space['options']}"
            raise BundleError(f"bundle {self.name}: space: expected {want['name']}@{want['resolution']} "
                              f"{want['options']} (the one asked for), got {got} (the bundle's)")


def _short(value) -> str:
    return shown(value, 80)


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# Only plain names inside the bundle folder: a manifest must never make pynas open (and hash)
# ../../etc/passwd or /proc/self/environ.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_files(value) -> str | None:
    if not isinstance(value, dict):
        return "an object of file name -> sha256"
    for name, digest in value.items():
        if not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            return f"plain file names inside the bundle folder (letters, digits, _ . -), not {name!r}"
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return f"a sha256 (64 lowercase hex digits) for file {name}"
    return None


def _check_space(value) -> str | None:
    expected = "null or an object {name, resolution, options, layout}"
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"name", "resolution", "options", "layout"}:
        return expected
    if not isinstance(value["name"], str) or not isinstance(value["options"], dict) or \
            not _is_int(value["resolution"], 1, 1 << 20) or not isinstance(value["layout"], str):
        return expected
    if value["options"].get("resolution", value["resolution"]) != value["resolution"]:
        return expected + " (options.resolution the resolution)"
    return None


def _is_scalar(value) -> bool:
    """A JSON scalar pynas can show and compare: a string, a boolean, null or a finite number."""
    if value is None or isinstance(value, (str, bool)):
        return True
    try:
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _check_device(value) -> str | None:
    expected = "an object of name -> string, number, boolean, null or list of strings (a device fingerprint)"
    if not isinstance(value, dict):
        return expected
    for v in value.values():
        if not (_is_scalar(v) or isinstance(v, list) and all(isinstance(x, str) for x in v)):
            return expected
    return None


CACHE_LEVELS = ("l1d", "l2", "l3")


def _check_extra(value) -> str | None:
    """What loading and listing read from `extra`: the caches the model's features need; the report
    and domain are checked where they are used."""
    if not isinstance(value, dict):
        return "an object"
    caches = value.get("caches", {})
    if not isinstance(caches, dict) or not set(caches) <= set(CACHE_LEVELS) or \
            not all(v is None or _is_int(v, 1, 1 << 50) for v in caches.values()):
        return f"an object whose caches is {{{', '.join(CACHE_LEVELS)}: bytes or null}}"
    if not isinstance(value.get("report", {}), dict):
        return "an object whose report is an object"
    return None


_TEXT = lambda v: None if isinstance(v, str) else "a string"  # noqa: E731
_OBJECT = lambda v: None if isinstance(v, dict) else "an object"  # noqa: E731
_FIELD_CHECKS = {
    "name": _TEXT, "kind": _TEXT, "backend": _TEXT, "backend_version": _TEXT, "created_at": _TEXT, "source": _TEXT,
    "units": lambda v: None if v == "ms" else "'ms'",
    "features": lambda v: None if isinstance(v, list) and all(isinstance(f, str) for f in v) else "a list of names",
    "device": _check_device, "network_term": _OBJECT, "extra": _check_extra,
    "threads": lambda v: None if _is_int(v, 0, 4096) else "an integer in 0..4096 (0: the source does not say)",
    "space": _check_space,
    "libraries": lambda v: None if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) else
    "an object of library -> version",
    "files": _check_files,
}


def read_json(path: Path, what: str):
    """JSON from `path`, with every way it can fail (unreadable, not UTF-8, malformed, nested too
    deeply for Python's parser, too large) a BundleError naming the file."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: unreadable {what} (over {MAX_MANIFEST_BYTES >> 20} MB)")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BundleError(f"{path}: unreadable {what} ({reason})") from None


def space_info(space) -> dict:
    """How a manifest names a search space: enough to rebuild it (`space_of`) and to tell two apart."""
    return {"name": space.name, "resolution": space.resolution, "options": space.options(),
            "layout": space.layout_name()}


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
