// offsim._core: the simulated device, the checks and the Python-policy bridge. python/offsim/ is the
// package users import; it re-exports these names.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "offsim's C++ core: PyTorch's CUDA caching allocator simulated, P1-P5 checks, Python policies";
  offsim::python::bind_errors(m);
  offsim::python::bind_device(m);
  offsim::python::bind_policy(m);
  offsim::python::bind_checks(m);
}
