#include <string>

#include "bindings.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::python {

py::object to_python(const nlohmann::json& value) {
  return py::module_::import("json").attr("loads")(value.dump());
}

std::uint64_t bytes_argument(const char* call, const char* what, py::handle value) {
  if (py::isinstance<py::str>(value)) return parse_bytes(value.cast<std::string>(), std::string(call) + " " + what);
  if (py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value)) {
    const auto big = value.cast<py::int_>();
    if (big < py::int_(0)) {
      throw InvalidSizeError(std::string(call) + ": " + what + " = " + std::string(py::str(value)) + " cannot be negative");
    }
    if (big >= py::int_(std::uint64_t{1} << 62)) {
      throw InvalidSizeError(std::string(call) + ": " + what + " = " + std::string(py::str(value)) + " is too large");
    }
    return big.cast<std::uint64_t>();
  }
  throw py::type_error(std::string(call) + ": " + what + " must be an int number of bytes or a string such as \"24GiB\", not " +
                       std::string(py::str(py::type::of(value).attr("__name__"))));
}

std::string root_or_default(const std::string& root) {
  if (!root.empty()) return root;
  return py::module_::import("offsim.paths").attr("root")().cast<std::string>();
}

}  // namespace offsim::python
