// Python entry points for the fully connected kernels.
#include "bindings.h"
#include "kernels/fc.h"

namespace py = pybind11;

namespace pynas {
namespace {

}  // namespace

// Shared with bind_se.cc: (out_c, in_c) -> packed (ceil(out_c / 16), in_c, 16); a 3-d array is taken as
// already packed and checked against out_c / in_c. `field` names the argument in errors.
FloatArray fc_weights(const FloatArray& w, size_t out_c, size_t in_c, const char* field) {
  const size_t blocks = (out_c + kPackBlock - 1) / kPackBlock;
  if (w.ndim() == 2) {
    if (static_cast<size_t>(w.shape(0)) != out_c || static_cast<size_t>(w.shape(1)) != in_c)
      throw std::invalid_argument(std::string(field) + ": expected shape (" + std::to_string(out_c) + ", " +
                                  std::to_string(in_c) + "), got " + shape_of(w));
    FloatArray packed({blocks, in_c, kPackBlock});
    conv_pack_weights(w.data(), out_c, 1, in_c, packed.mutable_data());
    return packed;
  }
  if (w.ndim() == 3 && static_cast<size_t>(w.shape(0)) == blocks && static_cast<size_t>(w.shape(1)) == in_c &&
      static_cast<size_t>(w.shape(2)) == kPackBlock)
    return w;
  throw std::invalid_argument(std::string(field) + ": expected shape (" + std::to_string(out_c) + ", " +
                              std::to_string(in_c) + ") or fc_pack's (" + std::to_string(blocks) + ", " +
                              std::to_string(in_c) + ", 16), got " + shape_of(w));
}

namespace {

FloatArray fc_pack(const FloatArray& w) {
  check_ndim(w, "weights", 2, "(out_c, in_c)");
  if (w.shape(0) == 0 || w.shape(1) == 0) throw std::invalid_argument("weights: expected a non-empty (out_c, in_c) array");
  return fc_weights(w, w.shape(0), w.shape(1), "weights");
}

FloatArray fully_connected(const FloatArray& input, const FloatArray& weights, const FloatArray& bias,
                           const std::string& act, const std::string& variant) {
  check_ndim(input, "input", 1, "(in_c,)");
  check_ndim(bias, "bias", 1, "(out_c,)");
  const size_t in_c = input.shape(0), out_c = bias.shape(0);
  if (in_c == 0) throw std::invalid_argument("input: expected at least one value");
  if (out_c == 0) throw std::invalid_argument("bias: expected at least one output");
  const FloatArray packed = fc_weights(weights, out_c, in_c, "weights");
  const Act a_act = parse_act(act);
  const FcFn fn = kernel_fn<FcFn>("fc", variant);
  FloatArray output(out_c);
  const FcArgs a{input.data(), packed.data(), bias.data(), output.mutable_data(), in_c, out_c, a_act};
  {
    py::gil_scoped_release release;
    fn(a);
  }
  return output;
}

void bind_fc(py::module_& m) {
  m.def("fc_pack", &fc_pack, py::arg("weights"),
        "Packs (out_c, in_c) float32 fully connected weights into the kernels' layout (ceil(out_c / 16), in_c, 16).");
  m.def("fully_connected", &fully_connected, py::arg("input"), py::arg("weights"), py::arg("bias"),
        py::arg("act") = "none", py::arg("variant") = "",
        "y = act(W x + b) for a float32 vector x. weights: (out_c, in_c) or fc_pack's output.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_fc)
}  // namespace pynas
