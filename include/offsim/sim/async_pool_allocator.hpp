// A coarse model of PyTorch's cudaMallocAsync backend (c10/cuda/CUDAMallocAsyncAllocator.cpp): allocations
// come from the driver's stream-ordered memory pool, whose reserved memory grows to the high-water mark of
// what is allocated (PyTorch sets the pool's release threshold to UINT64_MAX, so nothing is returned at
// synchronizations) and is trimmed back by empty_cache (cudaMemPoolTrimTo). There are no segments and no
// fragmentation inside the pool: the driver's pool allocator is not public, so everything this model says
// is approximate and labelled so. ComfyUI turns this backend on by default for CUDA builds of torch >= 2.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

class AsyncPoolAllocator {
 public:
  /// The pool grows in whole pages of the device's granularity.
  AsyncPoolAllocator(Device& device, AllocatorConfig config);

  /// nullopt on OOM, after the retry upstream makes (synchronize, trim the pool, try once more).
  std::optional<std::uint64_t> malloc(std::uint64_t size, StreamId stream = 0);
  void free(std::uint64_t ptr);
  /// torch.cuda.empty_cache(): trim the pool to what is allocated.
  void empty_cache();

  const DeviceStats& stats() const { return stats_; }
  void reset_peak_stats() { stats_.reset_peak(); }
  const OomInfo& last_oom() const { return last_oom_; }
  FragmentationInfo fragmentation() const;
  void set_trace_sink(std::vector<TraceEvent>* sink) { trace_ = sink; }
  void set_time_us(std::int64_t t) { time_us_ = t; }
  const AllocatorConfig& config() const { return config_; }

 private:
  bool grow_to(std::uint64_t reserved);
  void set_reserved(std::uint64_t reserved);
  void record(TraceAction action, std::uint64_t addr, std::uint64_t size, StreamId stream);

  Device* device_;
  AllocatorConfig config_;
  DeviceStats stats_;
  std::unordered_map<std::uint64_t, std::uint64_t> live_;  // ptr -> size
  std::uint64_t allocated_ = 0;
  std::uint64_t reserved_ = 0;
  std::uint64_t next_ptr_ = 0x7e0000000000ULL;
  OomInfo last_oom_;
  std::vector<TraceEvent>* trace_ = nullptr;
  std::int64_t time_us_ = 0;
};

}  // namespace offsim::sim
