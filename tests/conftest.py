"""Fixtures shared by the test modules."""
import os
import platform
import re
import shutil
import subprocess
import sys
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


# ---------------------------------------------------------------------------------------------
# The standalone kernel checks (tests/native/*.cc), built and run by scripts/native-checks.sh

NATIVE_CHECKS_SCRIPT = REPO / "scripts" / "native-checks.sh"
_VARIANT_ENTRY = re.compile(r"(?:PYNAS_IF_(X86|ARM)\()?X\((\w+),\s*(\w+)")


def native_checks_build_dir(target: str) -> Path | None:
    """The build dir for scripts/native-checks.sh --build-dir: $PYNAS_CHECKS_BUILD_DIR (host) or
    $PYNAS_CHECKS_BUILD_DIR_AARCH64 if set; else one whose kernels are compiled already, build/dev
    for the host (scripts/dev-build.sh) or the aarch64 wheel's build/cross-aarch64
    (scripts/test-arm64.sh); else None: the script's own build/checks-<arch>, where a first build
    compiles every kernel (minutes)."""
    variable = "PYNAS_CHECKS_BUILD_DIR" if target == "host" else "PYNAS_CHECKS_BUILD_DIR_AARCH64"
    if os.environ.get(variable):
        return Path(os.environ[variable])
    reused = REPO / "build" / ("dev" if target == "host" else "cross-aarch64")
    return reused if (reused / "CMakeCache.txt").is_file() else None


def _aarch64_variants(family: str) -> list[tuple[str, str]]:
    """(name, isa) of the variants `family`'s X-macro list (cpp/kernels/<family>.h) compiles for
    aarch64: the checks' own list there, read from the header since this _core is not aarch64's."""
    header = (REPO / "cpp" / "kernels" / f"{family}.h").read_text()
    body = header[header.index(f"#define PYNAS_{family.upper()}_VARIANTS(X)"):]
    body = body[:body.index("\n\n")]
    return [(name, isa) for arch, name, isa in _VARIANT_ENTRY.findall(body) if arch in ("", "ARM")]


class NativeCheckRun:
    """One run of a check program: its exit status and output, with each variant's outcome."""

    def __init__(self, target: str, check: str, done: subprocess.CompletedProcess):
        self.target, self.check, self.returncode = target, check, done.returncode
        self.output = done.stdout + done.stderr
        # ctest -V prefixes each line of the program's output with the test number: "1: ...".
        self.lines = [re.sub(r"^\d+: ", "", line) for line in done.stdout.splitlines()]

    def outcome(self, variant: str) -> str | None:
        """'passed', 'skipped' or 'failed' from the variant's summary line; None if it has none."""
        for line in self.lines:
            words = line.split()
            if words and words[0] == variant:
                if words[1] == "skipped:":
                    return "skipped"
                return "passed" if re.search(r"\b0 fail(ures|ed)\b", line) else "failed"
        return None

    def assert_variants(self, families: list[str], with_scalar: bool = True) -> None:
        """Exit status 0; every variant of `families` this target compiles is reported passed, or
        skipped exactly when the CPU (with PYNAS_ISA) cannot run it (under qemu: NEON always runs)."""
        assert self.returncode == 0, self.output[-6000:]
        if self.target == "host":
            from pynas import _core

            expected = [(v["name"], v["runnable"]) for v in _core.kernel_variants() if v["op"] in families
                        and (with_scalar or v["isa"] != "scalar")]
        else:
            expected = [(name, True) for family in families for name, isa in _aarch64_variants(family)
                        if with_scalar or isa != "scalar"]
        assert expected, families
        for name, runnable in expected:
            assert self.outcome(name) == ("passed" if runnable else "skipped"), (name, self.output[-6000:])


