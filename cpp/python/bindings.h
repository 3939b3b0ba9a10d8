// Self-registering Python bindings: each bind_*.cc adds its functions to pynas._core with
// PYNAS_REGISTER_BINDINGS(fn), so adding an op family never touches core_module.cc.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "kernels/act_name.h"  // parse_act: ValueError (std::invalid_argument) on an unknown name
#include "kernels/common.h"

namespace pynas {

using Binder = void (*)(pybind11::module_&);
std::vector<Binder>& binders();
inline int register_binder(Binder binder) {
  binders().push_back(binder);
  return 0;
}
#define PYNAS_REGISTER_BINDINGS(fn) static const int pynas_binder_##fn = ::pynas::register_binder(&fn);

using FloatArray = pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast>;

// "(d0, d1, ...)", "(d0,)": an array's shape as Python writes it, for error messages.
std::string shape_of(const pybind11::array& arr);

// Throws ValueError "<field>: expected <ndim>-d array ..., got shape (...)" unless arr has that ndim.
void check_ndim(const FloatArray& arr, const char* field, int ndim, const char* layout);

}  // namespace pynas
