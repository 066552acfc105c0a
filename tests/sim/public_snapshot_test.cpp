// Golden test on a real snapshot that PyTorch wrote (traces/public/understanding-gpu-memory-1: the
// pickle from the "Understanding GPU Memory 1" blog post). The file is not in this repository (see
// traces/public/README.md); the test reads it from shared/traces/public/... beside the checkout, or from
// $OFFSIM_PUBLIC_SNAPSHOT_DIR, and skips with that reason when it is absent. The expected values are the
// ones read off the start of the pickle with Python's pickletools (metadata.json, "inspected").
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "offsim/sim/snapshot_pickle.hpp"
#include "offsim/sim/trace_file.hpp"

namespace offsim::sim {
namespace {

std::filesystem::path public_snapshot() {
  if (const char* directory = std::getenv("OFFSIM_PUBLIC_SNAPSHOT_DIR")) {
    return std::filesystem::path(directory) / "snapshot.pickle";
  }
  return std::filesystem::path(OFFSIM_SOURCE_DIR) / ".." / "shared" / "traces" / "public" / "understanding-gpu-memory-1" /
         "snapshot.pickle";
}

TEST(PublicSnapshot, UnderstandingGpuMemory1ReadsAndRoundTrips) {
  const auto path = public_snapshot();
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << path.string() << " is absent: the real snapshot is not redistributed in this repository "
                 << "(traces/public/README.md says where to get it)";
  }
  const Trace trace = read_snapshot_pickle(path);
  std::cout << "[ info ] " << path.string() << ": " << describe_trace(trace) << "\n";
  ASSERT_GE(trace.final_segments.size(), 2U);
  const SegmentInfo& first = trace.final_segments[0];
  EXPECT_EQ(first.address, 140468448919552U);
  EXPECT_EQ(first.total_size, 136314880U);
  EXPECT_FALSE(first.is_small);
  ASSERT_EQ(first.blocks.size(), 1U);
  EXPECT_EQ(first.blocks[0].state, BlockState::kInactive);
  EXPECT_EQ(first.blocks[0].requested_size, 134234112U);
  EXPECT_EQ(trace.final_segments[1].address, 140468585234432U);
  EXPECT_TRUE(trace.final_segments[1].is_small);
  EXPECT_FALSE(trace.events.empty());
  EXPECT_TRUE(trace.metadata.reconstructed_initial_state);

  // Through offsim's format and back to a pickle: nothing is lost.
  const auto directory = std::filesystem::temp_directory_path() / "offsim_public_snapshot_test";
  std::filesystem::create_directories(directory);
  write_trace_file(directory / "snapshot.otrace", trace);
  const Trace from_otrace = read_trace_file(directory / "snapshot.otrace");
  EXPECT_EQ(from_otrace.events, trace.events);
  EXPECT_EQ(from_otrace.initial_segments, trace.initial_segments);
  write_snapshot_pickle(directory / "again.pickle", from_otrace);
  const Trace again = read_snapshot_pickle(directory / "again.pickle");
  EXPECT_EQ(again.events, trace.events);
  EXPECT_EQ(again.final_segments, trace.final_segments);
  EXPECT_EQ(again.initial_segments, trace.initial_segments);
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace offsim::sim
