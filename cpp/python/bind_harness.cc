// Python bindings of the timing harness: _core.time_calls(fn, **options) for any callable (the
// other runtimes' backends), and Network.measure(inputs, **options) for native networks (timed in
// C++ with the GIL released, rotating through the given input images).
#include <pybind11/stl.h>

#include "bindings.h"
#include "harness_py.h"

namespace py = pybind11;

namespace pynas {

HarnessOptions harness_options(const py::kwargs& kw) {
  HarnessOptions o;
  for (const auto& item : kw) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    if (key == "warmup_runs") o.warmup_runs = v.cast<int>();
    else if (key == "warmup_seconds") o.warmup_seconds = v.cast<double>();
    else if (key == "min_runs") o.min_runs = v.cast<int>();
    else if (key == "max_runs") o.max_runs = v.cast<int>();
    else if (key == "target_rel_ci") o.target_rel_ci = v.cast<double>();
    else if (key == "budget_seconds") o.budget_seconds = v.cast<double>();
    else if (key == "inner") o.inner = v.cast<int>();
    else if (key == "min_sample_seconds") o.min_sample_seconds = v.cast<double>();
    else if (key == "pin_cpu") o.pin_cpu = v.is_none() ? -1 : v.cast<int>();
    else if (key == "cpu_time") o.cpu_time = v.cast<bool>();
    else
      throw py::type_error("harness option '" + key +
                           "': expected one of warmup_runs, warmup_seconds, min_runs, max_runs, target_rel_ci, "
                           "budget_seconds, inner, min_sample_seconds, pin_cpu, cpu_time");
  }
  return o;
}

py::dict timing_dict(const TimingStats& s) {
  py::dict d;
  d["median_ms"] = s.median_ms;
  d["mad_ms"] = s.mad_ms;
  d["p10_ms"] = s.p10_ms;
  d["p90_ms"] = s.p90_ms;
  d["min_ms"] = s.min_ms;
  d["mean_ms"] = s.mean_ms;
  d["ci_rel"] = s.ci_rel;
  d["runs"] = s.runs;
  d["inner"] = s.inner;
  add_run_facts(d, s);
  d["cpu_share"] = s.cpu_share;
  d["samples_ms"] = s.samples_ms;
  return d;
}

const char* const kHarnessOptionsDoc =
    "Options (keywords): warmup_runs=3, warmup_seconds=0.02, min_runs=10, max_runs=100000, "
    "target_rel_ci=0.01 (stop when the median's 95% CI half-width is within 1%), budget_seconds=2.0, "
    "inner=0 (calls per sample; 0: enough for min_sample_seconds=50e-6), pin_cpu=None, cpu_time=False (time by the "
    "calling thread's CPU time: preemption not counted; one-thread work only). Returns a dict: "
    "median_ms, mad_ms, p10_ms, p90_ms, min_ms, mean_ms, ci_rel, runs, inner, converged, seconds, cpu, "
    "freq_mhz_before, freq_mhz_after (-1: unknown), cpu_share (CPU / wall time with cpu_time, else -1), samples_ms.";

namespace {

void bind_harness(py::module_& m) {
  m.def("time_calls", [](const py::function& fn, const py::kwargs& kw) {
          const HarnessOptions o = harness_options(kw);
          return timing_dict(time_calls([&](size_t i) { fn(i); }, o));
        }, py::arg("fn"),
        (std::string("Times fn(call_index) (rotate inputs by the index) with pynas's harness. ") + kHarnessOptionsDoc).c_str());
  m.def("summarize", [](const std::vector<double>& samples) { return timing_dict(summarize(samples)); },
        py::arg("samples_ms"), "The harness's statistics of given samples (ms).");
  m.def("cpu_frequency_mhz", &cpu_frequency_mhz, py::arg("cpu"),
        "Current frequency of a core in MHz (cpufreq, else /proc/cpuinfo), -1 if the OS does not tell.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_harness)
}  // namespace pynas
