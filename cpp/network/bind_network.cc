// pynas._core.Network: build a native network step by step from Python, run it on numpy arrays.
#include <chrono>
#include <memory>

#include <pybind11/stl.h>

#include "../bindings.h"
#include "network.h"

namespace py = pybind11;

namespace pynas {
namespace {

void expect_size(const FloatArray& a, size_t n, const char* field) {
  if (static_cast<size_t>(a.size()) != n)
    throw std::invalid_argument(std::string(field) + ": expected " + std::to_string(n) + " floats, got " +
                                std::to_string(a.size()));
}

void check_input(const Network& n, const FloatArray& x) {
  const auto& in = n.shape(0);
  if (x.ndim() != 3 || static_cast<size_t>(x.shape(0)) != in.h || static_cast<size_t>(x.shape(1)) != in.w ||
      static_cast<size_t>(x.shape(2)) != in.c)
    throw std::invalid_argument("input: expected an array of shape (" + std::to_string(in.h) + ", " +
                                std::to_string(in.w) + ", " + std::to_string(in.c) + ")");
}

void bind_network(py::module_& m) {
  py::class_<Network>(m, "Network",
                      "A native network over NHWC batch-1 tensors, built step by step, then finalize()d. "
                      "Weight layouts are pynas.native.weights'; each step returns its output tensor id.")
      .def(py::init<int>(), py::arg("threads") = 1)
      .def("input", &Network::input, py::arg("h"), py::arg("w"), py::arg("c"))
      .def("conv", [](Network& n, int x, const FloatArray& w, const FloatArray& b, int kernel, int stride,
                      const std::string& act, int residual) {
             check_ndim(w, "weights", 4, "Cout x k x k x Cin");
             const size_t cout = w.shape(0);
             if (w.shape(1) != kernel || w.shape(2) != kernel || static_cast<size_t>(w.shape(3)) != n.shape(x).c)
               throw std::invalid_argument("weights: expected Cout x k x k x Cin with k=" + std::to_string(kernel) +
                                           " and Cin=" + std::to_string(n.shape(x).c));
             expect_size(b, cout, "bias");
             return n.conv(x, w.data(), b.data(), cout, kernel, stride, parse_act(act), residual);
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("kernel"), py::arg("stride"),
           py::arg("act") = "none", py::arg("residual") = -1)
      .def("dwconv", [](Network& n, int x, const FloatArray& w, const FloatArray& b, int stride, const std::string& act) {
             check_ndim(w, "weights", 3, "k x k x C");
             const int k = static_cast<int>(w.shape(0));
             if (w.shape(1) != k || static_cast<size_t>(w.shape(2)) != n.shape(x).c || (k != 3 && k != 5 && k != 7))
               throw std::invalid_argument("weights: expected k x k x C with k in 3, 5, 7 and C=" +
                                           std::to_string(n.shape(x).c));
             expect_size(b, n.shape(x).c, "bias");
             return n.dwconv(x, w.data(), b.data(), k, stride, parse_act(act));
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("stride"), py::arg("act") = "none")
      .def("pointwise", [](Network& n, int x, const FloatArray& w, const FloatArray& b, const std::string& act,
                           int residual) {
             check_ndim(w, "weights", 2, "Cout x Cin");
             if (static_cast<size_t>(w.shape(1)) != n.shape(x).c)
               throw std::invalid_argument("weights: expected Cout x " + std::to_string(n.shape(x).c));
             expect_size(b, w.shape(0), "bias");
             return n.pointwise(x, w.data(), b.data(), w.shape(0), parse_act(act), residual);
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("act") = "none", py::arg("residual") = -1)
      .def("se", [](Network& n, int x, const FloatArray& wr, const FloatArray& br, const FloatArray& we,
                    const FloatArray& be, const std::string& act, const std::string& gate) {
             const size_t c = n.shape(x).c;
             check_ndim(wr, "reduce weights", 2, "R x C");
             const size_t r = wr.shape(0);
             expect_size(wr, r * c, "reduce weights");
             expect_size(br, r, "reduce bias");
             expect_size(we, c * r, "expand weights");
             expect_size(be, c, "expand bias");
             if (gate != "sigmoid" && gate != "hsigmoid")
               throw std::invalid_argument("gate: expected sigmoid or hsigmoid, got '" + gate + "'");
             return n.se(x, wr.data(), br.data(), r, we.data(), be.data(), parse_act(act), gate == "hsigmoid");
           }, py::arg("x"), py::arg("w_reduce"), py::arg("b_reduce"), py::arg("w_expand"), py::arg("b_expand"),
           py::arg("act"), py::arg("gate"))
      .def("avgpool", &Network::avgpool, py::arg("x"), py::arg("stride"))
      .def("add", &Network::add, py::arg("a"), py::arg("b"))
      .def("gap", &Network::gap, py::arg("x"))
      .def("fc", [](Network& n, int x, const FloatArray& w, const FloatArray& b, const std::string& act) {
             check_ndim(w, "weights", 2, "Cout x Cin");
             expect_size(w, w.shape(0) * n.shape(x).size(), "weights");
             expect_size(b, w.shape(0), "bias");
             return n.fc(x, w.data(), b.data(), w.shape(0), parse_act(act));
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("act") = "none")
      .def("finalize", &Network::finalize, py::arg("output"))
      .def("shape", [](const Network& n, int t) {
             const auto& s = n.shape(t);
             return py::make_tuple(s.h, s.w, s.c);
           })
      .def("describe", &Network::describe)
      .def_property_readonly("arena_bytes", [](const Network& n) { return n.arena_floats() * sizeof(float); })
      .def("run", [](Network& n, const FloatArray& x) {
             check_input(n, x);
             const auto& o = n.shape(n.output());
             FloatArray y({o.h, o.w, o.c});
             float* out = y.mutable_data();
             {
               py::gil_scoped_release release;
               n.run(x.data(), out);
             }
             return y;
           }, py::arg("input"), "Run on one H x W x C float32 image; returns the output tensor.")
      .def("time_runs", [](Network& n, const FloatArray& x, int runs) {
             check_input(n, x);
             const auto& o = n.shape(n.output());
             std::vector<float> out(o.size());
             std::vector<double> seconds;
             py::gil_scoped_release release;
             for (int i = 0; i < runs; ++i) {
               const auto t0 = std::chrono::steady_clock::now();
               n.run(x.data(), out.data());
               seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
             }
             return seconds;
           }, py::arg("input"), py::arg("runs"), "Seconds per run, timed in C++ (no Python in the loop).");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_network)
}  // namespace pynas
