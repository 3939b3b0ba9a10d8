#include "hide_avx512.h"

#include <stdexcept>
#include <string>

#if defined(__x86_64__) && defined(__linux__)
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include <cpuid.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#endif

namespace pynas {

#if defined(__x86_64__) && defined(__linux__)
namespace {

constexpr int kArchSetCpuid = 0x1012;  // ARCH_SET_CPUID of <asm/prctl.h> (Linux 4.12)

struct sigaction g_previous;  // the SIGSEGV handler before ours

// Leaf 7 bits of the AVX-512 extensions (Intel SDM vol. 2A, CPUID; the kernel's cpufeatures.h).
constexpr unsigned kLeaf7Ebx = (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) |
                               (1u << 28) | (1u << 30) | (1u << 31);  // F DQ IFMA PF ER CD BW VL
constexpr unsigned kLeaf7Ecx = (1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) |
                               (1u << 14);  // VBMI VBMI2 VNNI BITALG VPOPCNTDQ
constexpr unsigned kLeaf7Edx = (1u << 2) | (1u << 3) | (1u << 8) | (1u << 23);  // 4VNNIW 4FMAPS
                                                                                // VP2INTERSECT FP16
constexpr unsigned kLeaf7Sub1Eax = 1u << 5;   // AVX512_BF16
constexpr unsigned kLeaf7Sub1Edx = 1u << 19;  // AVX10 (which includes AVX-512 on its CPUs)

long arch_set_cpuid(int enabled) { return syscall(SYS_arch_prctl, kArchSetCpuid, enabled); }

void on_sigsegv(int, siginfo_t*, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  greg_t* r = uc->uc_mcontext.gregs;
  const auto* ip = reinterpret_cast<const unsigned char*>(r[REG_RIP]);
  if (ip[0] != 0x0f || ip[1] != 0xa2) {
    // Not a CPUID: put the previous handler back and return, so the instruction faults again into
    // it (how Python's faulthandler chains too).
    sigaction(SIGSEGV, &g_previous, nullptr);
    return;
  }
  const int saved_errno = errno;  // the interrupted code's
  const unsigned leaf = static_cast<unsigned>(r[REG_RAX]), sub = static_cast<unsigned>(r[REG_RCX]);
  unsigned a = 0, b = 0, c = 0, d = 0;
  // The real CPUID, with faulting off for this one instruction (a system call is signal-safe).
  arch_set_cpuid(1);
  __cpuid_count(leaf, sub, a, b, c, d);
  arch_set_cpuid(0);
  if (leaf == 7 && sub == 0) {
    b &= ~kLeaf7Ebx;
    c &= ~kLeaf7Ecx;
    d &= ~kLeaf7Edx;
  } else if (leaf == 7 && sub == 1) {
    a &= ~kLeaf7Sub1Eax;
    d &= ~kLeaf7Sub1Edx;
  }
  r[REG_RAX] = a;
  r[REG_RBX] = b;
  r[REG_RCX] = c;
  r[REG_RDX] = d;
  r[REG_RIP] += 2;  // CPUID is 0F A2
  errno = saved_errno;
}

}  // namespace

void hide_avx512_from_cpuid() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigsegv;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &g_previous) != 0)
      throw std::runtime_error(std::string("hide_avx512_from_cpuid: sigaction(SIGSEGV): ") +
                               std::strerror(errno));
  });
  if (arch_set_cpuid(0) != 0)
    throw std::runtime_error(std::string("hide_avx512_from_cpuid: this CPU or kernel cannot fault CPUID "
                                         "(arch_prctl(ARCH_SET_CPUID): ") + std::strerror(errno) + ")");
}

#else

void hide_avx512_from_cpuid() {
  throw std::runtime_error("hide_avx512_from_cpuid: only on x86-64 Linux (CPUID faulting), not this build");
}

#endif

}  // namespace pynas
