// Allocator state in the shape of torch.cuda.memory._snapshot(): segments with their blocks, plus the
// per-device trace ring buffer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

enum class BlockState : std::uint8_t { kActiveAllocated, kActivePendingFree, kInactive };

/// PyTorch's spelling: "active_allocated", "active_pending_free", "inactive".
std::string_view to_string(BlockState state);

struct BlockInfo {
  std::uint64_t address = 0;
  std::uint64_t size = 0;
  std::uint64_t requested_size = 0;  // stale on inactive blocks, as in PyTorch (spec section 9.4)
  BlockState state = BlockState::kInactive;

  friend bool operator==(const BlockInfo&, const BlockInfo&) = default;
};

struct SegmentInfo {
  int device = 0;
  std::uint64_t address = 0;
  std::uint64_t total_size = 0;
  std::uint64_t allocated_size = 0;  // sum of allocated blocks
  std::uint64_t active_size = 0;     // allocated + pending-free blocks
  std::uint64_t requested_size = 0;  // sum of requested_size of active blocks
  StreamId stream = 0;
  bool is_small = false;  // segment_type "small" / "large"
  std::pair<std::uint64_t, std::uint64_t> pool_id{0, 0};
  bool is_expandable = false;  // one entry per contiguous mapped run of an expandable segment
  std::vector<BlockInfo> blocks;  // in address order, tiling the segment

  friend bool operator==(const SegmentInfo&, const SegmentInfo&) = default;
};

struct Snapshot {
  std::vector<SegmentInfo> segments;               // sorted by address
  std::vector<std::vector<TraceEvent>> device_traces;  // index = device
  std::string alloc_conf;                          // allocator_settings["PYTORCH_CUDA_ALLOC_CONF"]

  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

}  // namespace offsim::sim
