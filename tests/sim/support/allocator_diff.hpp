// Readable differences between two allocators' observable states, for the differential property's
// failure messages.
#pragma once

#include <string>
#include <vector>

#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim::test {

/// "allocated_bytes.all.current: 512 vs 1024" per differing memory_stats() key; empty when equal.
std::vector<std::string> stats_differences(const DeviceStats& a, const DeviceStats& b);

/// "segment_alloc addr=0x.. size=.. stream=.. t=.." one per line.
std::string describe(const std::vector<TraceEvent>& events);

/// The first differing segment (or the segment count), both sides printed; empty when equal.
std::string snapshot_difference(const Snapshot& a, const Snapshot& b);

/// Every field of two OOM records (PyTorch's and offsim's free-cache extras); empty when equal.
std::vector<std::string> oom_differences(const OomInfo& a, const OomInfo& b);

/// Every field of two fragmentation summaries; empty when equal.
std::vector<std::string> fragmentation_differences(const FragmentationInfo& a, const FragmentationInfo& b);

}  // namespace offsim::sim::test
