// MemoryBackend over the simulated device and allocator: PyTorch's native caching allocator, or the coarse
// cudaMallocAsync pool model when the settings say backend:cudaMallocAsync (labelled approximate).
#pragma once

#include <memory>
#include <vector>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/async_pool_allocator.hpp"
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
  std::optional<sim::DeviceStats> device_stats() const override;
  void empty_cache() override;
  void reset_peak_stats() override;
  const OomReport& last_oom() const override;
  std::string name() const override;

  /// True for the cudaMallocAsync pool model: no segments, no fragmentation inside the pool.
  bool approximate() const { return async_ != nullptr; }
  /// The segment map (empty for the pool model) and fragmentation, whichever allocator runs.
  std::vector<sim::SegmentInfo> segments() const;
  sim::FragmentationInfo fragmentation() const;
  /// per_process_memory_fraction's cap on reserved bytes (none under the pool model, which has no cap).
  std::optional<std::uint64_t> memory_limit() const;
  /// Timestamp stamped on later trace entries.
  void set_time_us(std::int64_t time_us);

  /// The simulated pieces, for inspection and for device-side events. allocator() is the native caching
  /// allocator; it throws ConfigError under backend:cudaMallocAsync.
  sim::Device& device() { return *device_; }
  const sim::Device& device() const { return *device_; }
  sim::CachingAllocator& allocator();
  const sim::CachingAllocator& allocator() const;
  /// Every allocator event since construction (or the last clear).
  std::vector<sim::TraceEvent>& trace() { return trace_; }
  const std::vector<sim::TraceEvent>& trace() const { return trace_; }

 private:
  std::unique_ptr<sim::Device> device_;
  std::unique_ptr<sim::CachingAllocator> allocator_;   // backend:native
  std::unique_ptr<sim::AsyncPoolAllocator> async_;     // backend:cudaMallocAsync
  std::vector<sim::TraceEvent> trace_;
  OomReport last_oom_;
};

}  // namespace offsim::policies
