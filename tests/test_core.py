"""Tests of the compiled pynas._core: version, build info, CPU features, ISA levels."""

import json
import re
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import pynas
from pynas import _core

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO_ROOT = Path(__file__).resolve().parents[1]
ISA_LEVELS = ["avx512", "avx2", "neon", "scalar"]
ON_X86_LINUX = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def test_version_matches_pyproject():
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert pynas.__version__ == _core.__version__ == version
    assert pynas.build_info()["version"] == version


def test_build_info():
    info = pynas.build_info()
    expected = {"version", "compiler", "compiler_version", "build_type", "target_processor",
                "cxx_standard", "pybind11_version", "isa_macros"}
    assert expected <= info.keys()
    assert info["cxx_standard"] >= 201703
    assert info["build_type"]
    assert all(isinstance(m, str) for m in info["isa_macros"])


def test_cpu_features_shape():
    feats = pynas.cpu_features()
    assert feats["arch"] in ("x86_64", "x86", "aarch64", "other")
    assert isinstance(feats["model"], str)
    for name in ("sse4_2", "avx2", "fma", "avx512f", "avx512vnni", "neon", "dotprod", "sve"):
        assert isinstance(feats[name], bool)
    if feats["arch"] == "aarch64":
        assert feats["neon"]


def cpuinfo_flags() -> set[str]:
    """The x86 flags of /proc/cpuinfo; empty without one (other CPUs, no /proc). Under qemu-user it
    is the host's file: trust it only on an x86-64 build (ON_X86_LINUX)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpuinfo_flags():
    flags = cpuinfo_flags()
    if not flags:
        pytest.skip("no flags line in /proc/cpuinfo")
    return flags


# pynas feature name -> Linux /proc/cpuinfo flag
CPUINFO_NAMES = {"sse4_2": "sse4_2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c",
                 "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512dq": "avx512dq",
                 "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni"}


@pytest.mark.skipif(not ON_X86_LINUX, reason="needs Linux on x86_64")
@pytest.mark.parametrize("feature", sorted(CPUINFO_NAMES))
def test_cpu_features_match_proc_cpuinfo(feature):
    assert pynas.cpu_features()[feature] == (CPUINFO_NAMES[feature] in _cpuinfo_flags())


# pynas feature name -> the Linux arm64 /proc/cpuinfo "Features" flags it needs
ARM_CPUINFO_NAMES = {"neon": ["asimd"], "dotprod": ["asimddp"], "fp16": ["fphp", "asimdhp"], "sve": ["sve"]}


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "aarch64"),
                    reason="needs Linux on aarch64")
@pytest.mark.parametrize("feature", sorted(ARM_CPUINFO_NAMES))
def test_cpu_features_match_proc_cpuinfo_arm(feature):
    # Under user-mode emulation (qemu-aarch64 on an x86 machine) /proc/cpuinfo is the host's, with
    # no "Features" line: skipped there.
    with open("/proc/cpuinfo") as f:
        lines = [line for line in f if line.startswith("Features")]
    if not lines:
        pytest.skip("no Features line in /proc/cpuinfo (user-mode emulation?)")
    flags = set(lines[0].split(":", 1)[1].split())
    assert pynas.cpu_features()[feature] == all(flag in flags for flag in ARM_CPUINFO_NAMES[feature])


def test_supported_isas_ordered(monkeypatch):
    monkeypatch.delenv("PYNAS_ISA", raising=False)
    isas = pynas.supported_isas()
    assert isas[-1] == "scalar"
    assert isas == [level for level in ISA_LEVELS if level in isas]  # best first, no repeats
    feats = pynas.cpu_features()
    assert ("avx2" in isas) == (feats["avx2"] and feats["fma"])
    assert ("avx512" in isas) == (feats["avx512f"] and feats["avx2"] and feats["fma"])
    assert ("neon" in isas) == feats["neon"]


def _isas_in_subprocess(tmp_path, value):
    """supported_isas() in a fresh interpreter with PYNAS_ISA=value: list, or (error type, message)."""
    code = (
        "import json, pynas\n"
        "try:\n"
        "    print(json.dumps(pynas.supported_isas()))\n"
        "except Exception as e:\n"
        "    print(json.dumps([type(e).__name__, str(e)]))\n"
    )
    env = dict(os.environ, PYNAS_ISA=value)
    # cwd=tmp_path: `python -c` puts the cwd on sys.path; keep the source tree off it.
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_pynas_isa_scalar(tmp_path):
    assert _isas_in_subprocess(tmp_path, "scalar") == ["scalar"]


def test_pynas_isa_caps_list(tmp_path, monkeypatch):
    monkeypatch.delenv("PYNAS_ISA", raising=False)
    full = pynas.supported_isas()
    for i, level in enumerate(full):
        assert _isas_in_subprocess(tmp_path, level) == full[i:]


def test_pynas_isa_invalid(tmp_path):
    kind, msg = _isas_in_subprocess(tmp_path, "foo")
    assert kind == "ValueError"
    assert "expected" in msg and "foo" in msg
    assert all(level in msg for level in ISA_LEVELS)


def test_pynas_isa_invalid_in_process(monkeypatch):
    monkeypatch.setenv("PYNAS_ISA", "foo")
    with pytest.raises(ValueError, match="expected one of avx512, avx2, neon, scalar"):
        pynas.supported_isas()


def test_pynas_isa_unsupported(tmp_path, monkeypatch):
    monkeypatch.delenv("PYNAS_ISA", raising=False)
    missing = [level for level in ISA_LEVELS if level not in pynas.supported_isas()]
    if not missing:
        pytest.skip("this CPU runs every ISA level")
    kind, msg = _isas_in_subprocess(tmp_path, missing[0])
    assert kind == "ValueError"
    assert missing[0] in msg and "scalar" in msg


def test_python_bindings_live_in_cpp_python_only():
    """The extension is cpp/python/*.cc, the native library (pynas_native: kernels, runner, harness,
    table; linked by pynas-profile and the standalone checks too) everything else under cpp/, with
    no pybind11 or Python header in it: it must build where there is no Python (a phone)."""
    cpp = REPO_ROOT / "cpp"
    if not cpp.is_dir():
        pytest.skip("needs the source tree")
    python_include = re.compile(r'^\s*#\s*include\s*[<"](pybind11/|Python\.h)', re.MULTILINE)
    native = [p for p in cpp.rglob("*") if p.suffix in (".cc", ".h") and "python" not in p.relative_to(cpp).parts]
    assert native and not [str(p) for p in native if python_include.search(p.read_text())]
    bindings = sorted(p.name for p in (cpp / "python").iterdir())
    assert "core_module.cc" in bindings and all(name.endswith((".cc", ".h")) for name in bindings)
    assert not [str(p) for p in native if "PYNAS_REGISTER_BINDINGS" in p.read_text()]
