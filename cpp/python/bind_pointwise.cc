// Python entry points for the pointwise (1x1) conv on the GEMM kernels: a one-shot function for
// tests and a class holding the packed weights, so benchmarks (and networks) pack once.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings.h"
#include "kernels/gemm.h"

namespace py = pybind11;

namespace pynas {
namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

AlignedFloats aligned_floats(size_t n) {
  const size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  return AlignedFloats(p);
}

// A pointwise conv layer: weights Cout x (Cin / groups) packed per group for one GEMM variant.
class PackedPointwise {
 public:
  PackedPointwise(const FloatArray& weights, const FloatArray& bias, int groups, const std::string& act,
                  const std::string& variant, bool shuffle)
      : act_(parse_act(act)), shuffle_(shuffle) {
    if (groups < 1) throw std::invalid_argument("groups: expected a positive integer, got " + std::to_string(groups));
    check_ndim(weights, "weights", 2, "Cout x (Cin / groups)");
    check_ndim(bias, "bias", 1, "Cout");
    groups_ = static_cast<size_t>(groups);
    cout_ = weights.shape(0);
    cin_g_ = weights.shape(1);
    if (cout_ == 0 || cin_g_ == 0)
      throw std::invalid_argument("weights: expected a non-empty Cout x (Cin / groups) array, got shape " +
                                  shape_of(weights));
    if (cout_ % groups_ != 0)
      throw std::invalid_argument("groups: " + std::to_string(groups) + " does not divide Cout = " +
                                  std::to_string(cout_));
    if (static_cast<size_t>(bias.shape(0)) != cout_)
      throw std::invalid_argument("bias: expected " + std::to_string(cout_) + " values (Cout), got shape " +
                                  shape_of(bias));
    if (shuffle_ && groups_ == 1) shuffle_ = false;  // a shuffle of one group is the identity
    const KernelVariant& v = select_kernel("gemm", variant);
    variant_ = v.name;
    fn_ = reinterpret_cast<GemmFn>(v.fn);
    tile_ = gemm_tile(variant_);
    cout_g_ = cout_ / groups_;
    group_stride_ = gemm_packed_size(cout_g_, cin_g_, tile_.nr, tile_.nr_min);
    group_stride_ = (group_stride_ + 15) / 16 * 16;  // every group's panels start 64-byte aligned
    packed_ = aligned_floats(group_stride_ * groups_);
    for (size_t g = 0; g < groups_; ++g)
      gemm_pack(weights.data() + g * cout_g_ * cin_g_, cin_g_, bias.data() + g * cout_g_, cout_g_, cin_g_, tile_.nr,
                tile_.nr_min, packed_.get() + g * group_stride_);
  }

  py::array run(const FloatArray& x, const py::object& residual_obj, const py::object& out_obj,
                const py::object& rows_obj) const {
    check_ndim(x, "input", 3, "HxWxCin");
    const size_t H = x.shape(0), W = x.shape(1), C = x.shape(2), M = H * W;
    if (C != cin_g_ * groups_)
      throw std::invalid_argument("input: expected " + std::to_string(cin_g_ * groups_) + " channels (Cin = groups * " +
                                  std::to_string(cin_g_) + "), got shape " + shape_of(x));
    const std::string want = "(" + std::to_string(H) + ", " + std::to_string(W) + ", " + std::to_string(cout_) + ")";
    FloatArray residual;
    const float* res = nullptr;
    if (!residual_obj.is_none()) {
      residual = FloatArray::ensure(residual_obj);
      if (!residual) throw std::invalid_argument("residual: expected a float array or None");
      check_ndim(residual, "residual", 3, "HxWxCout");
      if (static_cast<size_t>(residual.shape(0)) != H || static_cast<size_t>(residual.shape(1)) != W ||
          static_cast<size_t>(residual.shape(2)) != cout_)
        throw std::invalid_argument("residual: expected shape " + want + ", got " + shape_of(residual));
      res = residual.data();
    }
    py::array out;
    if (out_obj.is_none()) {
      out = FloatArray({H, W, cout_});
    } else {
      // Written in place: no conversion, so it must already be a C-contiguous float32 array.
      if (!py::isinstance<py::array>(out_obj)) throw std::invalid_argument("out: expected a numpy array or None");
      out = py::reinterpret_borrow<py::array>(out_obj);
      if (!out.dtype().is(py::dtype::of<float>()) || !(out.flags() & py::array::c_style) || !out.writeable() ||
          out.ndim() != 3 || static_cast<size_t>(out.shape(0)) != H || static_cast<size_t>(out.shape(1)) != W ||
          static_cast<size_t>(out.shape(2)) != cout_)
        throw std::invalid_argument("out: expected a writable C-contiguous float32 array of shape " + want);
    }
    float* o = static_cast<float*>(out.mutable_data());
    const float* in = x.data();
    auto overlaps = [&](const float* p, size_t n) { return p < o + M * cout_ && o < p + n; };
    if (overlaps(in, M * C)) throw std::invalid_argument("out: must not overlap the input");
    if (res != nullptr && res != o && overlaps(res, M * cout_))
      throw std::invalid_argument("residual: must be out itself (an in-place add) or not overlap it");
    size_t m_begin = 0, m_end = M;
    if (!rows_obj.is_none()) {
      if (out_obj.is_none()) throw std::invalid_argument("rows: needs out (the rows outside stay as they are)");
      const auto range = rows_obj.cast<std::pair<long long, long long>>();
      if (range.first < 0 || range.first > range.second || static_cast<size_t>(range.second) > M)
        throw std::invalid_argument("rows: expected (begin, end) with 0 <= begin <= end <= H * W = " +
                                    std::to_string(M) + ", got (" + std::to_string(range.first) + ", " +
                                    std::to_string(range.second) + ")");
      m_begin = range.first;
      m_end = range.second;
    }
    {
      py::gil_scoped_release release;
      compute(in, o, res, m_begin, m_end);
    }
    return out;
  }

