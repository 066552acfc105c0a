// The allocator's segment map at one moment (the run's peak, an OOM, a replay divergence), drawn so that
// fragmentation is visible: segments laid end to end in address order and wrapped into rows of equal
// size, each segment a bar outlined at its boundaries, its blocks coloured allocated / pending free /
// inactive inside a segment that still holds live blocks (stranded: split free space that only smaller
// requests can use, never returned on OOM) / free whole segment (releasable by empty_cache).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "offsim/sim/snapshot.hpp"

namespace offsim::report {

/// What a segment map holds, in bytes (the subtitle of the chart; exposed for tests).
struct SegmentMapSummary {
  std::uint64_t segments = 0;
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
  std::uint64_t pending_free = 0;
  std::uint64_t stranded = 0;    // inactive blocks in segments with live blocks
  std::uint64_t releasable = 0;  // whole free segments
  std::uint64_t largest_free_block = 0;
};
/// `segments`: the "segments" array of the eval JSON (address, total_size, blocks[{address, size,
/// requested_size, state}]) or of a snapshot.
SegmentMapSummary summarize_segments(const nlohmann::json& segments);

/// Vega-Lite spec; `title` names the moment.
nlohmann::json segment_map_chart(const nlohmann::json& segments, const std::string& title);

/// Segments in the form the chart reads (the eval JSON's), from the simulator's or a trace's segments.
nlohmann::json segments_json(const std::vector<sim::SegmentInfo>& segments);

}  // namespace offsim::report
