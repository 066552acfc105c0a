// What every offsim fuzz target shares: an input is fine when the reader accepts it or refuses it with an
// offsim::Error (a ParseError naming file, position and field, or another message naming the input).
// Anything else is a finding: a crash or sanitizer report, an uncaught std::exception that the CLI would
// print as "internal error", a timeout (quadratic work), or more memory than the input justifies
// (libFuzzer's -malloc_limit_mb / -rss_limit_mb; fuzz/run.sh sets them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim::fuzz {

/// Runs `read` on the input; offsim::Error is the expected refusal, every other exception escapes.
template <typename Read>
int refuse_or_accept(const std::uint8_t* data, std::size_t size, Read&& read) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    read(std::move(bytes));
  } catch (const offsim::Error&) {
    // A clean refusal.
  }
  return 0;
}

}  // namespace offsim::fuzz
