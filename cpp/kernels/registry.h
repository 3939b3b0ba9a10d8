// The kernel list: every compiled kernel variant, and run-time selection of the best one.
//
// Each op family has one X-macro list of its variants, best ISA first, in its own header
// (dwconv.h, ...). That list alone drives the declarations, the registry (registry.cc), the Python
// bindings, the tests and the benchmarks: adding a variant is one line in the list plus its
// source file; adding a family is its header plus one line in registry.cc. Variant names encode
// op, tile and ISA (XNNPACK style: dwconv_c16__avx512f); a source file named *__<isa>.cc is
// compiled with that ISA's flags (CMakeLists.txt) and nothing else is.
#pragma once

#include <string>
#include <vector>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#define PYNAS_IF_X86(x) x
#define PYNAS_IF_ARM(x)
#elif defined(__aarch64__)
#define PYNAS_IF_X86(x)
#define PYNAS_IF_ARM(x) x
#else
#define PYNAS_IF_X86(x)
#define PYNAS_IF_ARM(x)
#endif

namespace pynas {

struct KernelVariant {
  const char* op;    // op family: "dwconv", ...
  const char* name;  // e.g. "dwconv_c16__avx512f"
  const char* isa;   // "avx512" | "avx2" | "neon" | "scalar"
  void* fn;          // the family's function pointer type, e.g. DwConvFn
};

// Every variant compiled into this build, in list order (best first within a family).
const std::vector<KernelVariant>& kernel_variants();

// Whether this CPU can run `isa` (under the PYNAS_ISA cap).
bool isa_runnable(const std::string& isa);

// The best runnable variant of `op`, or the variant called `name` (throws std::invalid_argument
// naming the choices if it is unknown or the CPU cannot run it).
const KernelVariant& select_kernel(const std::string& op, const std::string& name = "");

// The "native" backend's version as measurements record it: "pynas==<version>+<gemm>+<dwconv>+
// <conv>+<se>", the variants this CPU runs (honouring PYNAS_ISA), e.g.
// "pynas==0.1.0+gemm_8x48__avx512f+dwconv_c16__avx512f+conv_c32__avx512f+se_c64__avx512f". One
// function for pynas.profiling.backends.backend_version("native") and for pynas-profile, so their
// measurements fall into one store series (a kernel change on the same pynas version starts a new
// one). No whitespace: the store requires none.
std::string native_backend_version();

template <class Fn>
Fn kernel_fn(const std::string& op, const std::string& name = "") {
  return reinterpret_cast<Fn>(select_kernel(op, name).fn);
}

}  // namespace pynas
