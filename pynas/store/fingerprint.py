"""The device a measurement was taken on: facts about its CPU and OS, and a stable id.

A DeviceFingerprint holds the identifying facts; the device id hashes all of them:

    cpu_model      the CPU's model: x86 CPUID brand string; on aarch64 /proc/cpuinfo's 'Hardware'
                   or the MIDR_EL1 implementer and part (pynas._core.cpu_features()['model']);
                   '' where the CPU does not say
    machine        platform.machine(): 'x86_64', 'aarch64', 'arm64', ...
    os             platform.system(): 'Linux', 'Darwin', ...
    isa_flags      the features pynas._core.cpu_features() reports true (the CPU has them and the
                   OS saves their registers), sorted
    logical_cores  os.cpu_count()
    l1d_bytes      L1 data, L2 and L3 cache sizes of cpu0 from /sys/devices/system/cpu/cpu0/cache;
    l2_bytes       a level sysfs does not list comes from the C library's sysconf
    l3_bytes       (pynas._core.libc_cache_sizes()); null where neither knows. sysfs goes first:
                   glibc reports e.g. the L3 of all of an EPYC's core complexes, not cpu0's
    max_mhz        the highest cpuinfo_max_freq of all CPUs (on big.LITTLE the big cores' clock;
                   cpu0 is a little core there); null without cpufreq (most VMs)

device_id = the first 16 hex digits of SHA-256 of the fingerprint's canonical JSON (sorted keys, no
spaces, flags as a sorted list, max_mhz as a float). Only Python computes it: portable files carry
the fields and the importer derives the id, so a C++ writer needs no hash. A flag added to
cpu_features() by a later pynas changes the id of CPUs that have it; that is intended, kernels may
run differently there.

Facts that change between runs on one device are not identifying and are stored with each
measurement instead (pynas.store.records.Context): the OS kernel release (kernel_release()) and the
current clock of cpu0 (current_mhz()).
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from pynas.store import fields
from pynas.store.errors import StoreError

CPU_DIR = Path("/sys/devices/system/cpu")
CPUINFO = Path("/proc/cpuinfo")
_SIZE = re.compile(r"(\d+)([KMG]?)")
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class DeviceFingerprint:
    cpu_model: str
    machine: str
    os: str
    isa_flags: tuple[str, ...]
    logical_cores: int
    l1d_bytes: int | None
    l2_bytes: int | None
    l3_bytes: int | None
    max_mhz: float | None

    def __post_init__(self):
        # Normal forms (sorted flags, float clock) so that equal facts always hash to one id.
        set_ = object.__setattr__
        set_(self, "cpu_model", fields.text("cpu_model", self.cpu_model, empty=True))
        set_(self, "machine", fields.text("machine", self.machine))
        set_(self, "os", fields.text("os", self.os))
        set_(self, "isa_flags", fields.name_list("isa_flags", self.isa_flags))
        set_(self, "logical_cores", fields.integer("logical_cores", self.logical_cores, 1))
        for name in ("l1d_bytes", "l2_bytes", "l3_bytes"):
            set_(self, name, fields.optional_integer(name, getattr(self, name), 1))
        set_(self, "max_mhz", fields.optional_number("max_mhz", self.max_mhz, positive=True))

    @property
    def device_id(self) -> str:
        return hashlib.sha256(fields.canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (the 'device' object of a portable record)."""
        data = asdict(self)
        data["isa_flags"] = list(self.isa_flags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeviceFingerprint":
        """From to_dict()'s form; exactly its fields, else FieldError naming the field."""
        fields.exact_keys("", data, FINGERPRINT_FIELDS)
        return cls(**data)


FINGERPRINT_FIELDS = tuple(DeviceFingerprint.__dataclass_fields__)


def this_device() -> DeviceFingerprint:
    """The fingerprint of the machine this runs on."""
    from pynas import _core

    features = _core.cpu_features()
    cores = os.cpu_count()
    if cores is None:
        raise StoreError("device fingerprint: os.cpu_count() cannot tell how many CPUs this machine has")
    caches = cache_sizes()
    return DeviceFingerprint(
        cpu_model=features["model"], machine=platform.machine(), os=platform.system(),
        isa_flags=tuple(name for name, value in features.items() if value is True),
        logical_cores=cores, l1d_bytes=caches["l1d"], l2_bytes=caches["l2"], l3_bytes=caches["l3"],
        max_mhz=max_mhz())


def cache_sizes(cache_dir: Path = CPU_DIR / "cpu0" / "cache") -> dict[str, int | None]:
    """{'l1d', 'l2', 'l3'}: bytes, from sysfs where it lists the level, else from sysconf, else None."""
    from pynas import _core

    sizes = sysfs_cache_sizes(cache_dir)
    libc = _core.libc_cache_sizes()
    return {level: sizes[level] if sizes[level] is not None else libc[level] for level in ("l1d", "l2", "l3")}


def sysfs_cache_sizes(cache_dir: Path = CPU_DIR / "cpu0" / "cache") -> dict[str, int | None]:
    """{'l1d', 'l2', 'l3'}: bytes from /sys/.../cpu0/cache/index*/{level,type,size}; None for a level
    not listed or whose files cannot be read (some ARM kernels list no size)."""
    sizes: dict[str, int | None] = {"l1d": None, "l2": None, "l3": None}
    indexes = sorted(cache_dir.glob("index[0-9]*"), key=lambda p: int(p.name[5:]))
    for index in indexes:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        name = {"1": "l1d", "2": "l2", "3": "l3"}.get(level)
        if name is not None and sizes[name] is None:
            sizes[name] = _parse_size(index / "size", size)
    return sizes


def _parse_size(path: Path, text: str) -> int:
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise StoreError(f"{path}: expected a cache size such as '48K', got {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def max_mhz(cpu_dir: Path = CPU_DIR) -> float | None:
    """The highest cpufreq/cpuinfo_max_freq (kHz) of all CPUs in MHz; None where none is readable."""
    clocks = [_read_khz(path) for path in cpu_dir.glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq")]
    clocks = [khz for khz in clocks if khz is not None]
    return max(clocks) / 1000 if clocks else None


def current_mhz(cpu_dir: Path = CPU_DIR, cpuinfo: Path = CPUINFO) -> float | None:
    """cpu0's clock now: cpufreq's scaling_cur_freq, else the first 'cpu MHz' line of /proc/cpuinfo
    (x86 kernels print it, also in VMs without cpufreq); None where neither is readable."""
    khz = _read_khz(cpu_dir / "cpu0" / "cpufreq" / "scaling_cur_freq")
    if khz is not None:
        return khz / 1000
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                mhz = float(value)
            except ValueError:
                raise StoreError(f"{cpuinfo}: expected a number after 'cpu MHz:', got {value.strip()!r}") from None
            return mhz if mhz > 0 else None
    return None


def _read_khz(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        raise StoreError(f"{path}: expected a clock in kHz (digits), got {text!r}")
    return int(text) or None


def kernel_release() -> str:
    """The OS kernel release, e.g. '6.1.0-18-amd64'."""
    return platform.release()