@pytest.fixture(scope="session")
def native_check():
    """run(target, check): builds and runs tests/native/<check>.cc for target 'host' or 'aarch64'
    (under qemu) with scripts/native-checks.sh; a NativeCheckRun. Skips where it cannot run: outside
    a source tree, an aarch64 target without the cross compiler or qemu (or on an aarch64 machine,
    where 'host' is aarch64), or where $PYNAS_SKIP_NATIVE_CHECKS says why (scripts/test-arm64.sh:
    its emulated Python has no compiler; it runs the checks in a step of its own)."""

    def run(target: str, check: str) -> NativeCheckRun:
        if os.environ.get("PYNAS_SKIP_NATIVE_CHECKS"):
            pytest.skip(f"PYNAS_SKIP_NATIVE_CHECKS: {os.environ['PYNAS_SKIP_NATIVE_CHECKS']}")
        if not NATIVE_CHECKS_SCRIPT.is_file():
            pytest.skip("the checks build from a source tree (no scripts/native-checks.sh)")
        if not shutil.which("cmake"):
            pytest.skip("needs cmake")
        env = dict(os.environ)
        if target == "aarch64":
            if platform.machine() in ("aarch64", "arm64"):
                pytest.skip("native aarch64: the host target runs the NEON variants")
            if not shutil.which("aarch64-linux-gnu-g++") or not (shutil.which("qemu-aarch64-static")
                                                                 or shutil.which("qemu-aarch64")):
                pytest.skip("needs g++-aarch64-linux-gnu and qemu-user-static")
            env.pop("PYNAS_ISA", None)  # an x86 level here would be one the emulated CPU cannot run
        build_dir = native_checks_build_dir(target)
        command = ["bash", str(NATIVE_CHECKS_SCRIPT), *(["--build-dir", str(build_dir)] if build_dir else []),
                   target, check]
        # A first build compiles every kernel (several minutes on a busy 2-core machine, more for
        # aarch64); later ones only what changed.
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env, cwd=REPO)
        return NativeCheckRun(target, check, done)

    return run


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
        # Networks with 20 ratio pairs at least: 5 (FAST_HARNESS's min_runs) left a 0.3-1.5 ms
        # network's ratio to the reference network varying by tens of percent on a loaded machine.
        run(type(full)(full.space, full.resolution, full.counts, items), Backend("native"), store,
            harness=FAST_HARNESS, network_harness={"min_runs": 20, "budget_seconds": 0.2}, drift_tolerance=1.0)
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models: one torch thread is faster than two on a shared machine, and the same everywhere
    (modules that want it: `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fake_verification(arch: str, predicted: float, measured: float, verdict: str = "ok"):
    """A `pynas.verify.measure.Verification` of `arch` as if measured `measured` ms (p10..p90 +-3%)."""
    from pynas.verify import measure

    return measure.Verification(
        arch=arch, bundle="tiny", predicted_ms=predicted, measured_ms=measured, p10_ms=0.97 * measured,
        p90_ms=1.03 * measured, ratio=measured / predicted, verdict=verdict, steady=verdict != measure.UNSTEADY,
        reason="fake", tolerance=0.1, uncertainty=0.03, backend="native", threads=1, clock="cpu",
        device="this machine (fake)", reference="network:fake", reference_source="fake", scale="profiled",
        reference_fast_ms=1.0, reference_bundle_fast_ms=1.0, raw_ms=measured, now_ms=measured, clean_passes=5)


@pytest.fixture
def fake_measurement():
    """`(arch, predicted_ms, measured_ms, verdict="ok") -> Verification`: what the search's
    verification gets from `measure.verify`, without measuring (tests of the choices made on it)."""
    return _fake_verification


def finished_tiny_search(folder: Path, bundle: Path, *args: str) -> Path:
    """`pynas search` of MnasNet at 32x32 over the tiny bundle into folder/run, with no verification,
    scored by a python evaluator (an architecture's string length mod 97); `args`: the search's
    target, budget, strategy, seed flags. Returns the run's folder."""
    import sys

    from pynas.cli import main

    (folder / "my_eval.py").write_text("def accuracy(archs):\n    return [len(a) % 97 for a in archs]\n")
    cwd = os.getcwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        code = main(["search", "--space", "mnasnet", "--resolution", "32", "--predictor", str(bundle),
                     "--evaluator", "python:my_eval:accuracy", "--no-verify", "--out", "run", *args])
    finally:
        os.chdir(cwd)
        sys.path.remove(str(folder))
    assert code == 0
    return folder / "run"


@pytest.fixture(scope="session")
def tiny_search():
    """`finished_tiny_search` (for module-scoped fixtures of finished runs)."""
    return finished_tiny_search

@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory):
    """(an .onnx of `pynas export`, its architecture: MnasNet at 32 px, one `tiny_bundle` prices)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from pynas.ship.export import export
    from pynas.space import get_space

    arch = str(get_space("mnasnet", resolution=32).sample(1, seed=3)[0])
    path = tmp_path_factory.mktemp("export") / "a.onnx"
    assert export(arch, "onnx", path).check.passed
    return path, arch


@pytest.fixture(scope="session")
def onnx_bundle(tiny_bundle, tmp_path_factory):
    """`tiny_bundle` relabelled as this machine's onnxruntime bundle ("tiny-onnx"): its predictions
    are a native model's, which is all a test of comparing a file's time with a prediction needs."""
    import json
    import shutil

    from pynas.profiling.backends import backend_version

    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("bundles") / "tiny-onnx"
    shutil.copytree(tiny_bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(name="tiny-onnx", backend="onnxruntime", backend_version=backend_version("onnxruntime"))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class _FakeVerify:
    """Stands in for pynas.verify.measure.verify: measured = predicted x bias (one per call, in
    order), passes spread +-1%, verdicts in order (default "ok"); `calls` records (archs, predicted_ms)."""

    def __init__(self, biases, verdicts=None):
        self.biases, self.verdicts, self.calls = list(biases), list(verdicts or []), []

    def __call__(self, archs, predictor, *, passes, tolerance, predicted_ms):
        from types import SimpleNamespace

        self.calls.append((archs, predicted_ms))
        measured = predicted_ms[0] * self.biases.pop(0)
        verdict = self.verdicts.pop(0) if self.verdicts else "ok"
        return [SimpleNamespace(measured_ms=measured, p10_ms=0.99 * measured, p90_ms=1.01 * measured, verdict=verdict)]


@pytest.fixture
def fake_verify():
    """The class of a fake `measure.verify` (`_FakeVerify`): `fake_verify([1.06, 1.0])`."""
    return _FakeVerify


@pytest.fixture(scope="session")
def bench_script():
    """bench_script("ship"): bench/ship.py loaded as a module (bench scripts are files, not a package)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"{name}_bench", root / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # Registered while it runs: a dataclass in it looks its module up in sys.modules.
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules[spec.name]
        return module

    return load
