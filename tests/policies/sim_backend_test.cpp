// SimBackend runs the native caching allocator, or the cudaMallocAsync pool model when the settings say
// so, and says which: the pool model is labelled approximate wherever it is used.
#include <gtest/gtest.h>

#include "offsim/policies/sim_backend.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

TEST(SimBackend, NativeByDefault) {
  SimBackend b({"d", sim::Platform::kCuda, 8 * GiB}, sim::AllocatorConfig::parse(""));
  EXPECT_FALSE(b.approximate());
  const auto p = *b.allocate(1);
  EXPECT_EQ(b.stats().reserved, 2 * MiB);  // a small-pool segment
  EXPECT_EQ(b.segments().size(), 1u);
  b.free(p);
  EXPECT_NE(b.name().find("native"), std::string::npos);
}

TEST(SimBackend, CudaMallocAsyncIsTheApproximatePoolModel) {
  SimBackend b({"d", sim::Platform::kCuda, 8 * GiB}, sim::AllocatorConfig::parse("backend:cudaMallocAsync"));
  EXPECT_TRUE(b.approximate());
  EXPECT_NE(b.name().find("approximate"), std::string::npos);
  const auto p = *b.allocate(1);
  EXPECT_EQ(b.stats().allocated, 1u);
  EXPECT_TRUE(b.segments().empty());
  EXPECT_THROW((void)b.allocator(), ConfigError);
  b.free(p);
  b.empty_cache();
  EXPECT_EQ(b.stats().reserved, 0u);
}

}  // namespace
}  // namespace offsim::policies
