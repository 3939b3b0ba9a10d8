// GEMM weight packing, tile lookup and the channel shuffle: baseline code, run once per layer
// (packing) or memory-bound (shuffle).
#include <cstring>
#include <stdexcept>

#include "gemm.h"

namespace pynas {

GemmTile gemm_tile(const std::string& name) {
#define PYNAS_GEMM_TILE(vname, isa, mr, nr, nr_min) \
  if (name == #vname) return GemmTile{mr, nr, nr_min};
  PYNAS_GEMM_VARIANTS(PYNAS_GEMM_TILE)
#undef PYNAS_GEMM_TILE
  throw std::invalid_argument("gemm_tile: unknown gemm variant '" + name + "'");
}

size_t gemm_packed_size(size_t n, size_t k, int nr, int nr_min) {
  (void)nr;
  const size_t g = static_cast<size_t>(nr_min);
  return (n + g - 1) / g * g * (k + 1);
}

void gemm_pack(const float* w, size_t ldw, const float* bias, size_t n, size_t k, int nr, int nr_min,
               float* packed) {
  const size_t NR = static_cast<size_t>(nr), G = static_cast<size_t>(nr_min);
  for (size_t n0 = 0; n0 < n; n0 += NR) {
    const size_t valid = n - n0 < NR ? n - n0 : NR;
    const size_t width = (valid + G - 1) / G * G;
    float* p = packed + n0 * (k + 1);
    std::memset(p, 0, width * (k + 1) * sizeof(float));
    if (bias != nullptr) std::memcpy(p, bias + n0, valid * sizeof(float));
    for (size_t j = 0; j < valid; ++j) {
      const float* wr = w + (n0 + j) * ldw;
      for (size_t kk = 0; kk < k; ++kk) p[width * (kk + 1) + j] = wr[kk];
    }
  }
}

void channel_shuffle(const float* in, size_t ldi, float* out, size_t ldo, const float* residual, size_t ldr,
                     size_t channels, size_t groups, size_t m_begin, size_t m_end) {
  const size_t cg = channels / groups;
  for (size_t m = m_begin; m < m_end; ++m) {
    const float* src = in + m * ldi;
    float* dst = out + m * ldo;
    const float* res = residual != nullptr ? residual + m * ldr : nullptr;
    if (groups == 2) {  // the common case, as a plain interleave the compiler vectorizes
      const float* s0 = src;
      const float* s1 = src + cg;
      if (res != nullptr) {
        for (size_t j = 0; j < cg; ++j) {
          dst[2 * j] = s0[j] + res[2 * j];
          dst[2 * j + 1] = s1[j] + res[2 * j + 1];
        }
      } else {
        for (size_t j = 0; j < cg; ++j) {
          dst[2 * j] = s0[j];
          dst[2 * j + 1] = s1[j];
        }
      }
      continue;
    }
    for (size_t g = 0; g < groups; ++g)
      for (size_t j = 0; j < cg; ++j) {
        const float v = src[g * cg + j];
        dst[j * groups + g] = res != nullptr ? v + res[j * groups + g] : v;
      }
  }
}

}  // namespace pynas
