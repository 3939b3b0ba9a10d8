#include "bindings.h"

#include <stdexcept>

namespace pynas {

std::vector<Binder>& binders() {
  static std::vector<Binder> all;
  return all;
}

std::string shape_of(const pybind11::array& arr) {
  std::string s;
  for (pybind11::ssize_t i = 0; i < arr.ndim(); ++i) s += (i ? ", " : "") + std::to_string(arr.shape(i));
  return "(" + s + (arr.ndim() == 1 ? ",)" : ")");
}

void check_ndim(const FloatArray& arr, const char* field, int ndim, const char* layout) {
  if (arr.ndim() == ndim) return;
  throw std::invalid_argument(std::string(field) + ": expected a " + std::to_string(ndim) + "-d array " + layout +
                              ", got shape " + shape_of(arr));
}

}  // namespace pynas
