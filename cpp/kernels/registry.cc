#include "registry.h"

#include <algorithm>
#include <stdexcept>

#include "../cpu_features.h"
#include "add.h"
#include "avgpool.h"
#include "conv.h"
#include "dwconv.h"
#include "peak.h"
#include "fc.h"
#include "gap.h"
#include "se.h"
#include "gemm.h"

namespace pynas {

const std::vector<KernelVariant>& kernel_variants() {
  static const std::vector<KernelVariant> variants = {
  // One line per op family:
#define PYNAS_DWCONV(name, isa) {"dwconv", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_DWCONV_VARIANTS(PYNAS_DWCONV)
#define PYNAS_PEAK(name, isa) {"peak", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_PEAK_VARIANTS(PYNAS_PEAK)
#define PYNAS_CONV(name, isa) {"conv", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_CONV_VARIANTS(PYNAS_CONV)
#define PYNAS_GAP(name, isa) {"gap", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_GAP_VARIANTS(PYNAS_GAP)
#define PYNAS_FC(name, isa) {"fc", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_FC_VARIANTS(PYNAS_FC)
#define PYNAS_SE(name, isa) {"se", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_SE_VARIANTS(PYNAS_SE)
#define PYNAS_AVGPOOL(name, isa) {"avgpool", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_AVGPOOL_VARIANTS(PYNAS_AVGPOOL)
#define PYNAS_ADD(name, isa) {"add", #name, #isa, reinterpret_cast<void*>(&name)},
      PYNAS_ADD_VARIANTS(PYNAS_ADD)
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

std::string native_backend_version() {
  std::string v = std::string("pynas==") + PYNAS_VERSION;
  for (const char* op : {"gemm", "dwconv", "conv", "se"}) v += std::string("+") + select_kernel(op).name;
  // Runs flush denormals (network/flush_denormals.h): times measured before did not, and could be
  // up to 2x slower for the same network, so a bundle of them does not describe this backend.
  // "+rev2": the same kernels, run faster: weight-bound blocks in one band (mbconv_band_rows), the
  // GEMMs prefetch their next weight panel, the thread pool spins before it blocks (bench/kernels.py:
  // MnasNet-A1's 7x7 blocks 15-30% faster): segment times measured before over-predict.
  // "+rev3": GEMM row chunks even and up to 192 KB of A on x86 (7 x 7 layers no longer re-read their
  // weights for a last row: MnasNet-A1's head and 7 x 7 blocks 5-7% faster at one thread), and at
  // several threads few-row pointwise layers and the classifier split their output channels, blocks
  // under 4 rows a thread run as op steps (MnasNet-A1 about 15% faster at two threads).
  // "+rev4": the AVX-512 GEMM prefetches all of the next 48-wide channel group's weights (it took one
  // panel per group, and every third panel missed: MnasNet-A1's 7 x 7 blocks and head conv 4-8%
  // faster in whole runs), its 3 x 3 stride-2 stem conv has its own tiles (7-13% faster), and GEMM
  // rows that fit one chunk are one chunk on every ISA (7 x 7, K = 960 layers read their weights once).
  // "+rev5": the AVX2 GEMM's K loop keeps the next-panel prefetch bookkeeping out of the steps once
  // the panel is prefetched (MnasNet-A1 about 1.5% faster at one thread under PYNAS_ISA=avx2, up to 4%
  // while another hyperthread shares the core).
  // "+rev6": the AVX-512 GEMM's tiles are inlined into its tile loops, not a call per tile
  // (MnasNet-A1 and MobileNetV2 1.3-3.2% faster at one and two threads on a Zen 5).
  return v + "+ftz+rev6";
}

}  // namespace pynas
