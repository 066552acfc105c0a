#include "offsim/sim/recorded_device.hpp"

#include <algorithm>

#include "offsim/sim/allocator_config.hpp"

namespace offsim::sim {

RecordedDevice read_recorded_device(TraceEventSource& source, bool read_events) {
  RecordedDevice device;
  device.metadata_total = source.metadata().device_total_bytes;
  std::uint64_t reserved = 0;
  for (const SegmentInfo& segment : source.initial_segments()) {
    // The driver hands out whole pages (2 MiB): what the device must hold for this segment.
    device.start_reserved += (segment.total_size + kRoundLarge - 1) / kRoundLarge * kRoundLarge;
    reserved += segment.total_size;
    ++device.start_segments;
    for (const BlockInfo& block : segment.blocks) {
      if (block.state != BlockState::kInactive) device.start_live += block.requested_size != 0 ? block.requested_size : block.size;
    }
  }
  TraceEvent event;
  for (std::size_t i = 0; read_events && source.next(event); ++i) {
    switch (event.action) {
      case TraceAction::kSegmentAlloc:
      case TraceAction::kSegmentMap:
        reserved += event.size;
        break;
      case TraceAction::kSegmentFree:
      case TraceAction::kSegmentUnmap:
        reserved -= std::min(reserved, event.size);
        break;
      case TraceAction::kOom:
        // c10/cuda/CUDACachingAllocator.cpp, malloc: after the release steps failed, cudaMemGetInfo's free
        // bytes go into the trace entry (device_free), so reserved + device_free is the total less whatever
        // else held device memory (context, libraries, other processes).
        device.ooms.push_back({i, reserved, event.addr});
        break;
      default:
        break;
    }
  }
  return device;
}

}  // namespace offsim::sim
