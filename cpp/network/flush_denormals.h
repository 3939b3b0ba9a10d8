#pragma once
// Denormal (subnormal) floats cost x86 cores a microcode assist per instruction that reads or
// writes one (~100 cycles on Intel; much less on AMD Zen). Networks reach them: with initialised
// (untrained) weights, activations grow to ~1e3 through residual stages and an SE gate's
// sigmoid(-1e3) underflows, so a run's time depended on the weights' values. A MnasNet search
// pick ran whole in 2.0x the sum of its segments' times on a Xeon (Ice Lake); flushed, 1.2x (what
// running whole costs in caches). Inference runtimes flush too (TensorFlow's
// ScopedFlushDenormal, ONNX Runtime's set_denormal_as_zero): the values lost are below 1.2e-38.
//
// FlushDenormals sets flush-to-zero and denormals-are-zero for its scope on the calling thread
// (x86: MXCSR FTZ bit 15 and DAZ bit 6, which VEX/EVEX instructions obey too; AArch64: FPCR FZ
// bit 24) and restores the caller's mode after: Python's own arithmetic is left as it was.
#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace pynas {

class FlushDenormals {
 public:
  FlushDenormals() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    saved_ = _mm_getcsr();
    _mm_setcsr(static_cast<unsigned>(saved_) | 0x8040u);
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    saved_ = fpcr;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr | (uint64_t{1} << 24)));
#endif
    // Other targets (32-bit ARM's NEON always flushes; scalar builds elsewhere) keep their mode.
  }
  ~FlushDenormals() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_setcsr(static_cast<unsigned>(saved_));
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_));
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  uint64_t saved_ = 0;
};

}  // namespace pynas
