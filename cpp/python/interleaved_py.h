// Shared by the bindings that time with interleaved ratio timing (bind_interleaved.cc,
// Network.measure_interleaved).
#pragma once

#include <pybind11/pybind11.h>

#include "profiling/interleaved.h"

namespace pynas {

// {"item": {...}, "reference": {...}, "ratio": {...}} (each as timing_dict) plus converged,
// seconds, cpu, freq_mhz_before, freq_mhz_after.
pybind11::dict interleaved_dict(const InterleavedStats& s);
extern const char* const kInterleavedDoc;

}  // namespace pynas
