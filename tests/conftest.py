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


# Profiling harness options that time an item in ~0.02 s: for small stores made in tests.
FAST_HARNESS = {"budget_seconds": 0.02, "target_rel_ci": 0.2, "min_runs": 5, "warmup_runs": 1, "warmup_seconds": 0}


@pytest.fixture(scope="session")
def small_store(tmp_path_factory):
    """A store of real native measurements (MnasNet at 32x32, so it is made in seconds): a sample of
    240 segments, every head (a bundle prices only kinds it has measured) and 16 networks. Shared
    by the test modules: copy it before changing it."""
    from pynas.profiling.backends import Backend
    from pynas.profiling.session import plan, run
    from pynas.space import get_space
    from pynas.store import Store

    path = tmp_path_factory.mktemp("store") / "m.sqlite"
    space = get_space("mnasnet", resolution=32)
    full = plan(space, networks=16, seed=0)
    items = full.items[:240] + [i for i in full.items[240:] if i.kind in ("network", "head")]
    with Store(path) as store:
        run(type(full)(full.space, full.resolution, full.counts, items), Backend("native"), store,
            harness=FAST_HARNESS, drift_tolerance=1.0)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(small_store, tmp_path_factory):
    """An XGBoost bundle (few rounds) trained on `small_store`, with the compiled table of MnasNet
    at 32x32. Shared: copy it (shutil.copytree) before changing it."""
    from pynas.predictor import bundle
    from pynas.predictor.train import load_dataset, train
    from pynas.space import get_space
    from pynas.store import Store

    with Store(small_store, create=False) as store:
        data = load_dataset(store, backend="native")
    space = get_space("mnasnet", resolution=32)
    return bundle.save(tmp_path_factory.mktemp("bundles") / "tiny", train(data, params={"rounds": 30}, space=space),
                       data, space=space, source=str(small_store))
