// The allocator's two trace sinks (std::vector and TraceBuffer) must record the same entries, and
// try_free must behave as free() on live addresses and do nothing on others.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_buffer.hpp"

namespace offsim::sim {
namespace {

TEST(TraceBuffer, KeepsEveryEntryInOrderAcrossGrowthAndClear) {
  TraceBuffer buffer;
  for (std::uint64_t i = 0; i < 1000; ++i) buffer.push(i * 512, i, i % 3, static_cast<std::int64_t>(i), TraceAction::kAlloc);
  ASSERT_EQ(buffer.size(), 1000u);
  for (std::uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(buffer[i].addr, i * 512);
    EXPECT_EQ(buffer[i].size, i);
    EXPECT_EQ(buffer[i].stream, i % 3);
    EXPECT_EQ(buffer[i].time_us, static_cast<std::int64_t>(i));
    EXPECT_EQ(buffer[i].flags, kTraceFlagNone);
  }
  buffer.clear();
  EXPECT_TRUE(buffer.empty());
  buffer.push(1, 2, 3, 4, TraceAction::kSegmentFree);
  ASSERT_EQ(buffer.size(), 1u);
  EXPECT_EQ(buffer[0], (TraceEvent{1, 2, 3, 4, TraceAction::kSegmentFree, kTraceFlagNone}));
}

// Drives two allocators with the same random requests, one into each kind of sink.
TEST(TraceBuffer, RecordsWhatAVectorSinkRecords) {
  Device device_a({"a", Platform::kCuda, 4 * GiB});
  Device device_b({"b", Platform::kCuda, 4 * GiB});
  CachingAllocator a(device_a, AllocatorConfig::parse("max_split_size_mb:64"));
  CachingAllocator b(device_b, AllocatorConfig::parse("max_split_size_mb:64"));
  std::vector<TraceEvent> vector_sink;
  TraceBuffer buffer_sink;
  a.set_trace_sink(&vector_sink);
  b.set_trace_sink(&buffer_sink);
  std::mt19937_64 rng(5);
  std::vector<std::uint64_t> live;
  for (int step = 0; step < 5000; ++step) {
    a.set_time_us(step);
    b.set_time_us(step);
    if (live.empty() || rng() % 100 < 55) {
      const std::uint64_t size = rng() % 10 == 0 ? 32 * MiB + rng() % (400 * MiB) : 1 + rng() % (2 * MiB);
      const auto pa = a.malloc(size);
      const auto pb = b.malloc(size);
      ASSERT_EQ(pa, pb);
      if (pa) live.push_back(*pa);
    } else {
      const std::size_t k = rng() % live.size();
      a.free(live[k]);
      b.free(live[k]);
      live[k] = live.back();
      live.pop_back();
    }
    if (step % 997 == 0) {
      a.empty_cache();
      b.empty_cache();
    }
  }
  ASSERT_EQ(vector_sink.size(), buffer_sink.size());
  for (std::size_t i = 0; i < vector_sink.size(); ++i) ASSERT_EQ(vector_sink[i], buffer_sink[i]) << "entry " << i;

  // nullptr detaches either kind.
  a.set_trace_sink(nullptr);
  b.set_trace_sink(nullptr);
  const std::size_t recorded = vector_sink.size();
  ASSERT_TRUE(a.malloc(1 * MiB).has_value());
  ASSERT_TRUE(b.malloc(1 * MiB).has_value());
  EXPECT_EQ(vector_sink.size(), recorded);
  EXPECT_EQ(buffer_sink.size(), recorded);
}

TEST(CachingAllocatorTryFree, FreesLiveAddressesAndIgnoresOthers) {
  Device device({"d", Platform::kCuda, 1 * GiB});
  CachingAllocator alloc(device, AllocatorConfig::parse(""), VersionProfile::newest(), EventCompletion::kExplicit);
  const std::uint64_t p = *alloc.malloc(4 * MiB);
  const std::uint64_t q = *alloc.malloc(4 * MiB);
  EXPECT_FALSE(alloc.try_free(p + 512));  // inside a block, not its address
  EXPECT_TRUE(alloc.try_free(p));
  EXPECT_FALSE(alloc.is_live(p));
  EXPECT_FALSE(alloc.try_free(p));  // already freed
  EXPECT_EQ(alloc.stats().allocated_bytes[kAggregate].current, static_cast<std::int64_t>(4 * MiB));
  // A free pending on another stream is not live either.
  alloc.record_stream(q, 9);
  EXPECT_TRUE(alloc.try_free(q));
  EXPECT_FALSE(alloc.try_free(q));
  EXPECT_THROW(alloc.free(q), AllocatorUsageError);
  alloc.check_invariants();
}

}  // namespace
}  // namespace offsim::sim