  // Seconds per call, timed in C++ over `number` calls cycling through `inputs`, all writing one
  // output buffer (as a network reuses its activation buffers): benchmarks without Python overhead.
  double timeit(const std::vector<FloatArray>& inputs, size_t number) const {
    if (inputs.empty()) throw std::invalid_argument("inputs: expected at least one input array");
    if (number == 0) throw std::invalid_argument("number: expected a positive integer");
    const py::ssize_t H = inputs[0].ndim() == 3 ? inputs[0].shape(0) : 0, W = inputs[0].ndim() == 3 ? inputs[0].shape(1) : 0;
    std::vector<const float*> ins;
    for (const FloatArray& x : inputs) {
      check_ndim(x, "inputs", 3, "HxWxCin");
      if (x.shape(0) != H || x.shape(1) != W || static_cast<size_t>(x.shape(2)) != cin_g_ * groups_)
        throw std::invalid_argument("inputs: expected arrays of one shape with " + std::to_string(cin_g_ * groups_) +
                                    " channels, got shape " + shape_of(x));
      ins.push_back(x.data());
    }
    const size_t M = static_cast<size_t>(H * W);
    AlignedFloats out = aligned_floats(M * cout_);
    py::gil_scoped_release release;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < number; ++i) compute(ins[i % ins.size()], out.get(), nullptr, 0, M);
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(t1 - t0).count() / static_cast<double>(number);
  }

  const std::string& variant() const { return variant_; }
  size_t cin() const { return cin_g_ * groups_; }
  size_t cout() const { return cout_; }
  size_t groups() const { return groups_; }
  bool shuffle() const { return shuffle_; }
  py::tuple tile() const { return py::make_tuple(tile_.mr, tile_.nr, tile_.nr_min); }

 private:
  // Rows [m_begin, m_end) of out = act(in * W + bias) per group, then the shuffle, then + res.
  void compute(const float* in, float* out, const float* res, size_t m_begin, size_t m_end) const {
    const size_t cin = cin_g_ * groups_;
    if (!shuffle_) {
      for (size_t g = 0; g < groups_; ++g) {
        GemmArgs a{in + g * cin_g_, cin, packed_.get() + g * group_stride_, out + g * cout_g_, cout_,
                   res ? res + g * cout_g_ : nullptr, cout_, m_end, cout_g_, cin_g_, act_};
        fn_(a, m_begin, m_end);
      }
      return;
    }
    // Shuffled: each block of rows goes through a small cache-resident buffer (the GEMM output of
    // every group), then is shuffled into place, the residual added on the way.
    const size_t rows = std::max<size_t>(16, (32 * 1024) / (4 * cout_));
    AlignedFloats tmp = aligned_floats(rows * cout_);
    for (size_t m0 = m_begin; m0 < m_end; m0 += rows) {
      const size_t n = std::min(m_end - m0, rows);
      for (size_t g = 0; g < groups_; ++g) {
        GemmArgs a{in + m0 * cin + g * cin_g_, cin, packed_.get() + g * group_stride_, tmp.get() + g * cout_g_, cout_,
                   nullptr, 0, n, cout_g_, cin_g_, act_};
        fn_(a, 0, n);
      }
      channel_shuffle(tmp.get(), cout_, out + m0 * cout_, cout_, res ? res + m0 * cout_ : nullptr, cout_, cout_, groups_,
                      0, n);
    }
  }

