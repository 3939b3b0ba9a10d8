// Python entry points for the regular conv kernels (tests, benchmarks, per-op timing).
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "kernels/conv.h"

namespace py = pybind11;

namespace pynas {
namespace {

bool valid_kernel(py::ssize_t k) { return k == 1 || k == 3 || k == 5 || k == 7; }

FloatArray conv_pack(const FloatArray& weights) {
  check_ndim(weights, "weights", 4, "(out_c, k, k, in_c)");
  const py::ssize_t cout = weights.shape(0), k = weights.shape(1), cin = weights.shape(3);
  if (weights.shape(2) != k || !valid_kernel(k) || cout == 0 || cin == 0)
    throw std::invalid_argument("weights: expected shape (out_c, k, k, in_c) with k in 1, 3, 5, 7, got " +
                                shape_of(weights));
  const size_t blocks = (static_cast<size_t>(cout) + kPackBlock - 1) / kPackBlock;
  FloatArray packed({blocks, static_cast<size_t>(k), static_cast<size_t>(k), static_cast<size_t>(cin), kPackBlock});
  conv_pack_weights(weights.data(), cout, static_cast<int>(k), cin, packed.mutable_data());
  return packed;
}

FloatArray conv2d(const FloatArray& input, const FloatArray& weights, const FloatArray& bias, int stride,
                  const std::string& act, const std::optional<FloatArray>& residual, const std::string& variant,
                  size_t rows_per_call, const py::object& out) {
  check_ndim(input, "input", 3, "HxWxC");
  check_ndim(bias, "bias", 1, "out_c");
  const size_t H = input.shape(0), W = input.shape(1), Cin = input.shape(2), Cout = bias.shape(0);
  if (H == 0 || W == 0 || Cin == 0) throw std::invalid_argument("input: expected a non-empty HxWxC array, got " + shape_of(input));
  if (Cout == 0) throw std::invalid_argument("bias: expected at least one output channel");
  FloatArray packed;
  if (weights.ndim() == 4) {
    if (static_cast<size_t>(weights.shape(0)) != Cout)
      throw std::invalid_argument("weights: expected " + std::to_string(Cout) + " output channels (bias has " +
                                  std::to_string(Cout) + "), got shape " + shape_of(weights));
    packed = conv_pack(weights);
  } else if (weights.ndim() == 5) {
    packed = weights;
    if (static_cast<size_t>(packed.shape(0)) != (Cout + kPackBlock - 1) / kPackBlock ||
        static_cast<size_t>(packed.shape(4)) != kPackBlock || packed.shape(1) != packed.shape(2) ||
        !valid_kernel(packed.shape(1)))
      throw std::invalid_argument("weights: expected conv_pack output of shape (" +
                                  std::to_string((Cout + kPackBlock - 1) / kPackBlock) + ", k, k, in_c, 16), got " +
                                  shape_of(packed));
  } else {
    throw std::invalid_argument("weights: expected (out_c, k, k, in_c) or conv_pack's 5-d array, got shape " +
                                shape_of(weights));
  }
  const int k = static_cast<int>(packed.shape(1));
  if (static_cast<size_t>(packed.shape(3)) != Cin)
    throw std::invalid_argument("weights: expected " + std::to_string(Cin) + " input channels (input has " +
                                std::to_string(Cin) + "), got shape " + shape_of(weights));
  if (stride != 1 && stride != 2) throw std::invalid_argument("stride: expected 1 or 2, got " + std::to_string(stride));
  const Act a_act = parse_act(act);
  const ConvFn fn = kernel_fn<ConvFn>("conv", variant);
  const int pad = k / 2;
  const size_t OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
  if (residual) {
    check_ndim(*residual, "residual", 3, "HxWxC");
    if (static_cast<size_t>(residual->shape(0)) != OH || static_cast<size_t>(residual->shape(1)) != OW ||
        static_cast<size_t>(residual->shape(2)) != Cout)
      throw std::invalid_argument("residual: expected the output shape (" + std::to_string(OH) + ", " +
                                  std::to_string(OW) + ", " + std::to_string(Cout) + "), got " + shape_of(*residual));
  }
  FloatArray output;
  if (out.is_none()) {
    output = FloatArray({OH, OW, Cout});
  } else {
    using Exact = py::array_t<float, py::array::c_style>;
    const std::string want = "(" + std::to_string(OH) + ", " + std::to_string(OW) + ", " + std::to_string(Cout) + ")";
    if (!Exact::check_(out) || !out.cast<py::array>().writeable())
      throw std::invalid_argument("out: expected a writeable C-contiguous float32 array of shape " + want);
    output = out.cast<FloatArray>();
    if (output.ndim() != 3 || static_cast<size_t>(output.shape(0)) != OH || static_cast<size_t>(output.shape(1)) != OW ||
        static_cast<size_t>(output.shape(2)) != Cout)
      throw std::invalid_argument("out: expected shape " + want + ", got " + shape_of(output));
    const char* lo = static_cast<const char*>(static_cast<const void*>(output.data()));
    const char* in_lo = static_cast<const char*>(static_cast<const void*>(input.data()));
    if (lo < in_lo + input.nbytes() && in_lo < lo + output.nbytes())
      throw std::invalid_argument("out: must not overlap input");
    if (residual && residual->data() != output.data()) {
      const char* r_lo = static_cast<const char*>(static_cast<const void*>(residual->data()));
      if (lo < r_lo + residual->nbytes() && r_lo < lo + output.nbytes())
        throw std::invalid_argument("out: may be the residual array itself, but not partly overlap it");
    }
  }
  const ConvArgs a{input.data(), packed.data(), bias.data(), residual ? residual->data() : nullptr,
                   output.mutable_data(), H, W, Cin, OH, OW, Cout, k, stride, pad, a_act};
  {
    py::gil_scoped_release release;
    const size_t step = rows_per_call ? rows_per_call : OH;
    for (size_t y = 0; y < OH; y += step) fn(a, y, std::min(OH, y + step));
  }
  return output;
}

void bind_conv(py::module_& m) {
  m.def("conv_pack", &conv_pack, py::arg("weights"),
        "Packs (out_c, k, k, in_c) float32 conv weights (or (out_c, 1, 1, in_c) for a fully connected layer) into "
        "the kernels' layout (ceil(out_c / 16), k, k, in_c, 16), zero-filled past out_c.");
  m.def("conv2d", &conv2d, py::arg("input"), py::arg("weights"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("act") = "none", py::arg("residual") = std::nullopt, py::arg("variant") = "",
        py::arg("rows_per_call") = 0, py::arg("out") = py::none(),
        "Regular kxk conv (k in 1, 3, 5, 7; same padding k // 2) + bias + activation (+ residual added after the "
        "activation) on an HxWxC float32 array. weights: (out_c, k, k, in_c), or conv_pack's output. "
        "variant: a name from kernel_variants(), default the best this CPU runs. rows_per_call > 0 calls the "
        "kernel on output row bands of that many rows (as a fused block would). out: a float32 array of the output "
        "shape to write into (may be the residual array itself: an in-place residual add); returned.");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_conv)
}  // namespace pynas
