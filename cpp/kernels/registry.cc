#include "registry.h"

#include <algorithm>
#include <stdexcept>

#include "../cpu_features.h"
#include "dwconv.h"
#include "gemm.h"

namespace pynas {

const std::vector<KernelVariant>& kernel_variants() {
  static const std::vector<KernelVariant> variants = {
  // One line per op family:
#define PYNAS_DWCONV(name, isa) {"dwconv", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_DWCONV_VARIANTS(PYNAS_DWCONV)
#define PYNAS_GEMM(name, isa, mr, nr, nr_min) {"gemm", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_GEMM_VARIANTS(PYNAS_GEMM)
  };
  return variants;
}

bool isa_runnable(const std::string& isa) {
  const std::vector<std::string> isas = supported_isas();
  return std::find(isas.begin(), isas.end(), isa) != isas.end();
}

const KernelVariant& select_kernel(const std::string& op, const std::string& name) {
  std::string known;
  for (const KernelVariant& v : kernel_variants()) {
    if (v.op != op) continue;
    known += (known.empty() ? "" : ", ") + std::string(v.name);
    if (name.empty() ? isa_runnable(v.isa) : name == v.name) {
      if (!isa_runnable(v.isa))
        throw std::invalid_argument("kernel " + name + ": this CPU (or PYNAS_ISA) cannot run ISA " + v.isa);
      return v;
    }
  }
  if (known.empty()) throw std::invalid_argument("unknown kernel op '" + op + "'");
  throw std::invalid_argument("kernel variant: expected one of " + known + " for op " + op + ", got '" + name + "'");
}

}  // namespace pynas
