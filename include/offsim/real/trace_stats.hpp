// Allocated-bytes accounting over a trace (requested sizes, no allocator rounding or caching): the
// activation peak a CPU recording can state by itself, before replay through the simulated allocator.
#pragma once

#include <cstdint>

#include "offsim/sim/trace.hpp"

namespace offsim::real {

struct LiveBytes {
  std::uint64_t peak = 0;            // max over time of the bytes allocated and not yet freed
  std::uint64_t peak_event = 0;      // index in trace.events of the alloc that reached the peak
  std::uint64_t at_end = 0;          // still allocated after the last event
  std::uint64_t total_allocated = 0; // sum of all alloc sizes
  std::uint64_t total_freed = 0;     // sum of all free_requested sizes
  std::uint64_t allocations = 0;
  std::uint64_t frees = 0;
};

/// kAlloc adds its size, kFreeRequested subtracts its size; other actions are ignored.
LiveBytes live_bytes(const sim::Trace& trace);

}  // namespace offsim::real