  Act act_;
  bool shuffle_;
  size_t groups_ = 1, cout_ = 0, cin_g_ = 0, cout_g_ = 0, group_stride_ = 0;
  std::string variant_;
  GemmFn fn_ = nullptr;
  GemmTile tile_{};
  AlignedFloats packed_;
};

py::array pointwise(const FloatArray& input, const FloatArray& weights, const FloatArray& bias, const std::string& act,
                     const py::object& residual, int groups, bool shuffle, const std::string& variant) {
  check_ndim(input, "input", 3, "HxWxCin");
  check_ndim(weights, "weights", 2, "Cout x (Cin / groups)");
  if (groups >= 1 && static_cast<size_t>(weights.shape(1)) * groups != static_cast<size_t>(input.shape(2)))
    throw std::invalid_argument("weights: expected shape (Cout, " +
                                (input.shape(2) % groups == 0 ? std::to_string(input.shape(2) / groups)
                                                              : std::string("Cin / groups")) +
                                ") for Cin = " + std::to_string(input.shape(2)) + " and groups = " +
                                std::to_string(groups) + ", got " + shape_of(weights));
  PackedPointwise layer(weights, bias, groups, act, variant, shuffle);
  return layer.run(input, residual, py::none(), py::none());
}

void bind_pointwise(py::module_& m) {
  m.def("pointwise", &pointwise, py::arg("input"), py::arg("weights"), py::arg("bias"), py::arg("act") = "none",
        py::arg("residual") = py::none(), py::arg("groups") = 1, py::arg("shuffle") = false,
        py::arg("variant") = "",
        "Pointwise (1x1) conv on an HxWxCin float32 array: act(x W^T + bias) per group (weights "
        "Cout x (Cin / groups)), then ShuffleNet's channel shuffle if shuffle, then + residual "
        "(HxWxCout) if given. variant: a 'gemm' name from kernel_variants(), default the best this CPU runs.");
  m.def(
      "gemm_row_chunk",
      [](size_t rows, size_t k, size_t budget_bytes, size_t granule) {
        if (granule == 0) throw std::invalid_argument("granule: expected at least 1 row, got 0");
        return gemm_row_chunk(rows, k, budget_bytes, granule);
      },
      py::arg("rows"), py::arg("k"), py::arg("budget_bytes"), py::arg("granule"),
        "Rows per chunk the GEMM kernels split `rows` A rows of K floats into (at most budget_bytes of "
        "A a chunk, a multiple of granule rows, as even as that allows): each chunk reads every weight once.");
  py::class_<PackedPointwise>(m, "PackedPointwise",
                              "A pointwise conv layer with its weights packed once for one GEMM variant.")
      .def(py::init<const FloatArray&, const FloatArray&, int, const std::string&, const std::string&, bool>(),
           py::arg("weights"), py::arg("bias"), py::arg("groups") = 1, py::arg("act") = "none",
           py::arg("variant") = "", py::arg("shuffle") = false)
      .def("run", &PackedPointwise::run, py::arg("x"), py::arg("residual") = py::none(), py::arg("out") = py::none(),
           py::arg("rows") = py::none(),
           "HxWxCin -> HxWxCout, as pynas._core.pointwise. out: a C-contiguous float32 HxWxCout array to "
           "write (returned; residual may be out itself: an in-place add). rows: (begin, end), only "
           "those output pixels (row-major over H x W) are computed, the rest of out is left as is.")
      .def("timeit", &PackedPointwise::timeit, py::arg("inputs"), py::arg("number"),
           "Seconds per call over `number` calls cycling through `inputs`, timed in C++.")
      .def_property_readonly("variant", &PackedPointwise::variant)
      .def_property_readonly("cin", &PackedPointwise::cin)
      .def_property_readonly("cout", &PackedPointwise::cout)
      .def_property_readonly("groups", &PackedPointwise::groups)
      .def_property_readonly("shuffle", &PackedPointwise::shuffle)
      .def_property_readonly("tile", &PackedPointwise::tile, "(MR, NR, NR_MIN) of the variant");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_pointwise)
}  // namespace pynas
