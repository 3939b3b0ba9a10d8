"""Profile on an Android device (or any device adb reaches) with the static `pynas-profile`.

    from pynas.profiling.adb import profile_over_adb
    from pynas.profiling.oplist import network_entry, segment_entries
    from pynas.store import Store

    with Store() as store:
        result = profile_over_adb("R5CT1234", segment_entries("mnasnet-a1"), store,
                                  profiler="build/profiler-aarch64/pynas-profile", threads=1)

Steps, each an `adb -s SERIAL` command: `shell mkdir -p` the work folder (/data/local/tmp/pynas,
writable and executable for adb's shell user), `push` the binary and the op list, `shell` to run
the binary there (chmod first: push does not keep the mode everywhere), `pull` its measurements
file, then import that into the store. The device keeps the measurements file between calls, so a
run cut short (a USB cable, a reboot) continues where it stopped the next time: pynas-profile
skips the keys it holds for the same backend version and threads. Importing a file twice stores its
measurements once.

Build the binary with `bash scripts/build-profiler.sh aarch64` (fully static: Android has no glibc).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from pynas.profiling.oplist import write_oplist
from pynas.space.catalogue import Item
from pynas.store import ImportResult, Store, import_jsonl

REMOTE_DIR = "/data/local/tmp/pynas"
_EXIT_MARK = "pynas-profile-exit="


class AdbError(RuntimeError):
    """An adb command failed: no adb, no such device, or a non-zero exit. Holds the command, its
    exit status and adb's stderr."""

    def __init__(self, message: str, command: Sequence[str] = (), returncode: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.command, self.returncode, self.stderr = list(command), returncode, stderr


class ProfilerError(AdbError):
    """pynas-profile ran on the device and failed (exit 1: while measuring; 2: bad input)."""


def profile_over_adb(serial: str, oplist_entries: Iterable[Item], store: Store, *, profiler: str | os.PathLike,
                     adb: str = "adb", threads: int = 1, budget_seconds: float = 2.0, target_ci: float = 0.01,
                     min_runs: int = 10, pin: int | None = None, session: str | None = None, limit: int | None = None,
                     remote_dir: str = REMOTE_DIR, remote_output: str = "measurements.jsonl",
                     timeout: float | None = None, band_rows: int = 0, reference: str | None = None,
                     cpu_time: bool = False) -> ImportResult:
    """Measure `oplist_entries` on device `serial` with `profiler` (a pynas-profile binary built for
    it) and import the measurements into `store`; returns the import's result. Options are
    pynas-profile's (--threads, --budget-seconds, ..., --reference KEY: time the entries of KEY's
    type as ratios to that entry, interleaved; --cpu-time); `timeout` bounds each adb command in
    seconds (None: no bound). Raises AdbError (ProfilerError when pynas-profile itself failed)
    with adb's or the profiler's stderr."""
    profiler = Path(profiler)
    if not profiler.is_file():
        raise FileNotFoundError(f"profiler: expected the pynas-profile binary built for the device "
                                f"(bash scripts/build-profiler.sh aarch64), got {str(profiler)!r}, which does not exist")
    if not isinstance(serial, str) or not serial:
        raise ValueError(f"serial: expected a device serial (see `adb devices`), got {serial!r}")
    for name, value in (("remote_dir", remote_dir), ("remote_output", remote_output)):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"{name}: expected a path without whitespace, got {value!r}")
    args = _profiler_args(threads=threads, budget_seconds=budget_seconds, target_ci=target_ci, min_runs=min_runs,
                          pin=pin, session=session, limit=limit, reference=reference, cpu_time=cpu_time)
    device = _Device(adb, serial, timeout)
    with tempfile.TemporaryDirectory(prefix="pynas-adb-") as tmp:
        oplist = Path(tmp) / "oplist.txt"
        write_oplist(oplist, oplist_entries, band_rows=band_rows)
        device.run(["shell", f"mkdir -p {shlex.quote(remote_dir)}"])
        device.run(["push", str(profiler), f"{remote_dir}/pynas-profile"])
        device.run(["push", str(oplist), f"{remote_dir}/oplist.txt"])
        command = " ".join([f"cd {shlex.quote(remote_dir)} && chmod 755 pynas-profile && ./pynas-profile oplist.txt",
                            "-o", shlex.quote(remote_output)] + [shlex.quote(a) for a in args])
        # Old adb (before Android 7) does not pass the remote exit status on: echo it, and read it back.
        done = device.run(["shell", f"{command}; echo {_EXIT_MARK}$?"])
        status = _remote_status(done.stdout)
        if status is None:
            raise AdbError(f"adb -s {serial} shell: the device did not report pynas-profile's exit status "
                           f"(output: {done.stdout[-500:]!r})", done.args, done.returncode, done.stderr)
        if status != 0:
            # adb shell merges the remote stderr into stdout (no separate stream without a pty on old adb).
            output = (done.stderr + done.stdout).replace(f"{_EXIT_MARK}{status}", "").strip()
            raise ProfilerError(f"pynas-profile failed on {serial} with exit status {status}: {output}",
                                done.args, status, output)
        local = Path(tmp) / remote_output
        device.run(["pull", f"{remote_dir}/{remote_output}", str(local)])
        return import_jsonl(store, local)


