// Shared by the bindings that time things with the harness (bind_harness.cc, Network.measure).
#pragma once

#include <pybind11/pybind11.h>

#include "profiling/harness.h"

namespace pynas {

// HarnessOptions from keyword arguments; an unknown keyword is a TypeError naming it.
HarnessOptions harness_options(const pybind11::kwargs& kw);
pybind11::dict timing_dict(const TimingStats& s);
extern const char* const kHarnessOptionsDoc;

// The facts of a timing run every stats dict carries (converged, seconds, cpu, clock before and
// after), for TimingStats and InterleavedStats alike.
template <class Stats>
void add_run_facts(pybind11::dict& d, const Stats& s) {
  d["converged"] = s.converged;
  d["seconds"] = s.seconds;
  d["cpu"] = s.cpu;
  d["freq_mhz_before"] = s.freq_mhz_before;
  d["freq_mhz_after"] = s.freq_mhz_after;
}

}  // namespace pynas
