#include "cpu_features.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <stdexcept>

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace pynas {
namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

#if defined(__x86_64__) || defined(__i386__)

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XCR0: which register states the OS saves on context switches.
std::uint64_t xgetbv0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

void detect(CpuFeatures& f) {
#if defined(__x86_64__)
  f.arch = "x86_64";
#else
  f.arch = "x86";
#endif
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) && eax >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      __get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3]);
      std::memcpy(brand + 16 * i, r, 16);
    }
    f.model = trim(brand);
  }

  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return;
  f.sse4_2 = bit(ecx, 20);
  const bool osxsave = bit(ecx, 27);
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM (bit 1) + YMM (bit 2)
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM0-15, ZMM16-31
  f.avx = os_avx && bit(ecx, 28);
  f.fma = os_avx && bit(ecx, 12);
  f.f16c = os_avx && bit(ecx, 29);

  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return;
  f.avx2 = os_avx && bit(ebx, 5);
  f.avx512f = os_avx512 && bit(ebx, 16);
  f.avx512dq = f.avx512f && bit(ebx, 17);
  f.avx512bw = f.avx512f && bit(ebx, 30);
  f.avx512vl = f.avx512f && bit(ebx, 31);
  f.avx512vnni = f.avx512f && bit(ecx, 11);
}

#elif defined(__aarch64__)

// First "key : value" of /proc/cpuinfo whose key is one of `keys`.
std::string cpuinfo_value(std::initializer_list<const char*> keys) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    for (const char* k : keys)
      if (key == k) return trim(line.substr(colon + 1));
  }
  return "";
}

void detect(CpuFeatures& f) {
  f.arch = "aarch64";
  f.neon = true;  // Advanced SIMD is mandatory in ARMv8-A
#if defined(__linux__)
  // Bits of AT_HWCAP (linux/arch/arm64/include/uapi/asm/hwcap.h).
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.dotprod = hwcap & (1ul << 20);                       // HWCAP_ASIMDDP
  f.fp16 = (hwcap & (1ul << 9)) && (hwcap & (1ul << 10));  // HWCAP_FPHP, HWCAP_ASIMDHP
  f.sve = hwcap & (1ul << 22);                           // HWCAP_SVE
#endif
  // Not "model name": arm64 kernels print it only for 32-bit tasks, and under user-mode
  // emulation (qemu-aarch64 on an x86 machine) /proc/cpuinfo is the host's, naming its x86 CPU.
  // Some vendor kernels print "Hardware"; old ones "Processor"; all "CPU implementer"/"CPU part".
  f.model = cpuinfo_value({"Hardware", "Processor"});
  if (f.model.empty()) {
    const std::string impl = cpuinfo_value({"CPU implementer"});
    const std::string part = cpuinfo_value({"CPU part"});
    if (!impl.empty()) f.model = "implementer " + impl + " part " + part;
  }
#if defined(__linux__)
  // No ARM /proc/cpuinfo (emulation, or a sandbox hiding it): MIDR_EL1, which the kernel (and
  // qemu) let user space read when HWCAP_CPUID is set.
  if (f.model.empty() && (hwcap & (1ul << 11))) {
    std::uint64_t midr = 0;
    __asm__ volatile("mrs %0, MIDR_EL1" : "=r"(midr));
    char buf[48];
    std::snprintf(buf, sizeof buf, "implementer 0x%02x part 0x%03x",
                  static_cast<unsigned>((midr >> 24) & 0xff), static_cast<unsigned>((midr >> 4) & 0xfff));
    f.model = buf;
  }
#endif
}

#else

void detect(CpuFeatures& f) { f.arch = "other"; }

#endif

const char* const kIsaLevels[] = {"avx512", "avx2", "neon", "scalar"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::vector<std::pair<const char*, bool>> CpuFeatures::flags() const {
  return {{"sse4_2", sse4_2},     {"avx", avx},           {"avx2", avx2},
          {"fma", fma},           {"f16c", f16c},         {"avx512f", avx512f},
          {"avx512bw", avx512bw}, {"avx512dq", avx512dq}, {"avx512vl", avx512vl},
          {"avx512vnni", avx512vnni}, {"neon", neon},     {"dotprod", dotprod},
          {"fp16", fp16},         {"sve", sve}};
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    detect(f);
    return f;
  }();
  return features;
}

std::vector<std::string> supported_isas() {
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> isas;
  if (f.avx512f && f.avx2 && f.fma) isas.push_back("avx512");
  if (f.avx2 && f.fma) isas.push_back("avx2");
  if (f.neon) isas.push_back("neon");
  isas.push_back("scalar");

  const char* env = std::getenv("PYNAS_ISA");
  if (env == nullptr || *env == '\0') return isas;
  std::string want = trim(env);
  std::transform(want.begin(), want.end(), want.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::vector<std::string> known(std::begin(kIsaLevels), std::end(kIsaLevels));
  if (std::find(known.begin(), known.end(), want) == known.end())
    throw std::invalid_argument("PYNAS_ISA: expected one of " + join(known) + ", got '" +
                                std::string(env) + "'");
  const auto it = std::find(isas.begin(), isas.end(), want);
  if (it == isas.end())
    throw std::invalid_argument("PYNAS_ISA: this CPU cannot run '" + want +
                                "'; expected one of " + join(isas) + ", got '" +
                                std::string(env) + "'");
  return {it, isas.end()};
}

CacheSizes libc_cache_sizes() {
  CacheSizes c;
  // sysconf returns -1 (unsupported) or 0 (unknown) when it cannot tell; both mean "not known".
  auto query = [](int name) { const long v = sysconf(name); return v > 0 ? v : 0L; };
#if defined(_SC_LEVEL1_DCACHE_SIZE)
  c.l1d = query(_SC_LEVEL1_DCACHE_SIZE);
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
  c.l2 = query(_SC_LEVEL2_CACHE_SIZE);
#endif
#if defined(_SC_LEVEL3_CACHE_SIZE)
  c.l3 = query(_SC_LEVEL3_CACHE_SIZE);
#endif
  (void)query;  // unused where the library defines none of the names
  return c;
}

}  // namespace pynas
