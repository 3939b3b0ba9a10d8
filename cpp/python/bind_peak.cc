// Measured fp32 peak of this core, per ISA: the yardstick benchmarks report kernels against.
#include <chrono>

#include "bindings.h"
#include "kernels/peak.h"

namespace py = pybind11;

namespace pynas {
namespace {

double peak_gflops(const std::string& variant, double seconds) {
  const PeakFn fn = kernel_fn<PeakFn>("peak", variant);
  py::gil_scoped_release release;
  float sink = 0;
  size_t iterations = 1 << 16;
  double best = 0;
  const auto start = std::chrono::steady_clock::now();
  // Best of many short runs: the peak is what the core can do, not its average under noise.
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    const double flops = fn(iterations, &sink);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt < 1e-3) iterations *= 2;
    else best = std::max(best, flops / dt / 1e9);
  }
  return best + 0 * sink;
}

void bind_peak(py::module_& m) {
  m.def("peak_gflops", &peak_gflops, py::arg("variant") = "", py::arg("seconds") = 0.2,
        "Measured peak fp32 GFLOP/s of one core with independent FMA chains (best of short runs). "
        "variant: a 'peak' kernel from kernel_variants(); default the best ISA this CPU runs.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_peak)
}  // namespace pynas
