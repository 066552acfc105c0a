// The invariants of spec section 8 that tie an allocator's snapshot, its statistics and the driver's
// view together (what PyTorch's _check_memory_stat_consistency verifies, plus tiling and merging).
// Implementation-independent: it only reads the public Snapshot, DeviceStats and Device.
#pragma once

#include <string>
#include <vector>

#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/snapshot.hpp"

namespace offsim::sim::test {

/// One line per violated invariant; empty when the state is consistent.
std::vector<std::string> allocator_state_violations(const Snapshot& snapshot, const DeviceStats& stats,
                                                    const Device& device);

}  // namespace offsim::sim::test
