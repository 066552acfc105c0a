// A device, a trace sink and an allocator built on them, for tests that run the same scenario through
// CachingAllocator and ReferenceAllocator alike (both have the same public surface).
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim {

// GoogleTest printers (found by argument-dependent lookup): "segment_alloc" instead of "1-byte object".
inline void PrintTo(TraceAction action, std::ostream* os) { *os << to_string(action); }
inline void PrintTo(BlockState state, std::ostream* os) { *os << to_string(state); }

}  // namespace offsim::sim

namespace offsim::sim::test {

/// A simulated GPU with `total` bytes as the driver reports them and `context` bytes already taken by
/// the CUDA context.
inline DeviceSpec gpu_spec(std::uint64_t total, std::uint64_t context = 0) {
  DeviceSpec spec;
  spec.name = "test GPU";
  spec.total_bytes = total;
  spec.context_bytes = context;
  return spec;
}

template <typename Allocator>
class AllocatorHarness {
 public:
  AllocatorHarness(const DeviceSpec& spec, std::string_view settings,
                   const VersionProfile& profile = VersionProfile::newest(),
                   EventCompletion completion = EventCompletion::kAtNextMalloc)
      : device_(std::make_unique<Device>(spec)),
        trace_(std::make_unique<std::vector<TraceEvent>>()),
        allocator_(std::make_unique<Allocator>(*device_, AllocatorConfig::parse(settings, profile), profile,
                                               completion)) {
    allocator_->set_trace_sink(trace_.get());
  }

  Allocator& alloc() { return *allocator_; }
  const Allocator& alloc() const { return *allocator_; }
  Device& device() { return *device_; }
  std::vector<TraceEvent>& trace() { return *trace_; }
  const DeviceStats& stats() const { return allocator_->stats(); }

  /// `<stat>.all.current` style accessors.
  std::int64_t current(StatArray DeviceStats::*stat, StatType type = kAggregate) const {
    return (stats().*stat)[type].current;
  }
  std::int64_t allocated(StatArray DeviceStats::*stat, StatType type = kAggregate) const {
    return (stats().*stat)[type].allocated;
  }
  std::int64_t reserved() const { return current(&DeviceStats::reserved_bytes); }
  std::int64_t allocated_bytes() const { return current(&DeviceStats::allocated_bytes); }

  /// Trace entries of one kind, in order.
  std::vector<TraceEvent> events(TraceAction action) const {
    std::vector<TraceEvent> out;
    for (const TraceEvent& e : *trace_) {
      if (e.action == action) out.push_back(e);
    }
    return out;
  }
  std::vector<TraceAction> actions() const {
    std::vector<TraceAction> out;
    for (const TraceEvent& e : *trace_) out.push_back(e.action);
    return out;
  }

 private:
  std::unique_ptr<Device> device_;
  std::unique_ptr<std::vector<TraceEvent>> trace_;
  std::unique_ptr<Allocator> allocator_;
};

}  // namespace offsim::sim::test
