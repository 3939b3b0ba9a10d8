#include "bindings.h"

#include <stdexcept>

namespace pynas {

std::vector<Binder>& binders() {
  static std::vector<Binder> all;
  return all;
}

void check_ndim(const FloatArray& arr, const char* field, int ndim, const char* layout) {
  if (arr.ndim() == ndim) return;
  std::string shape;
  for (pybind11::ssize_t i = 0; i < arr.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(arr.shape(i));
  throw std::invalid_argument(std::string(field) + ": expected a " + std::to_string(ndim) + "-d array " + layout +
                              ", got shape (" + shape + ")");
}

}  // namespace pynas
