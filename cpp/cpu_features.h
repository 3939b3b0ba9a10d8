// Run-time CPU feature detection and the kernel ISA levels this CPU can run.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pynas {

// Features the CPU has AND the OS supports (e.g. avx2 is false when the OS
// does not save YMM registers). Fields of the other architecture stay false.
struct CpuFeatures {
  // x86 / x86_64
  bool sse4_2 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  // aarch64
  bool neon = false;     // asimd, always present on aarch64
  bool dotprod = false;  // asimddp
  bool fp16 = false;     // fphp and asimdhp
  bool sve = false;

  std::string arch;   // "x86_64", "x86", "aarch64" or "other"
  std::string model;  // CPU model string, empty if unknown

  // (name, value) of every bool field, in declaration order.
  std::vector<std::pair<const char*, bool>> flags() const;
};

// Detected once on first call (thread-safe), then cached.
const CpuFeatures& cpu_features();

// Kernel ISA levels, best first, from {"avx512", "avx2", "neon", "scalar"};
// always ends with "scalar". The environment variable PYNAS_ISA (read on every
// call) caps the list: it starts at that level. Throws std::invalid_argument if
// PYNAS_ISA is not one of the known levels or names one this CPU cannot run.
std::vector<std::string> supported_isas();

// Cache sizes in bytes as the C library reports them: sysconf(_SC_LEVEL1_DCACHE_SIZE,
// _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE), an extension of glibc (and bionic) that Python's
// os.sysconf has no names for. 0 where the library has no such query or does not know (glibc on
// aarch64 often returns 0; /sys/devices/system/cpu/cpu0/cache is the better source there).
struct CacheSizes {
  long l1d = 0;
  long l2 = 0;
  long l3 = 0;
};
CacheSizes libc_cache_sizes();

}  // namespace pynas
