// Exception types of the `offsim` module and the translation of offsim's C++ errors into them. An OOM is
// offsim.OutOfMemoryError (a RuntimeError, as torch.cuda.OutOfMemoryError is) carrying PyTorch's message and
// the figures at the failure; while a virtual CUDA is active the type raised is the subclass it installs, which
// is also a torch.cuda.OutOfMemoryError, so that a cache's `except torch.cuda.OutOfMemoryError` catches it.
#include <Python.h>

#include "bindings.hpp"
#include "offsim/policies/out_of_memory.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::python {

namespace {

// Created once and never freed: exception types live as long as the interpreter.
struct ErrorTypes {
  PyObject* out_of_memory = nullptr;
  PyObject* usage = nullptr;
  PyObject* invalid_size = nullptr;
  PyObject* double_free = nullptr;
  PyObject* wrong_device = nullptr;
  PyObject* config = nullptr;
  PyObject* parse = nullptr;
  PyObject* oom_raised = nullptr;  // the type raised for an OOM: out_of_memory or a subclass
};
ErrorTypes types;

PyObject* make_type(py::module_& m, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("offsim.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.add_object(name, py::handle(type));
  return type;
}

void raise_oom(const policies::OomReport& report) {
  py::object type = py::reinterpret_borrow<py::object>(types.oom_raised);
  py::object error = type(report.message);
  error.attr("requested_bytes") = report.requested;
  error.attr("device_free_bytes") = report.device_free;
  error.attr("reserved_bytes") = report.reserved;
  error.attr("allocated_bytes") = report.allocated;
  error.attr("stranded_bytes") = report.stranded;
  error.attr("largest_free_cached_block") = report.largest_free_cached_block;
  PyErr_SetObject(types.oom_raised, error.ptr());
}

}  // namespace

void bind_errors(py::module_& m) {
  types.out_of_memory = make_type(m, "OutOfMemoryError", PyExc_RuntimeError,
                                  "An allocation on the simulated device did not fit. str() is PyTorch's message; "
                                  "requested_bytes, device_free_bytes, reserved_bytes, allocated_bytes, stranded_bytes "
                                  "are the figures at the failure.");
  types.oom_raised = types.out_of_memory;
  types.usage = make_type(m, "UsageError", PyExc_ValueError,
                          "The simulated device was used as PyTorch would refuse; the message names the call.");
  types.invalid_size = make_type(m, "InvalidSizeError", types.usage, "A negative or absurd size.");
  types.double_free = make_type(m, "DoubleFreeError", types.usage, "A block freed twice.");
  types.wrong_device = make_type(m, "WrongDeviceError", types.usage,
                                 "An allocation or query on a device the virtual CUDA does not have.");
  types.config = make_type(m, "ConfigError", PyExc_ValueError,
                           "Bad settings: an allocator config string, a device, a policy id, a scenario field.");
  types.parse = make_type(m, "ParseError", PyExc_ValueError, "A malformed input file; the message names file and position.");

  m.def(
      "_set_oom_type",
      [](py::object type) {
        if (type.is_none()) {
          types.oom_raised = types.out_of_memory;
          return;
        }
        if (!PyType_Check(type.ptr()) || PyObject_IsSubclass(type.ptr(), types.out_of_memory) != 1) {
          throw py::type_error("_set_oom_type: the type must be a subclass of offsim.OutOfMemoryError");
        }
        Py_INCREF(type.ptr());  // kept for as long as it may be raised
        types.oom_raised = type.ptr();
      },
      "Sets the type raised for OOMs (a subclass of OutOfMemoryError; None: OutOfMemoryError). Used by the virtual "
      "CUDA.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const policies::OutOfMemory& e) {
      raise_oom(e.report());
    } catch (const DoubleFreeError& e) {
      PyErr_SetString(types.double_free, e.what());
    } catch (const InvalidSizeError& e) {
      PyErr_SetString(types.invalid_size, e.what());
    } catch (const AllocatorUsageError& e) {
      PyErr_SetString(types.usage, e.what());
    } catch (const ParseError& e) {
      PyErr_SetString(types.parse, e.what());
    } catch (const ConfigError& e) {
      PyErr_SetString(types.config, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace offsim::python
