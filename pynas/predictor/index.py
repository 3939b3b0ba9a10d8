"""The index of a folder of bundles (`index.json`): what a wheel ships, each bundle with its
manifest's sha256 and accuracy summary, checked against the folders when read."""
from __future__ import annotations

import json
import os
from pathlib import Path

from pynas.predictor.manifest import BundleError, Manifest, sha256_of

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
