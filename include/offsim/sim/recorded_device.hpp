// What a trace says about the device it was recorded on, before any replay: its total as cudaMemGetInfo
// reported it (from the trace's metadata, or inferred from a recorded OOM), and the memory the allocator
// held before the first recorded event (the start state a replay loads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

struct RecordedOom {
  std::size_t event_index = 0;
  std::uint64_t reserved = 0;     // the recorded reserved bytes at the entry (after the allocator's own release)
  std::uint64_t device_free = 0;  // cudaMemGetInfo's free bytes, which PyTorch stores in the entry
  std::uint64_t total() const { return reserved + device_free; }
};

struct RecordedDevice {
  /// The metadata's device total (an offsim recording knows it), 0 when unknown.
  std::uint64_t metadata_total = 0;
  /// Every recorded OOM with the total it implies: reserved at that moment + device_free, i.e. the device's
  /// total less the memory outside the allocator, which a PyTorch snapshot does not record.
  std::vector<RecordedOom> ooms;
  std::uint64_t start_reserved = 0;  // bytes of the segments before the first event (driver pages)
  std::size_t start_segments = 0;
  std::uint64_t start_live = 0;  // bytes requested by the blocks live before the first event
};

/// Reads what `source` says: its metadata and start state, and with `read_events` a pass over its events for
/// the OOMs (the source is then left at its end).
RecordedDevice read_recorded_device(TraceEventSource& source, bool read_events = true);

}  // namespace offsim::sim
