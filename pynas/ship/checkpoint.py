"""A NetAdapt run's checkpoint: a folder that makes every accepted step durable, so a killed run resumes.

    netadapt.adapt(arch, predictor, target_ms, scorer, checkpoint="out/adapt-checkpoint")

The folder holds

* ``adapt.json``: the record (`FORMAT`, `FORMAT_VERSION`): what the run is (the seed architecture,
  target and delta in ms, the latency model's identity, the scorer's description: `identity`), the
  seed's predicted ms and accuracy, every accepted step as `Step.to_json` writes it, and the name and
  sha256 of the scorer's state file (null for a stateless scorer);
* ``scorer-stepN.pt``: the scorer's `state()` after step N (0: after the seed), a plain dict of
  tensors, strings and numbers written by torch.save and read with weights_only=True (never a
  pickle of objects).

Every file is written under a temporary name, fsynced and renamed (then the folder fsynced), and the
state file before the record that names it: the record is the commit point, so a run killed at any
moment leaves the previous step's record and the state file it names (older state files are removed
only after the new record is in place).

Reading checks the record's every field and the state file's sha256: a damaged or truncated file is
a one-line CheckpointError naming it; a checkpoint of another run (another seed architecture, target,
delta, latency model or scorer) is a one-line CheckpointError naming the field, expected vs got.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from pynas.predictor.manifest import sha256_of
from pynas.store.errors import shown

FORMAT = "pynas-netadapt-checkpoint"
FORMAT_VERSION = 1
RECORD = "adapt.json"
STATE = re.compile(r"scorer-step(\d+)\.pt")
TEMPORARY = re.compile(r"\..+\.\d+\.partial")
IDENTITY = ("seed_arch", "target_ms", "delta_ms", "predictor", "scorer")
MAX_RECORD_BYTES = 256 << 20  # a record of hundreds of steps is a few MB; a larger file is not one


class CheckpointError(ValueError):
    pass


def predictor_identity(predictor) -> dict:
    """What identifies the latency model: a bundle's name and its manifest's sha256 (the manifest
    lists every file's sha256, so this covers the model's files); for another predictor (a
    test's stand-in) its class name."""
    folder, manifest = getattr(predictor, "folder", None), getattr(predictor, "manifest", None)
    if folder is not None and manifest is not None:
        from pynas.predictor.manifest import MANIFEST

        return {"name": manifest.name, "manifest_sha256": sha256_of(Path(folder) / MANIFEST)}
    return {"name": type(predictor).__qualname__}


def check_folder(folder, flag: str = "--checkpoint") -> Path:
    """`folder` as a Path: a folder (created by `save` if missing) whose parent exists, holding
    nothing but a checkpoint's files; a ValueError naming `flag` otherwise."""
    if isinstance(folder, bool) or not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise CheckpointError(f"{flag}: expected a folder path, got {shown(folder, 80)}")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{flag} {path}: expected a folder, got a file")
    if not path.exists():
        if not path.parent.is_dir():
            raise CheckpointError(f"{flag} {path}: expected a folder in an existing folder, got no folder "
                                  f"{path.parent}")
        return path
    # Never write into (or remove files from) a folder that holds someone else's files.
    foreign = sorted(p.name for p in path.iterdir()
                     if not (p.name == RECORD or STATE.fullmatch(p.name) or TEMPORARY.fullmatch(p.name)))
    if foreign:
        raise CheckpointError(f"{flag} {path}: expected a new or empty folder or a NetAdapt checkpoint, got a folder "
                              f"holding {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}")
    return path


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, write) -> None:
    """`write(file)` into a temporary file beside `path`, fsync, rename onto `path`, fsync the folder."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _sync_folder(path.parent)


def save(folder: Path, identity: dict, record: dict, state: dict | None, step: int) -> None:
    """Make `record` (the start and steps so far: start_ms, start_accuracy, steps) and the scorer's
    `state` after step `step` durable in `folder`."""
    folder.mkdir(exist_ok=True)
    state_file = None
    if state:  # a stateless scorer (EvaluatorScorer) needs no torch and no state file
        import torch

        path = folder / f"scorer-step{step}.pt"
        _write_durably(path, lambda f: torch.save(state, f))
        state_file = {"file": path.name, "sha256": sha256_of(path)}
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **identity, **record, "scorer_state": state_file}
    text = json.dumps(full, indent=1, allow_nan=False) + "\n"
    _write_durably(folder / RECORD, lambda f: f.write(text.encode()))
    for old in folder.iterdir():  # the new record is in place: earlier states are no longer named
        match = STATE.fullmatch(old.name)
        if match and (state_file is None or old.name != state_file["file"]):
            old.unlink()


def damaged(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: damaged NetAdapt checkpoint: {problem} (remove the folder to start afresh)")


def _same(expected, got) -> bool:
    if isinstance(expected, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(expected, got, rel_tol=1e-12, abs_tol=0.0)  # JSON keeps floats exactly; repr safety
    return expected == got


def _around_difference(expected, got, width: int = 60) -> tuple[str, str]:
    """Both values for a message; two long strings (a scorer's description) cut to where they differ."""
    if not (isinstance(expected, str) and isinstance(got, str)) or max(len(expected), len(got)) <= 2 * width:
        return shown(expected, 200), shown(got, 200)
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    start = max(0, first - width // 2)

    def cut(text: str) -> str:
        return ("..." if start else "") + repr(text[start:start + width])[1:-1] + ("..." if start + width < len(text)
                                                                                  else "")
    return f"'{cut(expected)}'", f"'{cut(got)}'"


def load(folder: Path, identity: dict, flag: str = "--checkpoint") -> tuple[dict, dict | None] | None:
    """(record, scorer state or None) of the checkpoint in `folder`, None if it holds none yet.
    The record must be this run's (`identity`: the fields of `IDENTITY`)."""
    path = folder / RECORD
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise damaged(path, f"expected a record under {MAX_RECORD_BYTES >> 20} MB, got {path.stat().st_size} bytes")
    try:
        record = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise damaged(path, f"not JSON ({' '.join(str(error).split())})") from None
    if not isinstance(record, dict):
        raise damaged(path, f"expected a JSON object, got {type(record).__name__}")
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise damaged(path, f"format: expected {FORMAT} version {FORMAT_VERSION}, got "
                             f"{shown(record.get('format'), 60)} version {shown(record.get('format_version'), 20)}")
    missing = [k for k in (*IDENTITY, "start_ms", "start_accuracy", "steps", "scorer_state") if k not in record]
    if missing:
        raise damaged(path, f"fields: missing {', '.join(missing)}")
    for key in IDENTITY:
        if not _same(identity[key], record[key]):
            expected, got = _around_difference(identity[key], record[key])
            raise CheckpointError(f"{flag} {folder}: {key}: expected {expected} (this run), got {got} (the "
                                  f"checkpoint's): another run's checkpoint")
    for key in ("start_ms", "start_accuracy"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise damaged(path, f"{key}: expected a finite number, got {shown(value, 60)}")
    if not isinstance(record["steps"], list):
        raise damaged(path, f"steps: expected a list, got {type(record['steps']).__name__}")
    return record, _load_state(folder, record["scorer_state"], len(record["steps"]))


def _load_state(folder: Path, entry, steps: int) -> dict | None:
    path = folder / RECORD
    if entry is None:
        return None
    if (not isinstance(entry, dict) or set(entry) != {"file", "sha256"} or not isinstance(entry["file"], str)
            or entry["file"] != f"scorer-step{steps}.pt"):
        raise damaged(path, f"scorer_state: expected {{file: scorer-step{steps}.pt, sha256}}, got "
                             f"{shown(entry, 120)}")
    state_path = folder / entry["file"]
    if not state_path.is_file():
        raise damaged(state_path, "missing (the record names it)")
    got = sha256_of(state_path)
    if got != entry["sha256"]:
        raise damaged(state_path, f"sha256: expected {shown(entry['sha256'], 70)} (the record's), got {got}")
    import torch

    try:
        state = torch.load(state_path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file; each is damage here
        raise damaged(state_path, f"not a torch.save of plain values ({type(error).__name__}: "
                                   f"{' '.join(str(error).split())[:200]})") from None
    if not isinstance(state, dict):
        raise damaged(state_path, f"expected a dict, got {type(state).__name__}")
    return state


__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "IDENTITY", "RECORD", "check_folder", "damaged", "load",
           "predictor_identity", "save"]
