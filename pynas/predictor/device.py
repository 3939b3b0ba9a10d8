"""Which device a bundle describes, whether that is the machine in hand, and this machine's own.

A bundle made by profiling one machine does not describe another: another CPU model, another ISA
(the native kernels pick AVX-512 on one machine, AVX2 on the next, and run at other speeds), another
runtime version. For bundles of the runtimes pynas profiles on a host (native, LiteRT, ONNX Runtime,
torch on x86_64 / aarch64), `differences(manifest)` lists what differs from the machine in hand, and
every prediction from such a bundle warns once with `DeviceMismatchWarning` (a UserWarning users can
filter: ``warnings.simplefilter("ignore", DeviceMismatchWarning)``), naming the way to a bundle for
this machine. A bundle of another kind of device (a phone's table) describes that device, and says so,
but is no mismatch: nobody expects it to be this machine.

This machine's own bundles (`pynas device init`) are recorded as its defaults in
$XDG_CONFIG_HOME/pynas/devices.json (~/.config/pynas/devices.json), per device id, backend and
thread count: `default_bundle()` is what `pynas predict` uses without --predictor.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

HOST_BACKENDS = ("native", "litert", "onnxruntime", "torch", "torch_cl")
HOST_MACHINES = ("x86_64", "aarch64", "arm64")
# The fingerprint fields that decide how fast the same work runs (the OS and core count do not).
COMPARED = ("cpu_model", "machine", "isa_flags", "l1d_bytes", "l2_bytes", "l3_bytes")
FIX = ("for a bundle of this machine: `pynas device init` (profiles it, about 15 minutes on one core) or "
       "`pynas device init --method fewshot` (about a minute: a few networks timed here calibrate the shipped bundles)")


class DeviceMismatchWarning(UserWarning):
    """A prediction from a bundle made on another machine than the one in hand."""


def describes_a_host(manifest) -> bool:
    """Whether the bundle was profiled on a machine of the kind pynas runs on (so it could be this one)."""
    return manifest.backend in HOST_BACKENDS and manifest.device.get("machine") in HOST_MACHINES


def _here() -> dict:
    from pynas.store import this_device

    device = this_device()
    return dict(device.to_dict(), device_id=device.device_id)


def _backend_version_here(backend: str) -> str:
    from pynas.profiling.backends import backend_version

    try:
        return backend_version(backend)
    except Exception as error:  # noqa: BLE001  a runtime that is not installed: no version here
        return f"(not available here: {type(error).__name__})"


def differences(manifest, here: dict | None = None, backend_version: str | None = None) -> list[str]:
    """What differs between the bundle's device and backend and this machine's, as 'field: bundle
    vs here' (empty: the bundle describes this machine). Only for `describes_a_host` bundles."""
    if not describes_a_host(manifest):
        return []
    here = _here() if here is None else here
    device = manifest.device
    out = []
    for name in COMPARED:
        theirs, ours = device.get(name), here.get(name)
        if isinstance(theirs, list) or isinstance(ours, list):
            theirs, ours = _names(theirs), _names(ours)
            if theirs != ours:
                only_theirs, only_ours = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
                out.append(f"{name}: bundle has {' '.join(only_theirs) or '-'}, here {' '.join(only_ours) or '-'}")
        elif theirs != ours:
            out.append(f"{name}: bundle {theirs!r}, here {ours!r}")
    ours = backend_version if backend_version is not None else _backend_version_here(manifest.backend)
    if manifest.backend_version != ours:
        out.append(f"{manifest.backend} version: bundle {manifest.backend_version}, here {ours}")
    cores = here.get("logical_cores") or 1
    if manifest.threads and manifest.threads > cores:
        out.append(f"threads: bundle {manifest.threads}, here only {cores} logical CPUs")
    return out


def describe(manifest) -> str:
    """The device a bundle describes, in a few words."""
    device = manifest.device
    name = device.get("name") or device.get("description") or device.get("cpu_model") or "unknown device"
    isa = _isa(_names(device.get("isa_flags")))
    return f"{name}{f' ({isa})' if isa else ''}, {manifest.backend}"


def _names(value) -> list[str]:
    """A fingerprint's list of names (a manifest from elsewhere may hold a scalar there)."""
    if isinstance(value, list):
        return sorted(map(str, value))
    return [] if value is None else [str(value)]


def mismatch_message(manifest, diffs: list[str]) -> str:
    return (f"bundle {manifest.name} describes another machine than this one ({'; '.join(diffs)}): its latencies "
            f"are that machine's; {FIX}")


def _isa(flags: list[str]) -> str:
    for isa in ("avx512f", "avx2", "neon", "asimd"):
        if isa in flags:
            return {"avx512f": "avx512", "asimd": "neon"}.get(isa, isa)
    return ""


# -- this machine's bundles -----------------------------------------------------------------------

def bundle_name(backend: str, threads: int, here: dict | None = None) -> str:
    """The name of this machine's bundle: CPU model, ISA, backend, threads, the device id's start
    (two VMs sold under one CPU name are different machines), e.g. 'amd-epyc-avx2-native-2b654e'."""
    here = _here() if here is None else here
    model = re.sub(r"[^a-z0-9]+", "-", (here.get("cpu_model") or "cpu").lower()).strip("-")[:40] or "cpu"
    isa = _isa(here.get("isa_flags") or []) or here.get("machine", "")
    threads_part = f"-{threads}t" if threads != 1 else ""
    return f"{model}-{isa}-{backend}{threads_part}-{here['device_id'][:6]}"


def defaults_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "pynas" / "devices.json"


def _read_defaults(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{path}: unreadable device defaults ({type(error).__name__}: {error}); remove it, "
                         f"`pynas device init` writes it again") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and all(isinstance(n, str) for n in v.values())
                                             for v in data.values()):
        raise ValueError(f"{path}: expected {{device id: {{'<backend>-<threads>': bundle name}}}}, got "
                         f"{str(data)[:80]}; remove it, `pynas device init` writes it again")
    return data


def default_bundle(backend: str = "native", threads: int = 1, device_id: str | None = None) -> str | None:
    """This machine's bundle for `backend` at `threads`, if `pynas device init` made one."""
    device_id = device_id or _here()["device_id"]
    return _read_defaults(defaults_path()).get(device_id, {}).get(f"{backend}-{threads}")


def set_default(name: str, backend: str, threads: int, device_id: str | None = None) -> Path:
    """Record `name` as this machine's bundle for `backend` at `threads` (atomically)."""
    path = defaults_path()
    data = _read_defaults(path)
    data.setdefault(device_id or _here()["device_id"], {})[f"{backend}-{threads}"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def describe_here(fingerprint) -> str:
    """ISA and caches of a DeviceFingerprint, in a few words."""
    isa = _isa(list(fingerprint.isa_flags)) or fingerprint.machine
    l2 = f", L2 {fingerprint.l2_bytes >> 10} KiB" if fingerprint.l2_bytes else ""
    return f"{isa}{l2}, {fingerprint.logical_cores} logical CPUs"
