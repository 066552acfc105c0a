// The cudaMallocAsync pool model (backend:cudaMallocAsync) under random malloc / free / empty_cache
// sequences: after every step its statistics recount from the live allocations, the driver holds exactly
// what the pool reserves, reserved is the high-water mark of what was allocated since the last trim (in
// whole driver pages), empty_cache trims to what is allocated, and a request fails exactly when the pool
// could not hold it even trimmed. Freeing everything and emptying the cache gives every byte back.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/async_pool_allocator.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/device.hpp"

namespace offsim::sim {
namespace {

std::uint64_t pages(std::uint64_t bytes, std::uint64_t granularity) {
  return (bytes + granularity - 1) / granularity * granularity;
}

RC_GTEST_PROP(AsyncPoolProperty, ReservedIsTheHighWaterMarkTrimmedByEmptyCache, ()) {
  DeviceSpec spec;
  spec.name = "async pool property";
  spec.total_bytes = *rc::gen::element<std::uint64_t>(1 * GiB, 2 * GiB, 6 * GiB);
  spec.context_bytes = 256 * MiB;
  spec.other_process_bytes = *rc::gen::element<std::uint64_t>(std::uint64_t{0}, 300 * MiB);
  const std::uint64_t g = spec.granularity;
  const std::uint64_t room = spec.total_bytes - spec.context_bytes - spec.other_process_bytes;
  Device device(spec);
  AsyncPoolAllocator pool(device, AllocatorConfig::parse("backend:cudaMallocAsync"));

  // (what, size seed, which live allocation): what 0-5 malloc, 6-8 free, 9 empty_cache.
  const auto ops = *rc::gen::container<std::vector<std::tuple<std::uint8_t, std::uint32_t, std::uint32_t>>>(
      rc::gen::tuple(rc::gen::inRange<std::uint8_t>(0, 10), rc::gen::arbitrary<std::uint32_t>(),
                     rc::gen::arbitrary<std::uint32_t>()));
  std::unordered_map<std::uint64_t, std::uint64_t> live;  // ptr -> requested bytes
  std::uint64_t allocated = 0;
  std::uint64_t high_water = 0;  // since the last trim, in pages
  std::int64_t peak_reserved = 0;
  for (const auto& [what, seed, which] : ops) {
    const auto reserved_before = static_cast<std::uint64_t>(pool.stats().reserved_bytes[kAggregate].current);
    if (what < 6) {
      // Mostly activations below 64 MiB, now and then a large buffer.
      const std::uint64_t size = 1 + (seed % 8 == 0 ? seed % (1 * GiB) : seed % (64 * MiB));
      const bool fits = pages(allocated + size, g) <= room;
      const auto ptr = pool.malloc(size);
      RC_ASSERT(ptr.has_value() == fits);
      if (ptr) {
        live[*ptr] = size;
        allocated += size;
        if (pages(allocated, g) > reserved_before) high_water = pages(allocated, g);
      } else {
        high_water = pages(allocated, g);  // the retry trimmed the pool
      }
    } else if (what < 9 && !live.empty()) {
      auto it = live.begin();
      std::advance(it, which % live.size());
      pool.free(it->first);
      allocated -= it->second;
      live.erase(it);
    } else if (what == 9) {
      pool.empty_cache();
      high_water = pages(allocated, g);
    }
    const DeviceStats& s = pool.stats();
    const auto reserved = static_cast<std::uint64_t>(s.reserved_bytes[kAggregate].current);
    RC_ASSERT(s.allocated_bytes[kAggregate].current == static_cast<std::int64_t>(allocated));
    RC_ASSERT(s.requested_bytes[kAggregate].current == static_cast<std::int64_t>(allocated));
    RC_ASSERT(s.allocation[kAggregate].current == static_cast<std::int64_t>(live.size()));
    RC_ASSERT(reserved == high_water);
    RC_ASSERT(reserved % g == 0);
    RC_ASSERT(reserved >= allocated);
    RC_ASSERT(reserved <= room);
    RC_ASSERT(device.allocator_bytes() == reserved);
    RC_ASSERT(device.mem_get_info().free == spec.total_bytes - spec.context_bytes - spec.other_process_bytes - reserved);
    peak_reserved = std::max(peak_reserved, static_cast<std::int64_t>(reserved));
    RC_ASSERT(s.reserved_bytes[kAggregate].peak == peak_reserved);
  }
  for (const auto& [ptr, size] : live) pool.free(ptr);
  pool.empty_cache();
  RC_ASSERT(pool.stats().reserved_bytes[kAggregate].current == 0);
  RC_ASSERT(pool.stats().allocated_bytes[kAggregate].current == 0);
  RC_ASSERT(device.allocator_bytes() == 0u);
}

}  // namespace
}  // namespace offsim::sim
