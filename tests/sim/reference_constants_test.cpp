// The differential properties compare offsim's allocator with the reference one; both take the same
// AllocatorConfig, so a wrong default in allocator_config.hpp would reach both and agree with itself.
// This pins offsim's constants and the defaults of an empty PYTORCH_CUDA_ALLOC_CONF, under every version
// profile, to the reference's literal copies of upstream's (support/reference_allocator.hpp, namespace
// upstream, cited there).
#include <gtest/gtest.h>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/version_profile.hpp"
#include "sim/support/reference_allocator.hpp"

namespace offsim::sim::test {
namespace {

TEST(ReferenceConstants, OffsimsAllocatorConstantsAreUpstreams) {
  EXPECT_EQ(kMinBlockSize, upstream::kMinBlockSize);
  EXPECT_EQ(kSmallSize, upstream::kSmallSize);
  EXPECT_EQ(kSmallBuffer, upstream::kSmallBuffer);
  EXPECT_EQ(kMinLargeAlloc, upstream::kMinLargeAlloc);
  EXPECT_EQ(kRoundLarge, upstream::kRoundLarge);
  EXPECT_EQ(kDefaultLargeSegmentSize, upstream::kLargeBuffer);
  EXPECT_EQ(kUnlimitedSplitSize, upstream::kUnlimitedSplitSize);
}

TEST(ReferenceConstants, AnEmptySettingsStringGivesUpstreamsDefaultsUnderEveryProfile) {
  for (const VersionProfile& profile : VersionProfile::all()) {
    SCOPED_TRACE(profile.name);
    for (const AllocatorConfig& config : {AllocatorConfig{}, AllocatorConfig::parse("", profile)}) {
      EXPECT_EQ(config.max_split_size, upstream::kUnlimitedSplitSize);
      EXPECT_EQ(config.max_non_split_rounding_size, upstream::kDefaultMaxNonSplitRounding);
      EXPECT_EQ(config.large_segment_size, upstream::kLargeBuffer);
      EXPECT_EQ(config.garbage_collection_threshold, 0.0);
      EXPECT_FALSE(config.expandable_segments);
      for (const std::uint64_t divisions : config.roundup_power2_divisions) EXPECT_LE(divisions, 1u);
    }
  }
}

}  // namespace
}  // namespace offsim::sim::test
