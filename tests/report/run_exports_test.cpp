// Exports of a simulated run: the memory snapshot reads back as the same trace and its events rebuild the
// segments it ends with (what memory_viz replays), and the Perfetto trace has the counters, the stage
// slices and the OOM.
#include <gtest/gtest.h>

#include <algorithm>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/report/perfetto_trace.hpp"
#include "offsim/report/run_snapshot.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/segment_state.hpp"
#include "offsim/sim/snapshot_pickle.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

const policies::Scenario& rocm() {
  static const policies::Scenario s =
      policies::Scenario::load(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", kRoot);
  return s;
}

policies::RunRecord run(const std::string& policy_id, bool keep) {
  policies::RunOptions o;
  o.keep_trace = keep;
  auto policy = policies::make_policy(policy_id);
  return policies::run_policy(*policy, rocm(), o);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> active_blocks(const std::vector<sim::SegmentInfo>& segments) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (const sim::SegmentInfo& s : segments) {
    for (const sim::BlockInfo& b : s.blocks) {
      if (b.state != sim::BlockState::kInactive) out.emplace_back(b.address, b.requested_size);
    }
  }
  return out;
}

TEST(RunExports, SnapshotRoundTripsAndItsEventsRebuildItsSegments) {
  const policies::RunRecord r = run("invokeai@fda7c42b", true);
  ASSERT_FALSE(r.completed);  // the seed bug: the decode OOMs
  const sim::Trace trace = run_trace(r, rocm());
  ASSERT_FALSE(trace.events.empty());
  // The OOM is recorded; the stage's tensors are freed after it as the exception unwinds.
  EXPECT_EQ(std::count_if(trace.events.begin(), trace.events.end(), [](const sim::TraceEvent& e) { return e.action == sim::TraceAction::kOom; }), 1);
  // Time is the allocator call index: non-decreasing and ending at the last timeline sample.
  for (std::size_t i = 1; i < trace.events.size(); ++i) EXPECT_LE(trace.events[i - 1].time_us, trace.events[i].time_us);
  EXPECT_EQ(static_cast<std::size_t>(trace.events.back().time_us), r.timeline.size() - 1);

  sim::SnapshotReadOptions no_rewind;
  no_rewind.reconstruct_initial_state = false;
  const sim::Trace back = sim::read_snapshot_pickle_bytes(sim::snapshot_pickle_bytes(trace), "run.pickle", no_rewind);
  EXPECT_EQ(back.events, trace.events);
  EXPECT_EQ(back.final_segments, trace.final_segments);
  EXPECT_EQ(back.metadata.device_total_bytes, rocm().device.total_bytes);
  EXPECT_NE(back.metadata.provenance.notes.find("simulated by offsim"), std::string::npos);

  // From an empty allocator, the events alone lead to the final segments (the run recorded everything).
  sim::SegmentState state;
  for (std::size_t i = 0; i < trace.events.size(); ++i) state.apply(trace.events[i], i, "run");
  EXPECT_EQ(state.segment_count(), trace.final_segments.size());
  EXPECT_EQ(active_blocks(state.segments(0)), active_blocks(trace.final_segments));
}

TEST(RunExports, SnapshotNeedsAKeptTrace) {
  EXPECT_THROW(run_trace(run("invokeai@a6724695", false), rocm()), ConfigError);
}

TEST(RunExports, PerfettoTraceHasCountersStagesAndTheOom) {
  const policies::RunRecord r = run("invokeai@fda7c42b", false);
  const json t = perfetto_trace(r, rocm());
  std::size_t reserved = 0, slices = 0, ooms = 0;
  std::uint64_t last_ts = 0, max_reserved = 0;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] == "C" && e["name"] == "reserved") {
      ++reserved;
      EXPECT_GE(e["ts"].get<std::uint64_t>(), last_ts);
      last_ts = e["ts"].get<std::uint64_t>();
      max_reserved = std::max(max_reserved, e["args"]["bytes"].get<std::uint64_t>());
    }
    if (e["ph"] == "X") {
      ++slices;
      EXPECT_EQ(e["name"], "decode");
      EXPECT_NE(e["args"]["T_from"].get<std::string>().rfind("published", 0), std::string::npos);
    }
    if (e["ph"] == "i" && e["name"] == "OOM") ++ooms;
  }
  EXPECT_GT(reserved, 10u);
  EXPECT_EQ(max_reserved, r.peak_reserved);
  EXPECT_EQ(slices, r.stages.size());
  EXPECT_EQ(ooms, 1u);
  EXPECT_EQ(t["otherData"]["device_total_bytes"], r.device_total);
}

}  // namespace
}  // namespace offsim::report
