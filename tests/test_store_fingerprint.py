"""Device fingerprints: fields present, read right from sysfs, and an id that is stable."""
import hashlib
import os
import platform
import re
import subprocess
import sys
from dataclasses import replace

import pytest

import pynas
from pynas import _core
from pynas.store import DeviceFingerprint, FieldError, StoreError, this_device
from pynas.store.fingerprint import cache_sizes, current_mhz, max_mhz, sysfs_cache_sizes

EXAMPLE = DeviceFingerprint(cpu_model="Cortex-A76", machine="aarch64", os="Linux",
                            isa_flags=("neon", "dotprod", "fp16"), logical_cores=8, l1d_bytes=65536,
                            l2_bytes=262144, l3_bytes=2097152, max_mhz=2400.0)


def test_this_device_has_every_field():
    device = this_device()
    features = pynas.cpu_features()
    assert device.cpu_model == features["model"]
    assert device.machine == platform.machine() and device.os == platform.system()
    assert set(device.isa_flags) == {name for name, value in features.items() if value is True}
    assert list(device.isa_flags) == sorted(device.isa_flags)
    assert device.logical_cores == os.cpu_count()
    for name in ("l1d_bytes", "l2_bytes", "l3_bytes"):
        assert getattr(device, name) is None or getattr(device, name) > 0
    assert device.max_mhz is None or device.max_mhz > 0
    assert set(device.to_dict()) == {"cpu_model", "machine", "os", "isa_flags", "logical_cores", "l1d_bytes",
                                     "l2_bytes", "l3_bytes", "max_mhz"}


@pytest.mark.skipif(not os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0/size"), reason="no sysfs caches")
def test_this_device_reads_caches_from_sysfs():
    assert this_device().l1d_bytes == sysfs_cache_sizes()["l1d"] is not None


def test_device_id_is_stable_across_calls_and_processes(tmp_path):
    device_id = this_device().device_id
    assert re.fullmatch(r"[0-9a-f]{16}", device_id)
    assert this_device() == this_device() and this_device().device_id == device_id
    # cwd elsewhere: from the repo root, `python -c` would import the source tree.
    script = "from pynas.store import this_device; print(this_device().device_id)"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(),
                           cwd=tmp_path, check=True)
    assert other.stdout.strip() == device_id


def test_device_id_hashes_every_field_in_normal_form():
    assert EXAMPLE.device_id == replace(EXAMPLE, isa_flags=("fp16", "dotprod", "neon")).device_id
    assert EXAMPLE.device_id == replace(EXAMPLE, max_mhz=2400).device_id  # a C++ writer may print 2400
    changes = dict(cpu_model="Cortex-A55", machine="armv7l", os="Android", isa_flags=("neon",), logical_cores=4,
                   l1d_bytes=32768, l2_bytes=None, l3_bytes=None, max_mhz=1800.0)
    ids = {replace(EXAMPLE, **{name: value}).device_id for name, value in changes.items()}
    assert len(ids) == len(changes) and EXAMPLE.device_id not in ids
    # The id's definition, pinned: a change would split every existing store's devices in two.
    canonical = ('{"cpu_model":"Cortex-A76","isa_flags":["dotprod","fp16","neon"],"l1d_bytes":65536,"l2_bytes":262144,'
                 '"l3_bytes":2097152,"logical_cores":8,"machine":"aarch64","max_mhz":2400.0,"os":"Linux"}')
    assert EXAMPLE.device_id == hashlib.sha256(canonical.encode()).hexdigest()[:16] == "4ca0fa270bb7629a"


def test_dict_round_trip_and_errors_name_the_field():
    assert DeviceFingerprint.from_dict(EXAMPLE.to_dict()) == EXAMPLE
    with pytest.raises(FieldError, match="field 'logical_cores': expected an integer >= 1, got 0"):
        DeviceFingerprint.from_dict({**EXAMPLE.to_dict(), "logical_cores": 0})
    with pytest.raises(FieldError, match="field 'os': expected a value, got nothing"):
        DeviceFingerprint.from_dict({k: v for k, v in EXAMPLE.to_dict().items() if k != "os"})
    with pytest.raises(FieldError, match="field 'hostname': expected no such field"):
        DeviceFingerprint.from_dict({**EXAMPLE.to_dict(), "hostname": "x"})
    with pytest.raises(FieldError, match=r"field 'isa_flags\[1\]': expected a non-empty string without whitespace"):
        replace(EXAMPLE, isa_flags=("neon", "dot prod"))
    with pytest.raises(FieldError, match="field 'isa_flags': expected distinct names"):
        replace(EXAMPLE, isa_flags=("neon", "neon"))
    with pytest.raises(FieldError, match="field 'max_mhz': expected a finite number > 0 or null"):
        replace(EXAMPLE, max_mhz=0)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _cache(root, index, level, kind, size=None):
    _write(root / f"index{index}" / "level", str(level))
    _write(root / f"index{index}" / "type", kind)
    if size is not None:
        _write(root / f"index{index}" / "size", size)


def test_sysfs_cache_sizes(tmp_path):
    _cache(tmp_path, 0, 1, "Data", "32K")
    _cache(tmp_path, 1, 1, "Instruction", "64K")
    _cache(tmp_path, 2, 2, "Unified", "1024K")
    _cache(tmp_path, 10, 3, "Unified", "8M")  # index10 after index2: numeric order
    assert sysfs_cache_sizes(tmp_path) == {"l1d": 32768, "l2": 1048576, "l3": 8388608}


def test_cache_levels_sysfs_lacks_come_from_sysconf(tmp_path):
    _cache(tmp_path, 0, 1, "Data", "32K")
    _cache(tmp_path, 1, 2, "Unified")  # listed without a size, as some ARM kernels do
    assert sysfs_cache_sizes(tmp_path) == {"l1d": 32768, "l2": None, "l3": None}
    libc = _core.libc_cache_sizes()
    assert cache_sizes(tmp_path) == {"l1d": 32768, "l2": libc["l2"], "l3": libc["l3"]}


def test_libc_cache_sizes_shape():
    sizes = _core.libc_cache_sizes()
    assert set(sizes) == {"l1d", "l2", "l3"}
    assert all(v is None or (isinstance(v, int) and v > 0) for v in sizes.values())


def test_unreadable_sysfs_content_is_an_error(tmp_path):
    _cache(tmp_path, 0, 1, "Data", "lots")
    with pytest.raises(StoreError, match=r"index0/size: expected a cache size such as '48K', got 'lots'"):
        sysfs_cache_sizes(tmp_path)


def test_clocks(tmp_path):
    assert max_mhz(tmp_path) is None
    for cpu, khz in (("cpu0", "1800000"), ("cpu4", "2400000")):  # big.LITTLE: cpu0 is a little core
        _write(tmp_path / cpu / "cpufreq" / "cpuinfo_max_freq", khz)
    assert max_mhz(tmp_path) == 2400.0

    cpuinfo = tmp_path / "cpuinfo"
    assert current_mhz(tmp_path, cpuinfo) is None
    _write(cpuinfo, "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2596.096\n")
    assert current_mhz(tmp_path, cpuinfo) == 2596.096
    _write(tmp_path / "cpu0" / "cpufreq" / "scaling_cur_freq", "1416000")
    assert current_mhz(tmp_path, cpuinfo) == 1416.0
    _write(tmp_path / "cpu0" / "cpufreq" / "scaling_cur_freq", "<unsupported>")
    with pytest.raises(StoreError, match="scaling_cur_freq: expected a clock in kHz"):
        current_mhz(tmp_path, cpuinfo)
