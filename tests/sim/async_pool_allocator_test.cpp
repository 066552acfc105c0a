// The coarse cudaMallocAsync model: reserved follows the pool's high-water mark and empty_cache trims it;
// an allocation that does not fit is retried after a trim, as CUDAMallocAsyncAllocator does.
#include <gtest/gtest.h>

#include "offsim/sim/async_pool_allocator.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::sim {
namespace {

TEST(AsyncPoolAllocator, ReservedIsTheHighWaterMarkUntilEmptyCache) {
  Device device({"d", Platform::kCuda, 8 * GiB});
  AsyncPoolAllocator a(device, AllocatorConfig::parse("backend:cudaMallocAsync"));
  const auto x = *a.malloc(3 * GiB);
  const auto y = *a.malloc(1 * GiB + 1);
  EXPECT_EQ(a.stats().allocated_bytes[kAggregate].current, static_cast<std::int64_t>(4 * GiB + 1));
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].current, static_cast<std::int64_t>(4 * GiB + 2 * MiB));  // pages
  a.free(x);
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].current, static_cast<std::int64_t>(4 * GiB + 2 * MiB));  // kept
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].current, static_cast<std::int64_t>(1 * GiB + 2 * MiB));  // trimmed
  EXPECT_EQ(device.allocator_bytes(), 1 * GiB + 2 * MiB);
  a.free(y);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].current, 0);
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].peak, static_cast<std::int64_t>(4 * GiB + 2 * MiB));
}

TEST(AsyncPoolAllocator, ReusesPoolMemoryWithoutGrowing) {
  Device device({"d", Platform::kCuda, 8 * GiB});
  AsyncPoolAllocator a(device, AllocatorConfig::parse("backend:cudaMallocAsync"));
  a.free(*a.malloc(2 * GiB));
  const std::int64_t reserved = a.stats().reserved_bytes[kAggregate].current;
  for (int i = 0; i < 8; ++i) a.free(*a.malloc(256 * MiB));
  EXPECT_EQ(a.stats().reserved_bytes[kAggregate].current, reserved);
}

TEST(AsyncPoolAllocator, OomAfterTheTrimRetryFails) {
  Device device({"d", Platform::kCuda, 4 * GiB});
  AsyncPoolAllocator a(device, AllocatorConfig::parse("backend:cudaMallocAsync"));
  const auto x = *a.malloc(2 * GiB);
  a.free(*a.malloc(1 * GiB));  // the pool keeps 3 GiB
  // 2 GiB more does not fit beside the 3 GiB pool, but does after trimming the free 1 GiB.
  const auto y = a.malloc(2 * GiB - 4 * MiB);
  ASSERT_TRUE(y.has_value());
  EXPECT_FALSE(a.malloc(1 * GiB).has_value());
  EXPECT_EQ(a.stats().num_ooms, 1);
  EXPECT_NE(a.last_oom().message().find("CUDA out of memory"), std::string::npos);
  a.free(x);
  a.free(*y);
  EXPECT_THROW(a.free(*y), AllocatorUsageError);
}

}  // namespace
}  // namespace offsim::sim
