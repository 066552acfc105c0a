// MemoryBackend over the simulated device and caching allocator.
#pragma once

#include <memory>
#include <vector>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/trace_event.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::policies {

class SimBackend final : public MemoryBackend {
 public:
  SimBackend(sim::DeviceSpec device, sim::AllocatorConfig config,
             const sim::VersionProfile& profile = sim::VersionProfile::newest());

  std::optional<std::uint64_t> allocate(std::uint64_t bytes, StreamId stream = 0) override;
  void free(std::uint64_t address) override;
  MemInfo mem_get_info() const override;
  MemoryStats stats() const override;
  void empty_cache() override;
  void reset_peak_stats() override;
  const OomReport& last_oom() const override;
  std::string name() const override;

  /// The simulated pieces, for inspection (snapshots, fragmentation) and for device-side events.
  sim::Device& device() { return *device_; }
  sim::CachingAllocator& allocator() { return *allocator_; }
  const sim::CachingAllocator& allocator() const { return *allocator_; }
  /// Every allocator event since construction (or the last clear).
  std::vector<sim::TraceEvent>& trace() { return trace_; }

 private:
  std::unique_ptr<sim::Device> device_;
  std::unique_ptr<sim::CachingAllocator> allocator_;
  std::vector<sim::TraceEvent> trace_;
  OomReport last_oom_;
};

}  // namespace offsim::policies
