// Shared by the standalone kernel checks (tests/native/*.cc, CMake targets built with
// -DPYNAS_BUILD_CHECKS=ON, run by ctest; scripts/native-checks.sh builds and runs them, for aarch64
// under qemu): which variants of a family's X-macro list this CPU runs.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "kernels/registry.h"

namespace pynas_check {

// Whether this CPU can run `isa` (pynas::isa_runnable, as the run-time dispatch decides: PYNAS_ISA
// forces a lower ISA); if not, prints "<variant> skipped: ..." so the output says what was not
// checked. A PYNAS_ISA the CPU cannot run, or an unknown one, ends the program with status 2.
inline bool runnable(const char* variant, const char* isa) {
  try {
    if (pynas::isa_runnable(isa)) return true;
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "%s\n", error.what());
    std::exit(2);
  }
  std::printf("%-24s skipped: this CPU (or PYNAS_ISA) cannot run %s\n", variant, isa);
  return false;
}

}  // namespace pynas_check
