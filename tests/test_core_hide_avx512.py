"""pynas._core.hide_avx512_from_cpuid (cpp/hide_avx512.cc): CPUID without AVX-512 for this process,
so that runtimes dispatching by CPUID run their AVX2 kernels (bench/kernels.py --hide-avx512). Each
test runs in its own interpreter: the hiding cannot be undone and outlives the test."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from tests.test_core import ON_X86_LINUX, REPO_ROOT, cpuinfo_flags

CAN_FAULT = ON_X86_LINUX and "cpuid_fault" in cpuinfo_flags()
HAS_AVX512 = ON_X86_LINUX and "avx512f" in cpuinfo_flags()
needs_faulting = pytest.mark.skipif(not CAN_FAULT, reason="needs x86-64 Linux with CPUID faulting")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PYNAS_ISA"}
    # cwd: `python -c` puts the cwd on sys.path; keep the source tree (no built _core in a clone) off it.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**environ, **env}, cwd=tempfile.gettempdir(), timeout=300)


@needs_faulting
def test_features_detected_afterwards_lack_avx512_in_this_and_new_threads():
    out = _python("""
        import threading
        from pynas import _core
        _core.hide_avx512_from_cpuid()
        _core.hide_avx512_from_cpuid()  # idempotent
        f = _core.cpu_features()  # pynas's first detection, after the hiding
        seen = []
        t = threading.Thread(target=lambda: seen.append(_core.peak_gflops() > 0))
        t.start(); t.join()
        print(f["avx512f"], f["avx512vnni"], f["avx2"], f["fma"], _core.supported_isas()[0], seen)
        """)
    assert out.returncode == 0, out.stderr
    # avx2 and fma stay: only the AVX-512 bits go; a thread started afterwards runs (CPUID faults there too).
    assert out.stdout.split() == ["False", "False", "True", "True", "avx2", "[True]"]


@needs_faulting
def test_a_real_segfault_still_reaches_the_previous_handler():
    # faulthandler first (as pytest and python -X faulthandler do): a fault that is not a CPUID must
    # still print Python's traceback and kill the process with SIGSEGV, not loop or be swallowed.
    out = _python("""
        import ctypes, faulthandler
        faulthandler.enable()
        from pynas import _core
        _core.hide_avx512_from_cpuid()
        ctypes.string_at(0)
        """)
    assert out.returncode == -11, (out.returncode, out.stderr)
    assert "Fatal Python error: Segmentation fault" in out.stderr


@needs_faulting
def test_without_a_previous_handler_a_segfault_is_the_default_one():
    out = _python("""
        import ctypes
        from pynas import _core
        _core.hide_avx512_from_cpuid()
        ctypes.string_at(0)
        """)
    assert out.returncode == -11, (out.returncode, out.stderr)


@pytest.mark.skipif(CAN_FAULT, reason="this machine can fault CPUID")
def test_where_cpuid_cannot_fault_it_is_a_runtime_error_naming_why():
    from pynas import _core

    with pytest.raises(RuntimeError, match=r"hide_avx512_from_cpuid: (only on x86-64 Linux|this CPU or kernel "
                                           r"cannot fault CPUID)"):
        _core.hide_avx512_from_cpuid()


@needs_faulting
@pytest.mark.skipif(not HAS_AVX512, reason="no AVX-512 to hide")
def test_bench_hides_avx512_before_any_runtime_loads():
    out = _python(f"""
        import argparse, importlib.util, os, sys
        spec = importlib.util.spec_from_file_location("kernels_bench", {str(REPO_ROOT / 'bench' / 'kernels.py')!r})
        bench = sys.modules[spec.name] = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
        bench._hide_avx512(argparse.ArgumentParser())
        print(os.environ["PYNAS_ISA"], bench._core.supported_isas()[0])
        """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "avx2 avx2"
    torch_note = " (PyTorch reports AVX2)" if importlib.util.find_spec("torch") else ""
    assert lines[-2] == "AVX-512 hidden from CPUID: every runtime runs its AVX2 kernels" + torch_note


@pytest.mark.parametrize("script, done", [("kernels", "thread(s) on core(s)"), ("blocks", "| block |")])
def test_bench_flag_with_another_isa_exits_2_before_any_work(script, done):
    if script == "kernels" and importlib.util.find_spec("rich") is None:
        pytest.skip("bench/kernels.py prints with rich (pynas.ui), not installed here")
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / f"{script}.py"), "--hide-avx512"],
                         capture_output=True, text=True, env={**os.environ, "PYNAS_ISA": "scalar"}, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (f"bench/{script}.py: error: --hide-avx512: expected PYNAS_ISA "
                                                   "unset or avx2, got 'scalar'")
    assert done not in out.stdout


@pytest.mark.skipif(HAS_AVX512, reason="needs a CPU without AVX-512")
def test_bench_flag_on_a_cpu_without_avx512_exits_2():
    if importlib.util.find_spec("rich") is None:
        pytest.skip("bench/kernels.py prints with rich (pynas.ui), not installed here")
    env = {k: v for k, v in os.environ.items() if k != "PYNAS_ISA"}
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "kernels.py"), "--hide-avx512"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert "--hide-avx512: expected a CPU with AVX-512" in out.stderr


def test_runtimes_hide_refuses_another_isa_before_hiding(monkeypatch):
    from pynas.runtimes import hide_avx512

    monkeypatch.setenv("PYNAS_ISA", "scalar")
    with pytest.raises(ValueError, match=r"^expected PYNAS_ISA unset or avx2, got 'scalar'$"):
        hide_avx512()


@pytest.mark.skipif(not HAS_AVX512, reason="no AVX-512 to hide")
def test_runtimes_hide_refuses_once_a_runtime_has_loaded(monkeypatch):
    import types

    from pynas.runtimes import hide_avx512

    monkeypatch.delenv("PYNAS_ISA", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(RuntimeError, match=r"^expected no runtime loaded yet \(they keep the CPU they saw\), got .*onnxruntime"):
        hide_avx512()
    assert "PYNAS_ISA" not in os.environ  # nothing was changed


@pytest.mark.skipif(HAS_AVX512, reason="needs a CPU without AVX-512")
def test_runtimes_hide_refuses_a_cpu_without_avx512(monkeypatch):
    from pynas.runtimes import hide_avx512

    monkeypatch.delenv("PYNAS_ISA", raising=False)
    with pytest.raises(ValueError, match="expected a CPU with AVX-512"):
        hide_avx512()
