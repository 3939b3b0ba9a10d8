"""Fixtures shared by the test modules."""
import os
import platform
from pathlib import Path

import pytest


@pytest.fixture
def make_context():
    """A factory of measurement contexts on a fixed, made-up device (tests must not depend on the
    machine they run on): make_context(threads=4, backend='onnxruntime', ...)."""
    from pynas.store import Context, DeviceFingerprint

    def make(**changes):
        device = changes.pop("device", None) or DeviceFingerprint(
            cpu_model="Test CPU", machine="aarch64", os="Linux", isa_flags=("neon", "dotprod"), logical_cores=8,
            l1d_bytes=65536, l2_bytes=524288, l3_bytes=None, max_mhz=2400.0)
        values = dict(device=device, backend="native", backend_version="0.1.0", threads=1, session="test session",
                      pynas_version="0.1.0", kernel="6.1.0-test", cpu_mhz=1800.0)
        values.update(changes)
        return Context(**values)

    return make


REPO = Path(__file__).resolve().parent.parent


def find_profiler():
    """The pynas-profile binary to test: $PYNAS_PROFILE_BIN, else build/dev/pynas-profile (made by
    scripts/dev-build.sh), else build/profiler-<machine>/pynas-profile (scripts/build-profiler.sh
    host, which scripts/test.sh runs); None if none is built."""
    if os.environ.get("PYNAS_PROFILE_BIN"):
        return Path(os.environ["PYNAS_PROFILE_BIN"])
    for path in (REPO / "build" / "dev" / "pynas-profile", REPO / "build" / f"profiler-{platform.machine()}" / "pynas-profile"):
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session")
def pynas_profile():
    """Path of the pynas-profile binary; skips the test if it is not built."""
    path = find_profiler()
    if path is None:
        pytest.skip("pynas-profile is not built: run `bash scripts/dev-build.sh` or `bash scripts/build-profiler.sh "
                    "host` (or set PYNAS_PROFILE_BIN)")
    if not path.is_file():
        pytest.fail(f"PYNAS_PROFILE_BIN={path}: no such file")
    return path
