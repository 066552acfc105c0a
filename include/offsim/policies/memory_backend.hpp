// The device memory a policy runs against. Two implementations exist: the simulator (SimBackend, this
// module) and the real CUDA caching allocator (real/cuda_backend), so the same policy code runs on both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::policies {

using sim::MemInfo;
using sim::StreamId;

/// The statistics a policy may read (torch.cuda.memory_allocated / memory_reserved / active bytes and
/// their peaks since the last reset).
struct MemoryStats {
  std::uint64_t allocated = 0;
  std::uint64_t reserved = 0;
  std::uint64_t active = 0;
  std::uint64_t peak_allocated = 0;
  std::uint64_t peak_reserved = 0;
  std::uint64_t num_ooms = 0;
};

/// What an allocation failure looked like, for diagnosis.
struct OomReport {
  std::uint64_t requested = 0;
  std::string message;             // PyTorch's OutOfMemoryError text
  std::uint64_t device_free = 0;   // cudaMemGetInfo free at the failure
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
  std::uint64_t stranded = 0;      // free bytes inside segments that hold live blocks
  std::uint64_t largest_free_cached_block = 0;
};

class MemoryBackend {
 public:
  virtual ~MemoryBackend() = default;

  /// Allocates `bytes` (one tensor's storage) on `stream`; returns its address or nullopt on OOM
  /// (last_oom() says why). Failure here is a failure of the caller unless it handles it.
  virtual std::optional<std::uint64_t> allocate(std::uint64_t bytes, StreamId stream = 0) = 0;
  virtual void free(std::uint64_t address) = 0;
  /// torch.cuda.mem_get_info()
  virtual MemInfo mem_get_info() const = 0;
  virtual MemoryStats stats() const = 0;
  /// Every counter of torch.cuda.memory_stats(), where the backend keeps them (the simulator does).
  virtual std::optional<sim::DeviceStats> device_stats() const { return std::nullopt; }
  /// torch.cuda.empty_cache()
  virtual void empty_cache() = 0;
  /// torch.cuda.reset_peak_memory_stats()
  virtual void reset_peak_stats() = 0;
  virtual const OomReport& last_oom() const = 0;
  /// Human name, e.g. "sim:native (PyTorch 2.11)" or "cuda:NVIDIA H100 80GB HBM3".
  virtual std::string name() const = 0;
};

}  // namespace offsim::policies
