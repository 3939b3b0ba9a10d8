// Python bindings of interleaved ratio timing (interleaved.h): _core.time_interleaved(fn,
// reference_fn, **options) for callables (the other runtimes' backends), and the dict that
// Network.measure_interleaved returns too.
#include <pybind11/stl.h>

#include "bindings.h"
#include "harness_py.h"
#include "interleaved_py.h"

namespace py = pybind11;

namespace pynas {

py::dict interleaved_dict(const InterleavedStats& s) {
  py::dict d;
  d["item"] = timing_dict(s.item);
  d["reference"] = timing_dict(s.reference);
  d["ratio"] = timing_dict(s.ratio);
  add_run_facts(d, s);
  return d;
}

const char* const kInterleavedDoc =
    "Alternates item and reference samples (min_runs, max_runs: pairs; target_rel_ci: of the median "
    "ratio item/reference; inner: the item's, the reference's is sized by min_sample_seconds). Returns "
    "{'item', 'reference', 'ratio'} (each as time_calls returns: ratio's median_ms is the median ratio), "
    "converged, seconds, cpu, freq_mhz_before, freq_mhz_after. ";

namespace {

void bind_interleaved(py::module_& m) {
  m.def("time_interleaved", [](const py::function& fn, const py::function& reference_fn, const py::kwargs& kw) {
          const HarnessOptions o = harness_options(kw);
          return interleaved_dict(time_interleaved([&](size_t i) { fn(i); }, [&](size_t i) { reference_fn(i); }, o));
        }, py::arg("fn"), py::arg("reference_fn"),
        (std::string("Times fn(call_index) as a ratio to reference_fn(call_index), timed alternately. ") +
         kInterleavedDoc + kHarnessOptionsDoc).c_str());
  m.def("summarize_pairs", [](const std::vector<double>& item_ms, const std::vector<double>& reference_ms,
                              double target_rel_ci) {
          return interleaved_dict(summarize_pairs(item_ms, reference_ms, target_rel_ci));
        }, py::arg("item_ms"), py::arg("reference_ms"), py::arg("target_rel_ci") = 0.01,
        "time_interleaved's statistics of given paired item and reference samples (ms).");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_interleaved)
}  // namespace pynas