def answers(serial: str, *, adb: str = "adb", timeout: float = 10.0) -> None:
    """Whether device `serial` runs a shell command within `timeout` seconds: AdbError (no adb, no
    such device, no answer in time) before anything is pushed."""
    if not isinstance(serial, str) or not serial:
        raise ValueError(f"serial: expected a device serial (see `adb devices`), got {serial!r}")
    _Device(adb, serial, timeout).run(["shell", "true"])


def _profiler_args(*, threads, budget_seconds, target_ci, min_runs, pin, session, limit, reference=None,
                   cpu_time=False) -> list[str]:
    """pynas-profile's options; the values are checked here so a mistake fails before any adb call."""
    def integer(name, value, minimum):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        return str(value)

    def positive(name, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name}: expected a number > 0, got {value!r}")
        return repr(float(value))

    args = ["--threads", integer("threads", threads, 1), "--budget-seconds", positive("budget_seconds", budget_seconds),
            "--target-ci", positive("target_ci", target_ci), "--min-runs", integer("min_runs", min_runs, 3)]
    if pin is not None:
        args += ["--pin", integer("pin", pin, 0)]
    if session is not None:
        if not isinstance(session, str) or not session:
            raise ValueError(f"session: expected a non-empty string, got {session!r}")
        args += ["--session", session]
    if limit is not None:
        args += ["--limit", integer("limit", limit, 0)]
    if reference is not None:
        if not isinstance(reference, str) or not reference or any(c.isspace() for c in reference):
            raise ValueError(f"reference: expected an op list entry's key, got {reference!r}")
        args += ["--reference", reference]
    if cpu_time:
        args.append("--cpu-time")
    return args


def _remote_status(stdout: str) -> int | None:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith(_EXIT_MARK) and line[len(_EXIT_MARK):].isdigit():
            return int(line[len(_EXIT_MARK):])
    return None


class _Device:
    def __init__(self, adb: str, serial: str, timeout: float | None):
        self.adb, self.serial, self.timeout = adb, serial, timeout

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        command = [self.adb, "-s", self.serial] + args
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise AdbError(f"adb: cannot run {self.adb!r} (not installed, or not on PATH: pass adb=PATH)",
                           command) from None
        except subprocess.TimeoutExpired as error:
            # What the command wrote before the timeout comes as bytes (or None) even in text mode.
            stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr or ""
            raise AdbError(f"adb -s {self.serial} {args[0]}: no answer within {self.timeout} s", command, None,
                           stderr) from None
        if done.returncode != 0:
            stderr = done.stderr.strip() or done.stdout.strip()
            raise AdbError(f"adb -s {self.serial} {args[0]} failed with exit status {done.returncode}: {stderr}",
                           command, done.returncode, stderr)
        return done
