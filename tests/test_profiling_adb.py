"""The adb path (pynas.profiling.adb) end to end against tests/fake_adb.py, a device whose files are a
local folder: push, run, pull, import; resume on the device; adb's and the profiler's failures as
typed errors. A second device runs the aarch64 static binary under qemu-aarch64-static."""
import os
import shutil
import sys
from pathlib import Path

import pytest

from pynas.presets import preset
from pynas.profiling.adb import REMOTE_DIR, AdbError, ProfilerError, profile_over_adb
from pynas.profiling.oplist import network_entry, segment_entries
from pynas.store import Store

REPO = Path(__file__).resolve().parent.parent
A1 = preset("mnasnet-a1")
SERIAL = "FAKE0001"
FAST = dict(budget_seconds=0.05, min_runs=5, target_ci=0.05)


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """The fake adb as a command (a wrapper running it with this Python), its device root folder."""
    root = tmp_path / "device"
    root.mkdir()
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_SERIAL", SERIAL)
    adb = tmp_path / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fake_adb.py"}" "$@"\n')
    adb.chmod(0o755)
    return adb, root


def remote(root: Path, name: str) -> Path:
    return root / REMOTE_DIR.lstrip("/") / name


def test_profile_over_fake_adb_end_to_end(pynas_profile, fake_adb, tmp_path):
    adb, root = fake_adb
    entries = segment_entries(A1, ["stem", "s1.0", "s2.0"]) + [network_entry(A1)]
    with Store(tmp_path / "store.sqlite") as store:
        result = profile_over_adb(SERIAL, entries, store, profiler=pynas_profile, adb=str(adb), session="fake phone",
                                  **FAST)
        assert (result.records, result.added, result.duplicates) == (4, 4, 0)
        stored = list(store.measurements())
        assert sorted(m.op.key for m in stored) == sorted(e.key for e in entries)
        assert {m.context.session for m in stored} == {"fake phone"}
        # The device keeps its file: a second call measures only what is new and imports the rest once.
        more = entries + segment_entries(A1, ["head"])
        again = profile_over_adb(SERIAL, more, store, profiler=pynas_profile, adb=str(adb), session="fake phone",
                                 **FAST)
        assert (again.records, again.added, again.duplicates) == (5, 1, 4)
    assert os.access(remote(root, "pynas-profile"), os.X_OK)
    assert remote(root, "oplist.txt").read_text().startswith("pynas-oplist 1\n")


def test_missing_device_is_an_adb_error_with_adbs_message(pynas_profile, fake_adb, tmp_path):
    adb, _ = fake_adb
    with Store(tmp_path / "store.sqlite") as store, pytest.raises(AdbError) as caught:
        profile_over_adb("NOSUCH", segment_entries(A1, ["stem"]), store, profiler=pynas_profile, adb=str(adb))
    assert caught.value.returncode == 1 and caught.value.stderr == "adb: device 'NOSUCH' not found"
    assert "adb -s NOSUCH shell failed with exit status 1: adb: device 'NOSUCH' not found" in str(caught.value)


def test_no_adb_and_no_profiler_are_clear_errors(pynas_profile, tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        with pytest.raises(AdbError, match="cannot run '/nonexistent/adb' \\(not installed, or not on PATH"):
            profile_over_adb(SERIAL, segment_entries(A1, ["stem"]), store, profiler=pynas_profile,
                             adb="/nonexistent/adb")
        with pytest.raises(FileNotFoundError, match="profiler: expected the pynas-profile binary"):
            profile_over_adb(SERIAL, [], store, profiler=tmp_path / "missing")
        with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
            profile_over_adb(SERIAL, [], store, profiler=pynas_profile, threads=0)


def test_profiler_failure_on_the_device_is_a_profiler_error(pynas_profile, fake_adb, tmp_path):
    adb, root = fake_adb
    remote(root, "measurements.jsonl").parent.mkdir(parents=True)
    remote(root, "measurements.jsonl").write_text("not a measurements file\n")
    with Store(tmp_path / "store.sqlite") as store, pytest.raises(ProfilerError) as caught:
        profile_over_adb(SERIAL, segment_entries(A1, ["stem"]), store, profiler=pynas_profile, adb=str(adb), **FAST)
    assert caught.value.returncode == 2
    assert "measurements.jsonl:1: invalid JSON" in caught.value.stderr
    assert "pynas-profile failed on FAKE0001 with exit status 2" in str(caught.value)


def aarch64_profiler():
    """The static aarch64 binary (scripts/build-profiler.sh aarch64) and qemu, or a skip reason."""
    binary = Path(os.environ.get("PYNAS_PROFILE_AARCH64_BIN") or REPO / "build" / "profiler-aarch64" / "pynas-profile")
    if shutil.which("qemu-aarch64-static") is None:
        return None, "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
    if not binary.is_file():
        return None, f"{binary} is not built (bash scripts/build-profiler.sh aarch64)"
    return binary, None


def test_profile_over_fake_adb_on_an_emulated_aarch64_device(fake_adb, tmp_path, monkeypatch):
    binary, reason = aarch64_profiler()
    if binary is None:
        if os.environ.get("PYNAS_REQUIRE_AARCH64_PROFILER"):  # CI, after scripts/test-arm64.sh built it
            pytest.fail(reason)
        pytest.skip(reason)
    adb, _ = fake_adb
    monkeypatch.setenv("FAKE_ADB_RUN_PREFIX", "qemu-aarch64-static")
    entries = segment_entries(A1, ["s6.0", "head"])  # small: emulated NEON runs ~1000x slower
    with Store(tmp_path / "store.sqlite") as store:
        result = profile_over_adb(SERIAL, entries, store, profiler=binary, adb=str(adb), session="emulated arm",
                                  budget_seconds=0.05, min_runs=3)
        assert result.added == 2
        stored = list(store.measurements())
    assert {m.context.device.machine for m in stored} == {"aarch64"}
    assert all(m.context.backend_version.startswith("pynas==") and "__neon" in m.context.backend_version
               for m in stored)
