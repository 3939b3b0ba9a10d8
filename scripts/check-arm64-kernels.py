"""Run by scripts/test-arm64.sh with the emulated aarch64 Python: show what the installed pynas
sees and selects, and fail unless every op selects its best compiled NEON-level variant.

    python3 check-arm64-kernels.py SITE     # SITE: the folder the wheel was installed into
"""
import json
import platform
import sys

import numpy

import pynas
from pynas import _core

site = sys.argv[1]
print("python", platform.python_version(), platform.machine(), "numpy", numpy.__version__)
print("pynas", pynas.__version__, "from", pynas.__file__)
print("build_info:", json.dumps(pynas.build_info()))
print("cpu_features:", json.dumps(pynas.cpu_features()))
print("supported_isas:", pynas.supported_isas())
variants = _core.kernel_variants()
selected = _core.selected_kernels()
print("kernel_variants:", [v["name"] for v in variants])
print("selected_kernels:", json.dumps(selected))

errors = []
if not pynas.__file__.startswith(site):
    errors.append(f"imported pynas from {pynas.__file__}, not the wheel installed in {site}")
if pynas.build_info()["target_processor"] != "aarch64":
    errors.append(f"build_info target_processor: {pynas.build_info()['target_processor']}, not aarch64")
feats = pynas.cpu_features()
if feats["arch"] != "aarch64" or not feats["neon"]:
    errors.append("cpu_features: expected arch aarch64 with neon")
if pynas.supported_isas() != ["neon", "scalar"]:
    errors.append(f"supported_isas: expected ['neon', 'scalar'], got {pynas.supported_isas()}")
foreign = [v["name"] for v in variants if v["isa"] not in ("neon", "scalar")]
if foreign:
    errors.append(f"x86 kernel variants compiled into an aarch64 build: {foreign}")
# Every op selects its best compiled variant that NEON-level hardware runs (each family's list is
# best first): its __neon variant wherever one is compiled, else __scalar.
for op in dict.fromkeys(v["op"] for v in variants):
    best = next(v["name"] for v in variants if v["op"] == op and v["isa"] in ("neon", "scalar"))
    if selected.get(op) != best:
        errors.append(f"op {op}: selected {selected.get(op)}, expected its best NEON-level variant {best}")
n_neon = sum(v["isa"] == "neon" for v in variants)
n_neon_selected = sum(name.endswith("__neon") for name in selected.values())
print(f"ops: {len(selected)}, NEON variants compiled: {n_neon}, ops selecting a NEON variant: {n_neon_selected}")
if errors:
    print("\n".join("ERROR: " + e for e in errors))
    sys.exit(1)
