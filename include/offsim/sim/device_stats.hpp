// Allocator statistics with the fields and meanings of torch.cuda.memory_stats()
// (c10/core/CachingDeviceAllocator.h: Stat, StatArray, DeviceStats).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace offsim::sim {

/// current / peak / allocated (sum of increases) / freed (sum of decreases).
struct Stat {
  std::int64_t current = 0;
  std::int64_t peak = 0;
  std::int64_t allocated = 0;
  std::int64_t freed = 0;

  void increase(std::int64_t amount) {
    current += amount;
    allocated += amount;
    if (current > peak) peak = current;
  }
  void decrease(std::int64_t amount) {
    current -= amount;
    freed += amount;
  }
  void reset_peak() { peak = current; }
  void reset_accumulated() { allocated = freed = 0; }

  friend bool operator==(const Stat&, const Stat&) = default;
};

/// Index into a StatArray: the pool kind of the block or segment a change belongs to.
enum StatType : int { kAggregate = 0, kSmallPool = 1, kLargePool = 2 };
using StatArray = std::array<Stat, 3>;

struct DeviceStats {
  StatArray allocation{};            // live allocations (count)
  StatArray segment{};               // cudaMalloc'd segments (never expandable ones)
  StatArray active{};                // allocated or pending-free blocks (count)
  StatArray inactive_split{};        // free blocks inside split segments (count; non-ES)
  StatArray allocated_bytes{};       // block sizes of live allocations
  StatArray reserved_bytes{};        // bytes obtained from the driver
  StatArray active_bytes{};          // allocated + pending-free block bytes
  StatArray inactive_split_bytes{};  // bytes of inactive_split blocks
  StatArray requested_bytes{};       // raw request sizes of active blocks

  std::int64_t num_alloc_retries = 0;
  std::int64_t num_ooms = 0;
  std::int64_t num_sync_all_streams = 0;
  std::int64_t num_device_alloc = 0;
  std::int64_t num_device_free = 0;

  Stat oversize_allocations{};
  Stat oversize_segments{};
  std::int64_t max_split_size = 0;  // value at allocator construction, as PyTorch reports it

  /// torch.cuda.reset_peak_memory_stats(): peak := current everywhere.
  void reset_peak();
  /// torch.cuda.reset_accumulated_memory_stats().
  void reset_accumulated();

  /// The dictionary torch.cuda.memory_stats() returns, e.g. "allocated_bytes.all.current".
  std::map<std::string, std::int64_t> as_memory_stats_dict() const;

  friend bool operator==(const DeviceStats&, const DeviceStats&) = default;
};

}  // namespace offsim::sim
