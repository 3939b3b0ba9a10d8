// pynas._core: build information, CPU features and kernel ISA levels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "cpu_features.h"
#include "hide_avx512.h"

namespace py = pybind11;

namespace {

// ISA macros the compiler defined for this (baseline) translation unit.
py::list isa_macros() {
  py::list m;
#ifdef __SSE4_2__
  m.append("__SSE4_2__");
#endif
#ifdef __AVX__
  m.append("__AVX__");
#endif
#ifdef __AVX2__
  m.append("__AVX2__");
#endif
#ifdef __FMA__
  m.append("__FMA__");
#endif
#ifdef __F16C__
  m.append("__F16C__");
#endif
#ifdef __AVX512F__
  m.append("__AVX512F__");
#endif
#ifdef __ARM_NEON
  m.append("__ARM_NEON");
#endif
#ifdef __ARM_FEATURE_DOTPROD
  m.append("__ARM_FEATURE_DOTPROD");
#endif
#ifdef __ARM_FEATURE_FP16_VECTOR_ARITHMETIC
  m.append("__ARM_FEATURE_FP16_VECTOR_ARITHMETIC");
#endif
#ifdef __ARM_FEATURE_SVE
  m.append("__ARM_FEATURE_SVE");
#endif
  return m;
}

py::dict build_info() {
  py::dict d;
  d["version"] = PYNAS_VERSION;
  d["compiler"] = PYNAS_COMPILER_ID;
  d["compiler_version"] = PYNAS_COMPILER_VERSION;
  d["build_type"] = PYNAS_BUILD_TYPE;
  d["target_processor"] = PYNAS_TARGET_PROCESSOR;
  d["cxx_standard"] = static_cast<long>(__cplusplus);
  d["pybind11_version"] = PYNAS_PYBIND11_VERSION;
  d["isa_macros"] = isa_macros();
  return d;
}

py::dict cpu_features() {
  const pynas::CpuFeatures& f = pynas::cpu_features();
  py::dict d;
  d["arch"] = f.arch;
  d["model"] = f.model;
  for (const auto& [name, value] : f.flags()) d[name] = value;
  return d;
}

// None where the C library does not know a size, so callers cannot mistake "unknown" for 0 bytes.
py::dict libc_cache_sizes() {
  const pynas::CacheSizes c = pynas::libc_cache_sizes();
  py::dict d;
  for (const auto& [name, bytes] : {std::pair<const char*, long>{"l1d", c.l1d}, {"l2", c.l2}, {"l3", c.l3}})
    d[name] = bytes > 0 ? py::object(py::int_(bytes)) : py::object(py::none());
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pynas native core (private; use the pynas package)";
  m.attr("__version__") = PYNAS_VERSION;
  m.def("build_info", &build_info,
        "Version, compiler, build type, target processor and compile-time ISA macros.");
  m.def("cpu_features", &cpu_features,
        "Run-time CPU features usable on this machine (CPU and OS support), plus "
        "'arch' and 'model'.");
  m.def("supported_isas", &pynas::supported_isas,
        "Kernel ISA levels this CPU can run, best first, ending with 'scalar'. "
        "PYNAS_ISA=scalar|avx2|avx512|neon caps the list; raises ValueError for an "
        "unknown or unsupported value.");
  m.def("libc_cache_sizes", &libc_cache_sizes,
        "{'l1d', 'l2', 'l3'}: cache sizes in bytes from the C library's sysconf, None where it "
        "does not know (pynas.store.fingerprint prefers /sys/devices/system/cpu/cpu0/cache).");
  m.def("hide_avx512_from_cpuid", &pynas::hide_avx512_from_cpuid,
        "Hides AVX-512 from CPUID in this thread and the threads it starts from now on (Linux CPUID "
        "faulting), so libraries that detect their CPU afterwards (ONNX Runtime, LiteRT, PyTorch, "
        "pynas) run their AVX2 code: call it before they load. Raises RuntimeError where this CPU, "
        "kernel or build cannot fault CPUID. pynas caches its own features: set PYNAS_ISA too.");
  // Kernel families register their own bindings (bindings.h).
  for (pynas::Binder bind : pynas::binders()) bind(m);
}
