// Shared by the bindings that time things with the harness (bind_harness.cc, Network.measure).
#pragma once

#include <pybind11/pybind11.h>

#include "profiling/harness.h"

namespace pynas {

// HarnessOptions from keyword arguments; an unknown keyword is a TypeError naming it.
HarnessOptions harness_options(const pybind11::kwargs& kw);
pybind11::dict timing_dict(const TimingStats& s);
extern const char* const kHarnessOptionsDoc;

}  // namespace pynas
