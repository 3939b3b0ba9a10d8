"""The kernel list: every family's variants, best-first selection, PYNAS_ISA forcing a lower ISA."""
import os
import subprocess
import sys

from pynas import _core

ISA_ORDER = ["avx512", "avx2", "neon", "scalar"]


def test_every_family_ends_with_a_scalar_variant_and_is_ordered_best_first():
    families = {}
    for v in _core.kernel_variants():
        families.setdefault(v["op"], []).append(v)
        assert v["name"].startswith(v["op"] + "_") and v["name"].endswith("__" + v["isa"].replace("avx512", "avx512f"))
    assert "dwconv" in families
    for op, variants in families.items():
        assert variants[-1]["isa"] == "scalar", op
        ranks = [ISA_ORDER.index(v["isa"]) for v in variants]
        assert ranks == sorted(ranks), op


def test_selected_kernel_is_the_best_runnable_variant():
    selected = _core.selected_kernels()
    best_isa = _core.supported_isas()[0]
    for v in _core.kernel_variants():
        runnable = [x for x in _core.kernel_variants() if x["op"] == v["op"] and x["runnable"]]
        assert selected[v["op"]] == runnable[0]["name"]
        assert v["runnable"] == (v["isa"] in _core.supported_isas())
    assert any(v["isa"] == best_isa for v in _core.kernel_variants()) or best_isa != "scalar"


def test_pynas_isa_scalar_selects_scalar_kernels(tmp_path):
    code = "from pynas import _core; print(sorted(set(n.rsplit('__', 1)[1] for n in _core.selected_kernels().values())))"
    env = dict(os.environ, PYNAS_ISA="scalar")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['scalar']"


def test_peak_probe_runs_every_runnable_variant():
    peaks = {v["name"]: _core.peak_gflops(v["name"], 0.02) for v in _core.kernel_variants()
             if v["op"] == "peak" and v["runnable"]}
    assert all(p > 0 for p in peaks.values())
    if _emulated():
        return  # under qemu, speed says nothing about the hardware
    # A vector ISA has at least 4 lanes: its peak is well above scalar's, whatever the noise.
    assert all(p > 2 * peaks["peak_fma__scalar"] for name, p in peaks.items() if not name.endswith("__scalar"))


def _emulated() -> bool:
    """aarch64 under qemu user-mode emulation: /proc/cpuinfo is the host's (no 'Features' line)."""
    import platform

    if platform.machine() != "aarch64":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return not any(line.startswith("Features") for line in f)
    except OSError:
        return True
