// Helpers shared by the real/ tests: run a callable under the allocation recorder, and find scopes and
// allocations in the recording.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/real/recording.hpp"

namespace offsim::real::testing {

inline Recording record(const std::function<void()>& body) {
  AllocationRecorder& recorder = AllocationRecorder::instance();
  recorder.start();
  try {
    body();
  } catch (...) {
    (void)recorder.stop();
    throw;
  }
  return recorder.stop();
}

/// Sizes of the allocations made directly or indirectly inside the scope named `name`.
inline std::vector<std::uint64_t> allocations_in(const Recording& recording, const std::string& name) {
  std::vector<std::uint64_t> sizes;
  const auto scope = recording.find_scope(name);
  if (!scope) return sizes;
  for (const RecordedEvent& e : recording.events) {
    if (e.is_alloc && recording.is_within(e.scope, *scope)) sizes.push_back(e.size);
  }
  return sizes;
}

inline bool contains(const std::vector<std::uint64_t>& sizes, std::uint64_t size) {
  for (const std::uint64_t s : sizes) {
    if (s == size) return true;
  }
  return false;
}

}  // namespace offsim::real::testing
