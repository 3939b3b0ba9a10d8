// pynas._core.Network: build a native network step by step from Python, run it on numpy arrays.
#include <chrono>
#include <memory>
#include <optional>

#include <pybind11/stl.h>

#include "bindings.h"
#include "harness_py.h"
#include "interleaved_py.h"
#include "network/network.h"

namespace py = pybind11;

namespace pynas {
namespace {

// Input images for measure(): at least one, each H x W x C of the network's input tensor.
void check_measure_inputs(Network& n, const std::vector<FloatArray>& inputs, const std::string& field) {
  if (inputs.empty()) throw std::invalid_argument(field + ": expected at least one input image");
  const auto& in = n.shape(0);
  for (const FloatArray& x : inputs)
    if (x.ndim() != 3 || static_cast<size_t>(x.size()) != in.size() || static_cast<size_t>(x.shape(2)) != in.c)
      throw std::invalid_argument(field + ": expected arrays of shape (" + std::to_string(in.h) + ", " +
                                  std::to_string(in.w) + ", " + std::to_string(in.c) + ")");
}


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
  m.attr("MAX_THREADS") = kMaxThreads;
  // A RuntimeError: the count was valid, the system could not start that many threads.
  py::register_exception<ThreadStartError>(m, "ThreadStartError", PyExc_RuntimeError);
  py::class_<Network>(m, "Network",
                      "A native network over NHWC batch-1 tensors, built step by step, then finalize()d. "
                      "Weight layouts are pynas.native.weights'; each step returns its output tensor id. "
                      "threads: 1..MAX_THREADS (ValueError otherwise, before any thread starts); "
                      "ThreadStartError if the system refuses one (the threads started are joined first).")
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
                           int residual, int groups, bool shuffle) {
             check_ndim(w, "weights", 2, "Cout x (Cin / groups)");
             const size_t cin = n.shape(x).c;
             if (groups < 1 || cin % groups != 0)
               throw std::invalid_argument("groups: expected a divisor of Cin = " + std::to_string(cin) + ", got " +
                                           std::to_string(groups));
             if (static_cast<size_t>(w.shape(1)) != cin / groups)
               throw std::invalid_argument("weights: expected Cout x " + std::to_string(cin / groups) +
                                           " (Cin / groups)");
             expect_size(b, w.shape(0), "bias");
             return n.pointwise(x, w.data(), b.data(), w.shape(0), parse_act(act), residual, groups, shuffle);
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("act") = "none", py::arg("residual") = -1,
           py::arg("groups") = 1, py::arg("shuffle") = false,
           "1x1 conv, weights Cout x (Cin / groups): act(x W^T + bias) per group, then the channel shuffle "
           "if shuffle (groups > 1), then + residual.")
      .def("shuffle", &Network::shuffle, py::arg("x"), py::arg("groups"),
           "ShuffleNet's channel shuffle: output channel j * groups + g is input channel g * (C / groups) + j.")
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
      .def("block", [](Network& n, int x, size_t cout, const std::optional<FloatArray>& expand_w,
                       const std::optional<FloatArray>& expand_b, const std::string& expand_act, const FloatArray& dw_w,
                       const FloatArray& dw_b, int stride, const std::string& dw_act,
                       const std::optional<FloatArray>& se_w_reduce, const std::optional<FloatArray>& se_b_reduce,
                       const std::optional<FloatArray>& se_w_expand, const std::optional<FloatArray>& se_b_expand,
                       const std::string& se_act, const std::string& se_gate, const FloatArray& project_w,
                       const FloatArray& project_b, const std::string& project_act, int residual, size_t band_rows) {
             const size_t cin = n.shape(x).c;
             Network::BlockWeights b;
             b.cout = cout;
             if (expand_w.has_value() != expand_b.has_value())
               throw std::invalid_argument("expand_w, expand_b: give both (an inverted residual) or neither");
             if (expand_w) {
               check_ndim(*expand_w, "expand_w", 2, "mid x Cin");
               if (static_cast<size_t>(expand_w->shape(1)) != cin)
                 throw std::invalid_argument("expand_w: expected mid x " + std::to_string(cin));
               b.mid = expand_w->shape(0);
               expect_size(*expand_b, b.mid, "expand_b");
               b.expand_w = expand_w->data();
               b.expand_b = expand_b->data();
               b.expand_act = parse_act(expand_act);
             } else {
               b.mid = cin;
             }
             check_ndim(dw_w, "dw_w", 3, "k x k x mid");
             b.kernel = static_cast<int>(dw_w.shape(0));
             if (dw_w.shape(1) != b.kernel || static_cast<size_t>(dw_w.shape(2)) != b.mid)
               throw std::invalid_argument("dw_w: expected k x k x " + std::to_string(b.mid));
             expect_size(dw_b, b.mid, "dw_b");
             b.dw_w = dw_w.data();
             b.dw_b = dw_b.data();
             b.stride = stride;
             b.dw_act = parse_act(dw_act);
             const int se_given = se_w_reduce.has_value() + se_b_reduce.has_value() + se_w_expand.has_value() +
                                  se_b_expand.has_value();
             if (se_given != 0 && se_given != 4)
               throw std::invalid_argument("se_w_reduce, se_b_reduce, se_w_expand, se_b_expand: give all four or none");
             if (se_given) {
               check_ndim(*se_w_reduce, "se_w_reduce", 2, "R x mid");
               b.se_reduced = se_w_reduce->shape(0);
               expect_size(*se_w_reduce, b.se_reduced * b.mid, "se_w_reduce");
               expect_size(*se_b_reduce, b.se_reduced, "se_b_reduce");
               expect_size(*se_w_expand, b.mid * b.se_reduced, "se_w_expand");
               expect_size(*se_b_expand, b.mid, "se_b_expand");
               if (se_gate != "sigmoid" && se_gate != "hsigmoid")
                 throw std::invalid_argument("se_gate: expected sigmoid or hsigmoid, got '" + se_gate + "'");
               b.se_w_reduce = se_w_reduce->data();
               b.se_b_reduce = se_b_reduce->data();
               b.se_w_expand = se_w_expand->data();
               b.se_b_expand = se_b_expand->data();
               b.se_act = parse_act(se_act);
               b.se_gate = se_gate == "hsigmoid";
             }
             check_ndim(project_w, "project_w", 2, "Cout x mid");
             if (static_cast<size_t>(project_w.shape(0)) != cout || static_cast<size_t>(project_w.shape(1)) != b.mid)
               throw std::invalid_argument("project_w: expected " + std::to_string(cout) + " x " + std::to_string(b.mid));
             expect_size(project_b, cout, "project_b");
             b.project_w = project_w.data();
             b.project_b = project_b.data();
             b.project_act = parse_act(project_act);
             b.band_rows = band_rows;
             return n.block(x, b, residual);
           }, py::arg("x"), py::arg("cout"), py::kw_only(), py::arg("expand_w") = py::none(),
           py::arg("expand_b") = py::none(), py::arg("expand_act") = "none", py::arg("dw_w"), py::arg("dw_b"),
           py::arg("stride"), py::arg("dw_act") = "none", py::arg("se_w_reduce") = py::none(),
           py::arg("se_b_reduce") = py::none(), py::arg("se_w_expand") = py::none(),
           py::arg("se_b_expand") = py::none(), py::arg("se_act") = "re", py::arg("se_gate") = "sigmoid",
           py::arg("project_w"), py::arg("project_b"), py::arg("project_act") = "none", py::arg("residual") = -1,
           py::arg("band_rows") = 0,
           "A fused inverted-residual (expand_w given) or depthwise-separable block, computed in bands of "
           "band_rows output rows (0: sized to half of L2) so the expanded tensor is never written whole.")
      .def("avgpool", &Network::avgpool, py::arg("x"), py::arg("stride"))
      // Cell networks' steps (cpp/network/cell_steps.cc).
      .def("act", [](Network& n, int x, const std::string& act) { return n.act(x, parse_act(act)); },
           py::arg("x"), py::arg("act"))
      .def("pool", [](Network& n, int x, const std::string& kind, int kernel, int stride, int pad) {
             if (kind != "avg" && kind != "max")
               throw std::invalid_argument("kind: expected avg or max, got " + kind);
             return n.pool(x, kind == "max" ? 1 : 0, kernel, stride, pad);
           }, py::arg("x"), py::arg("kind"), py::arg("kernel"), py::arg("stride"), py::arg("pad"),
           "kxk average (padding not counted) or max pooling")
      .def("dwconv_dilated", [](Network& n, int x, const FloatArray& w, const FloatArray& b, int stride, int dilation,
                                const std::string& act) {
             check_ndim(w, "weights", 3, "k x k x C");
             const int k = static_cast<int>(w.shape(0));
             if (w.shape(1) != k || static_cast<size_t>(w.shape(2)) != n.shape(x).c)
               throw std::invalid_argument("weights: expected k x k x C with C=" + std::to_string(n.shape(x).c));
             expect_size(b, n.shape(x).c, "bias");
             return n.dwconv_dilated(x, w.data(), b.data(), k, stride, dilation, parse_act(act));
           }, py::arg("x"), py::arg("weights"), py::arg("bias"), py::arg("stride"), py::arg("dilation"),
           py::arg("act") = "none")
      .def("sum", &Network::sum, py::arg("xs"))
      .def("concat", &Network::concat, py::arg("xs"))
      .def("crop", &Network::crop, py::arg("x"))
      .def("zeros", &Network::zeros, py::arg("h"), py::arg("w"), py::arg("c"))
      .def("affine", [](Network& n, int x, const FloatArray& scale, const FloatArray& shift) {
             expect_size(scale, n.shape(x).c, "scale");
             expect_size(shift, n.shape(x).c, "shift");
             return n.affine(x, scale.data(), shift.data());
           }, py::arg("x"), py::arg("scale"), py::arg("shift"))
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
      .def("step_count", &Network::step_count)
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
           }, py::arg("input"), py::arg("runs"), "Seconds per run, timed in C++ (no Python in the loop).")
      .def("profile", [](Network& n, const FloatArray& x, int runs) {
             check_input(n, x);
             std::vector<float> out(n.shape(n.output()).size());
             py::gil_scoped_release release;
             return n.profile(x.data(), out.data(), runs);
           }, py::arg("input"), py::arg("runs"),
           "Seconds per step per run ([run][step], steps as describe() lists them), timed in C++ inside each run.")
      .def("measure", [](Network& n, const std::vector<FloatArray>& inputs, const py::kwargs& kw) {
        check_measure_inputs(n, inputs, "inputs");
        const HarnessOptions o = harness_options(kw);
        const auto& out = n.shape(n.output());
        std::vector<float> y(out.size());
        TimingStats s;
        {
          py::gil_scoped_release release;
          s = time_calls([&](size_t i) { n.run(inputs[i % inputs.size()].data(), y.data()); }, o);
        }
        return timing_dict(s);
      }, py::arg("inputs"),
      (std::string("Times run() with pynas's harness, rotating through `inputs` (H x W x C arrays). ") + kHarnessOptionsDoc)
          .c_str())
      .def("measure_interleaved", [](Network& n, const std::vector<FloatArray>& inputs, Network& reference,
                                     const std::vector<FloatArray>& reference_inputs, const py::kwargs& kw) {
        check_measure_inputs(n, inputs, "inputs");
        check_measure_inputs(reference, reference_inputs, "reference_inputs");
        const HarnessOptions o = harness_options(kw);
        std::vector<float> y(n.shape(n.output()).size()), ry(reference.shape(reference.output()).size());
        InterleavedStats s;
        {
          py::gil_scoped_release release;
          s = time_interleaved([&](size_t i) { n.run(inputs[i % inputs.size()].data(), y.data()); },
                               [&](size_t i) { reference.run(reference_inputs[i % reference_inputs.size()].data(),
                                                             ry.data()); }, o);
        }
        return interleaved_dict(s);
      }, py::arg("inputs"), py::arg("reference"), py::arg("reference_inputs"),
      (std::string("Times run() as a ratio to `reference`.run(), timed alternately (both in C++, GIL released). ") +
       kInterleavedDoc + kHarnessOptionsDoc).c_str());
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_network)
}  // namespace pynas
