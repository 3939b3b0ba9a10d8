// pynas._core.LatencyTable: the compiled latency lookup table (table.h) on numpy arrays.
// pynas.predictor.table builds it from a space's TableLayout; this is its private constructor.
#include <pybind11/stl.h>

#include "bindings.h"
#include "predictor/table.h"

namespace py = pybind11;

namespace pynas {
namespace {

using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// Layout arrays are small integers: forcecast is fine there, but a float (e.g. 1.5) must not be
// truncated silently, so the dtype is checked first.
std::vector<int32_t> int_vector(const py::handle& obj, const std::string& field) {
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
    throw std::invalid_argument(field + ": expected a 1-d integer array");
  if (a.ndim() != 1) throw std::invalid_argument(field + ": expected a 1-d integer array, got shape " + shape_of(a));
  IntArray v = IntArray::ensure(a);
  return std::vector<int32_t>(v.data(), v.data() + v.size());
}

std::vector<float> float_vector(const py::handle& obj, const std::string& field, int ndim) {
  FloatArray a = FloatArray::ensure(obj);
  if (!a) throw std::invalid_argument(field + ": expected a float32 array");
  check_ndim(a, field.c_str(), ndim, ndim == 2 ? "states x chunks" : "");
  return std::vector<float>(a.data(), a.data() + a.size());
}

py::object item(const py::dict& d, const char* key, const std::string& where) {
  if (!d.contains(key)) throw std::invalid_argument(where + ": expected a key '" + key + "'");
  return d[key];
}

LatencyTable make_table(const py::handle& cardinalities, std::vector<std::string> decision_names,
                        std::vector<std::string> state_names, int32_t initial_state, const py::list& blocks,
                        const py::handle& head, double constant_ms) {
  TableSpec spec;
  spec.cardinalities = int_vector(cardinalities, "cardinalities");
  spec.decision_names = std::move(decision_names);
  spec.state_names = std::move(state_names);
  spec.initial_state = initial_state;
  for (size_t i = 0; i < blocks.size(); ++i) {
    std::string where = "blocks[" + std::to_string(i) + "]";
    if (!py::isinstance<py::dict>(blocks[i])) throw std::invalid_argument(where + ": expected a dict");
    const py::dict d = blocks[i].cast<py::dict>();
    TableBlock b;
    b.name = item(d, "name", where).cast<std::string>();
    where = "blocks[" + b.name + "]";  // as the table's own errors name it
    b.chunk_tokens = int_vector(item(d, "chunk_tokens", where), where + ".chunk_tokens");
    b.repeats_token = item(d, "repeats_token", where).cast<int32_t>();
    b.repeats = int_vector(item(d, "repeats", where), where + ".repeats");
    b.state_token = item(d, "state_token", where).cast<int32_t>();
    b.next_state = int_vector(item(d, "next_state", where), where + ".next_state");
    b.first = float_vector(item(d, "first", where), where + ".first", 2);
    b.rest = float_vector(item(d, "rest", where), where + ".rest", 1);
    spec.blocks.push_back(std::move(b));
  }
  spec.head = float_vector(head, "head", 1);
  spec.constant_ms = constant_ms;
  return LatencyTable(std::move(spec));
}

template <typename T>
py::array_t<float> predict(const LatencyTable& table, const py::array& tokens) {
  // Only a C-contiguous copy if needed: same dtype, so no value changes.
  auto rows = py::array_t<T, py::array::c_style>::ensure(tokens);
  const size_t n = rows.shape(0), d = rows.shape(1);
  py::array_t<float> out(n);
  const T* data = rows.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    table.predict_batch(data, n, d, dst);
  }
  return out;
}

py::array_t<float> predict_batch(const LatencyTable& table, const py::array& tokens) {
  if (tokens.ndim() != 2)
    throw std::invalid_argument("tokens: expected a 2-d array N x " + std::to_string(table.n_decisions()) +
                                " (one row per architecture), got shape " + shape_of(tokens));
  // No casting: a float array would be truncated silently; Python converts other integer dtypes.
  if (tokens.dtype().equal(py::dtype::of<int32_t>())) return predict<int32_t>(table, tokens);
  if (tokens.dtype().equal(py::dtype::of<int64_t>())) return predict<int64_t>(table, tokens);
  throw std::invalid_argument("tokens: expected an int32 or int64 array, got dtype " +
                              py::str(tokens.dtype()).cast<std::string>());
}

void bind_table(py::module_& m) {
  py::register_exception<UnpricedCellError>(m, "UnpricedCellError", PyExc_ValueError);
  py::class_<LatencyTable>(m, "LatencyTable",
                           "Compiled latency lookup table (cpp/predictor/table.h); build it with "
                           "pynas.predictor.table.compile_table.")
      .def(py::init(&make_table), py::arg("cardinalities"), py::arg("decision_names"), py::arg("state_names"),
           py::arg("initial_state"), py::arg("blocks"), py::arg("head"), py::arg("constant_ms"),
           "blocks: one dict per slot with name, chunk_tokens, repeats_token (-1 fixed), repeats, "
           "state_token (-1 fixed), next_state, first (states x chunks float32), rest (chunks).")
      .def("predict_batch", &predict_batch, py::arg("tokens"),
           "tokens: N x D int32 or int64 array -> N float32 ms. ValueError naming the row and decision "
           "for a bad token; UnpricedCellError (a ValueError) for a row reading a NaN cell. Releases the GIL.")
      .def_property_readonly("n_decisions", &LatencyTable::n_decisions)
      .def_property_readonly("n_blocks", &LatencyTable::n_blocks)
      .def_property_readonly("n_states", &LatencyTable::n_states);
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_table)
}  // namespace pynas
