// Synthetic allocator traces for the trace I/O tests, consistent by construction: segments appear with
// segment_alloc (or segment_map on one expandable reservation) before blocks are placed in them, blocks
// are freed with free_requested (+ free_completed now or later), empty segments are released. Block
// sizes are requests rounded up to 512 bytes, and a large-pool block never leaves a remainder of 1 MiB or
// less (it asks for the whole gap instead), so the allocator's split rule holds and rewinding the final
// state through the events gives back the starting state exactly.
#pragma once

#include <cstdint>

#include "offsim/sim/trace.hpp"

namespace offsim::test {

struct GeneratedTraceOptions {
  std::uint64_t seed = 1;
  std::size_t events = 2000;
  /// Events before the recorded window starts (the ring buffer dropped them): the returned trace's
  /// initial_segments is the state after them, as PyTorch would have had it.
  std::size_t dropped_prefix = 500;
  bool expandable = true;  // also map/unmap pages of one expandable segment
  int device = 0;
};

/// Trace with initial_segments (state at the window start), events (the window) and final_segments
/// (state at the end), all segments in SegmentState's canonical form.
sim::Trace generate_trace(const GeneratedTraceOptions& options);

}  // namespace offsim::test
