// The pieces of the `offsim._core` extension module, one per concept. Bindings only: every behaviour lives
// in sim/, policies/ and check/; these files convert arguments and results and name things as PyTorch does.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <nlohmann/json.hpp>

namespace offsim::python {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_device(py::module_& m);
void bind_policy(py::module_& m);
void bind_checks(py::module_& m);

/// A JSON value as the Python value json.loads would give (dicts, lists, ints, ...).
py::object to_python(const nlohmann::json& value);
/// A size argument: an int (>= 0) or a string such as "44.98GiB" (parse_bytes). `call` and `what` name it in
/// errors (InvalidSizeError for a negative int, ConfigError for a bad string, TypeError otherwise).
std::uint64_t bytes_argument(const char* call, const char* what, py::handle value);
/// `root` itself, or when empty the offsim checkout the package knows (offsim.paths.root(): OFFSIM_ROOT, else the
/// checkout this build came from).
std::string root_or_default(const std::string& root);

}  // namespace offsim::python
