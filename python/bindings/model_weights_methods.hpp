// The Python methods of a model's weights (policies::ModelWeights), shared by the two classes that hold them:
// offsim.ModelWeights (a model on an offsim.Device, kept alive with it) and the models of a run of the runner
// (which answer only while the run's callback is executing, python/bindings/policy.cpp).
#pragma once

#include "bindings.hpp"
#include "offsim/policies/model_weights.hpp"

namespace offsim::python {

/// Defines ModelWeights' methods on `cls`; `weights(holder, call, moves)` returns the ModelWeights to act on, or
/// throws naming `call` when it may not be used (`moves`: the call loads or unloads weights).
template <typename Holder, typename Access>
void def_model_weights_methods(py::class_<Holder>& cls, Access weights) {
  using policies::ModelWeights;
  cls.def_property_readonly("id", [weights](Holder& h) { return weights(h, "id", false).id(); })
      .def_property_readonly("name", [weights](Holder& h) { return weights(h, "name", false).manifest().name; })
      .def_property_readonly("dtype", [weights](Holder& h) { return weights(h, "dtype", false).manifest().dtype; })
      .def_property_readonly("manifest_path", [weights](Holder& h) { return weights(h, "manifest_path", false).manifest().path; })
      .def_property_readonly("total_bytes", [weights](Holder& h) { return weights(h, "total_bytes", false).total_bytes(); })
      .def_property_readonly("device_bytes", [weights](Holder& h) { return weights(h, "device_bytes", false).device_bytes(); })
      .def_property_readonly("tensor_count",
                             [weights](Holder& h) { return weights(h, "tensor_count", false).manifest().tensors.size(); })
      .def("tensor_name", [weights](Holder& h, std::size_t i) { return weights(h, "tensor_name()", false).manifest().tensors.at(i).name; })
      .def("tensor_bytes",
           [weights](Holder& h, std::size_t i) { return weights(h, "tensor_bytes()", false).manifest().tensors.at(i).bytes; })
      .def("on_device", [weights](Holder& h, std::size_t i) { return weights(h, "on_device()", false).on_device(i); },
           py::arg("tensor"))
      .def("load_all", [weights](Holder& h) { return weights(h, "load_all()", true).load_all(); })
      .def("unload_all", [weights](Holder& h, bool copy) { return weights(h, "unload_all()", true).unload_all(copy); },
           py::arg("copy") = true)
      .def("load_up_to", [weights](Holder& h, std::int64_t budget) { return weights(h, "load_up_to()", true).load_up_to(budget); },
           py::arg("budget"))
      .def("unload_at_least",
           [weights](Holder& h, std::int64_t bytes, bool copy) {
             return weights(h, "unload_at_least()", true).unload_at_least(bytes, copy);
           },
           py::arg("bytes"), py::arg("copy") = true)
      .def("load_tensor", [weights](Holder& h, std::size_t i) { return weights(h, "load_tensor()", true).load_tensor(i); },
           py::arg("tensor"))
      .def("unload_tensor",
           [weights](Holder& h, std::size_t i, bool copy) { return weights(h, "unload_tensor()", true).unload_tensor(i, copy); },
           py::arg("tensor"), py::arg("copy") = true);
}

}  // namespace offsim::python
