"""Finding and loading predictor bundles.

    from pynas import predictor
    p = predictor.load("x86-avx512-native")       # a bundle name on the search path
    p = predictor.load("./predictors/my-device")  # a folder: a path has a separator in it
    p.predict("mnasnet-a1"); p.predict_batch(tokens); p.explain("mnasnet-a1")

A bundle folder holds `manifest.json` (`pynas.predictor.manifest`), `model.ubj` (XGBoost,
portable UBJ; never pickle), optionally `table.npz` (the space's compiled table, pickle-free),
`report.json` (held-out accuracy) and the measurements it was trained on; a lookup bundle
(`pynas.predictor.lookup`) `lookup.npz` instead, one latency per architecture. Writers are in
`pynas.predictor.writers`, the shipped bundles' index in `pynas.predictor.index`.

A name and a path are told apart by their spelling, never by what the current folder holds: a
string with a path separator (or one starting with '.' or '~') is a folder, anything else a name,
looked up in order in the folders of $PYNAS_PREDICTORS (os.pathsep-separated), this user's bundles
(`user_bundles()`, where `pynas device init` saves), the bundles installed with pynas, and the
source tree's `predictors/` when pynas runs from a checkout.
"""
from __future__ import annotations

import os
from pathlib import Path

from pynas.predictor.features import FEATURE_NAMES
from pynas.predictor.index import INDEX, read_index, write_index  # noqa: F401  (re-exported)
from pynas.predictor.lookup import LOOKUP, LookupPredictor, load_lookup  # noqa: F401
from pynas.predictor.manifest import MANIFEST, BundleError, Manifest, space_of
from pynas.predictor.predictors import MEASUREMENTS, Predictor, TablePredictor  # noqa: F401
from pynas.predictor.writers import (KINDS, MODEL, REPORT, TABLE, check_writable, save, save_lookup,  # noqa: F401
                                    save_table)


def user_bundles() -> Path:
    """Where this user's own bundles go: $XDG_DATA_HOME/pynas/predictors (~/.local/share/...)."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "pynas" / "predictors"


def search_path() -> list[Path]:
    paths = [Path(p) for p in os.environ.get("PYNAS_PREDICTORS", "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parent.parent  # .../pynas
    paths += [user_bundles(), package / "predictors"]  # the wheel installs the shipped bundles there
    if (package.parent / "pyproject.toml").is_file():  # running from a source checkout
        paths.append(package.parent / "predictors")
    return paths


def is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether a predictor argument names a folder (has a separator, or starts with '.' or '~')
    rather than a bundle on the search path."""
    text = os.fspath(name_or_path)
    return isinstance(name_or_path, os.PathLike) or os.sep in text or "/" in text or text.startswith((".", "~"))


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The bundle folder a predictor argument means (see the module docstring); BundleError saying
    which rule applied and where it looked."""
    if is_path(name_or_path):
        path = Path(os.path.expanduser(os.fspath(name_or_path)))
        if not path.is_dir():
            raise BundleError(f"predictor {os.fspath(name_or_path)!r}: expected a bundle folder at that path (a "
                              f"path, since it has a separator), got {'a file' if path.exists() else 'nothing'}")
        return path
    name = os.fspath(name_or_path)
    if not name:
        raise BundleError("predictor: expected a bundle name or folder, got an empty string")
    for root in search_path():
        if (root / name).is_dir():
            return root / name
    looked = ", ".join(str(p) for p in search_path())
    raise BundleError(f"predictor {name!r}: no bundle of that name (a name, since it has no path separator; "
                      f"for a folder write ./{name}) in {looked}")


def list_bundles() -> list[tuple[str, Path, Manifest | BundleError]]:
    """(name, folder, manifest or the error reading it) of every bundle on the search path: one
    unreadable bundle is listed with its reason, never hides the others."""
    found = []
    for root in search_path():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".") and (p / "manifest.json").is_file()):
            try:
                manifest = Manifest.read(folder)
                manifest.check_files(folder)
                found.append((folder.name, folder, manifest))
            except BundleError as error:
                found.append((folder.name, folder, error))
    return found


def _check_overhead(folder: Path, manifest: Manifest, table) -> None:
    """The manifest's network overhead must keep every network of the table's space > 0 ms: the
    table's exact least network (`CompiledTable.min_ms`) with the manifest's overhead instead of
    the table's own (the two are equal in a bundle pynas wrote)."""
    overhead = float(manifest.network_term["overhead_ms"])
    work = table.min_ms() - table.overhead_ms
    if not work + overhead > 0:
        raise BundleError(f"{folder / MANIFEST}: network_term.overhead_ms: expected more than {-work:.6g} (so that "
                          f"every network of the table's space stays > 0 ms: the least one is {work:.6g} ms without "
                          f"it), got {overhead!r}")


def load(name_or_path: str | os.PathLike, space=None) -> Predictor | TablePredictor | LookupPredictor:
    """Load and check a bundle (schema, fields, features, files' sha256; its space against `space`
    if given)."""
    folder = resolve(name_or_path)
    manifest = Manifest.read(folder)
    manifest.check_files(folder)
    if manifest.kind not in KINDS:
        raise BundleError(f"{folder}: kind: expected one of {', '.join(KINDS)}, got {manifest.kind!r}")
    if manifest.kind == "lookup":
        return load_lookup(folder, manifest, space)
    table = None
    if TABLE in manifest.files:
        from pynas.predictor.table import CompiledTable

        if space is not None:
            manifest.check_space(space)
        else:
            space = space_of(manifest.space)
        try:
            table = CompiledTable.load(folder / TABLE, space)
        except ValueError as error:  # names the file
            raise BundleError(str(error)) from None
        _check_overhead(folder, manifest, table)
    elif space is not None:
        manifest.check_space(space)
    if manifest.kind == "table":
        if table is None:
            raise BundleError(f"{folder}: kind 'table': expected a {TABLE} listed in the manifest, got none")
        return TablePredictor(folder, manifest, table)
    manifest.check_features(FEATURE_NAMES)
    if MODEL not in manifest.files:
        raise BundleError(f"{folder}: kind 'xgboost': expected a {MODEL} listed in the manifest, got none")
    from pynas.predictor.train import SegmentModel

    return Predictor(folder, manifest, SegmentModel.load(folder / MODEL, manifest.extra.get("caches", {})), table)
