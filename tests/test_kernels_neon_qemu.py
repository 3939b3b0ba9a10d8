"""NEON kernels on an x86 host: scripts/neon-check.sh cross-compiles a static aarch64 harness
(tests/native/neon_vs_scalar.cc: every NEON kernel against its scalar twin on many shapes) and runs it
under qemu. Skipped where the cross compiler or qemu is missing, or on an aarch64 host (where the
Python tests run the NEON variants directly).
"""
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_neon_kernels_match_scalar_under_qemu():
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("native aarch64: the NEON variants run in the other kernel tests")
    if not shutil.which("aarch64-linux-gnu-g++") or not (shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")):
        pytest.skip("needs g++-aarch64-linux-gnu and qemu-user(-static)")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "neon-check.sh")], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "neon_vs_scalar:" in out.stdout and " 0 failed" in out.stdout.splitlines()[-1]
