// Round trip through Debian's Python: pickle.load / json.load of what offsim writes (shape as
// torch.cuda.memory._snapshot() has it, opcodes MemoryViz.js reads), and offsim reading pickles that
// Python wrote with protocols 2, 4 and 5 (frames shared through the memo, as PyTorch's Python side
// writes them). tests/sim/python/snapshot_round_trip.py is the Python half.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "sim/support/trace_generator.hpp"

namespace offsim::sim {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

TEST(PythonRoundTrip, PickleLoadReadsOffsimSnapshotsAndOffsimReadsPythonPickles) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " not found: Debian's python3 runs the Python half";
  const auto directory = std::filesystem::temp_directory_path() / "offsim_python_round_trip";
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);

  Trace trace = test::generate_trace(test::GeneratedTraceOptions{5, 4000, 800, true, 1});
  trace.events.push_back(TraceEvent{3ULL << 30U, 1ULL << 34U, 0, trace.events.back().time_us + 1, TraceAction::kOom,
                                    kTraceFlagNone});
  write_snapshot_pickle(directory / "offsim.pickle", trace);
  write_snapshot_json(directory / "offsim.json", trace);

  const std::string script = std::string(OFFSIM_SOURCE_DIR) + "/tests/sim/python/snapshot_round_trip.py";
  const std::string command = std::string(kPython) + " " + script + " " + (directory / "offsim.pickle").string() + " " +
                              (directory / "offsim.json").string() + " " + (directory / "python").string() + " > " +
                              (directory / "python.log").string() + " 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_EQ(status, 0) << "the Python half failed; see " << (directory / "python.log").string();

  SnapshotReadOptions options;
  options.device = 1;
  for (const char* name : {"python.p2.pickle", "python.p4.pickle", "python.p5.pickle", "python.json"}) {
    SCOPED_TRACE(name);
    const auto path = directory / name;
    const Trace back = path.extension() == ".json" ? read_snapshot_json(path, options) : read_snapshot_pickle(path, options);
    EXPECT_EQ(back.events, trace.events);
    EXPECT_EQ(back.final_segments, trace.final_segments);
    EXPECT_EQ(back.initial_segments, trace.initial_segments);
    EXPECT_EQ(back.metadata.label, trace.metadata.label);
  }
  // Every entry shares one frames list through the memo; the reader has taken earlier entries by the time it
  // reaches later ones, and their frames must still match.
  options.fallible_frames = {"_call_impl"};
  const Trace flagged = read_snapshot_pickle(directory / "python.p4.pickle", options);
  std::size_t allocs = 0;
  for (const TraceEvent& e : flagged.events) {
    if (e.action != TraceAction::kAlloc) continue;
    ++allocs;
    EXPECT_NE(e.flags & kTraceFlagFallible, 0) << "alloc " << allocs << " not flagged";
  }
  EXPECT_GT(allocs, 100U);
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace offsim::sim
