// Python view of the kernel list: every variant, and which one each op runs with here.
#include "bindings.h"
#include "kernels/registry.h"

namespace py = pybind11;

namespace pynas {
namespace {

void bind_registry(py::module_& m) {
  m.def("kernel_variants", [] {
    py::list out;
    for (const KernelVariant& v : kernel_variants()) {
      py::dict d;
      d["op"] = v.op;
      d["name"] = v.name;
      d["isa"] = v.isa;
      d["runnable"] = isa_runnable(v.isa);
      out.append(d);
    }
    return out;
  }, "Every compiled kernel variant, best first within an op: op, name, isa, runnable here.");
  m.def("selected_kernels", [] {
    py::dict out;
    for (const KernelVariant& v : kernel_variants())
      if (!out.contains(v.op)) out[v.op] = select_kernel(v.op).name;
    return out;
  }, "The variant each op runs with on this CPU (honours PYNAS_ISA).");
  m.def("native_backend_version", &native_backend_version,
        "The native backend's version string: pynas==VERSION+<gemm>+<dwconv>+<conv>+<se> selected variants "
        "(the one pynas-profile records too).");
}

}  // namespace
PYNAS_REGISTER_BINDINGS(bind_registry)
}  // namespace pynas
