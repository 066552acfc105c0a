// A command line offsim cannot act on (exit code 64, docs/exit_codes.md): an unknown option value, a
// count out of range, options that contradict each other. Kept apart from ConfigError, which the
// libraries also raise for settings read from files (exit code 2).
#pragma once

#include <type_traits>

#include "offsim/sim/errors.hpp"

namespace offsim::cli {

class UsageError : public Error {
 public:
  using Error::Error;
};

/// Interprets a value that came from the command line: a ConfigError raised while doing so (an unknown
/// policy, a malformed size, a bad PYTORCH_CUDA_ALLOC_CONF string) is the command line's fault.
template <typename F>
auto from_command_line(F&& interpret) -> std::invoke_result_t<F&> {
  try {
    return interpret();
  } catch (const ConfigError& e) {
    throw UsageError(e.what());
  }
}

}  // namespace offsim::cli
