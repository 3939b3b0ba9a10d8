"""Fixtures shared by the test modules."""
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
