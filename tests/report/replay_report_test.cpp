// The replay report from a real replay: a simulated run exported as a trace (run_trace) and replayed, at
// the recorded capacity and at a smaller one where it runs out of memory.
#include <gtest/gtest.h>

#include <algorithm>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/report/replay_report.hpp"
#include "offsim/report/run_snapshot.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

const sim::Trace& trace() {
  static const sim::Trace t = [] {
    const std::filesystem::path root = OFFSIM_SOURCE_DIR;
    static const policies::Scenario s =
        policies::Scenario::load(root / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", root);
    policies::RunOptions o;
    o.keep_trace = true;
    auto policy = policies::make_policy("invokeai@a6724695");
    return run_trace(policies::run_policy(*policy, s, o), s);
  }();
  return t;
}

sim::ReplayResult replay(std::uint64_t capacity) {
  sim::ReplayOptions o;
  o.capacity = capacity;
  o.platform = sim::Platform::kRocm;
  return sim::replay(trace(), o);
}

TEST(ReplayReport, DataCarriesFidelityTimelineAndSegments) {
  const sim::ReplayResult r = replay(trace().metadata.device_total_bytes);
  const json data = replay_report_data(r, trace());
  EXPECT_EQ(data["replay"]["events_total"], r.events_total);
  EXPECT_EQ(data["timeline"].size(), r.timeline.size());
  EXPECT_FALSE(data["timeline"].empty());
  EXPECT_EQ(data["final_segments"].size(), trace().final_segments.size());
  EXPECT_EQ(data["trace"]["provenance"]["kind"], "synthetic");
  const HtmlPage page = replay_report_page(data);
  EXPECT_GE(page.chart_count(), 3u);  // memory, fragmentation, the recorded final segments
  const std::string html = page.render(VegaAssets{});
  EXPECT_NE(html.find("recorded allocator events reproduced exactly"), std::string::npos);
  EXPECT_NE(html.find("id=\"offsim-replay\""), std::string::npos);
}

TEST(ReplayReport, OomsOnASmallerDeviceAreMarked) {
  const sim::ReplayResult r = replay(30 * GiB);
  ASSERT_FALSE(r.ooms.empty());
  const json data = replay_report_data(r, trace());
  ASSERT_FALSE(data["ooms"].empty());
  EXPECT_EQ(data["ooms"][0]["kind"], r.ooms[0].handled ? "handled" : "unhandled");
  const std::string html = replay_report_page(data).render(VegaAssets{});
  EXPECT_NE(html.find("Out-of-memory events"), std::string::npos);
  EXPECT_NE(html.find(r.first_divergence ? "First divergence at event" : "No divergence."), std::string::npos);
}

TEST(ReplayReport, TheFirstUnhandledOomHasItsSegmentMap) {
  const sim::ReplayResult r = replay(30 * GiB);
  ASSERT_EQ(r.unhandled_ooms, 1u);
  const auto unhandled = std::find_if(r.ooms.begin(), r.ooms.end(), [](const sim::ReplayOom& o) { return !o.handled; });
  ASSERT_NE(unhandled, r.ooms.end());
  EXPECT_FALSE(unhandled->segments.empty());
  const json data = replay_report_data(r, trace());
  const auto index = static_cast<std::size_t>(unhandled - r.ooms.begin());
  EXPECT_EQ(data["ooms"][index]["segments"].size(), unhandled->segments.size());
  const HtmlPage page = replay_report_page(data);
  const std::string html = page.render(VegaAssets{});
  EXPECT_NE(html.find("Simulated segments at the unhandled OOM (event " + std::to_string(unhandled->event_index) + ")"), std::string::npos);
}

TEST(ReplayReport, NothingRecordedToCompareIsNotAHundredPercent) {
  // A requests-only trace (a CPU recording): allocations and frees, no segment events.
  sim::Trace requests;
  requests.metadata.device_total_bytes = 1 * GiB;
  requests.events.push_back({0x1000, 300 * MiB, 0, 0, sim::TraceAction::kAlloc});
  requests.events.push_back({0x1000, 300 * MiB, 0, 1, sim::TraceAction::kFreeRequested});
  sim::ReplayOptions o;
  o.capacity = 1 * GiB;
  const sim::ReplayResult r = sim::replay(requests, o);
  ASSERT_EQ(r.events_total, 0u);
  const std::string html = replay_report_page(replay_report_data(r, requests)).render(VegaAssets{});
  EXPECT_NE(html.find("Events reproduced: n/a (nothing recorded to compare)"), std::string::npos);
  EXPECT_EQ(html.find("100.00%"), std::string::npos);
  EXPECT_EQ(html.find("No divergence."), std::string::npos);
}

TEST(ReplayReport, AStateOnlyGpuSnapshotIsNotLabelledAsAMeasuredComparison) {
  // A snapshot dumped on a GPU with no trace entries: one segment, one live block. Nothing is compared, so the
  // page must not present it as a gpu-measured result.
  sim::Trace state;
  state.metadata.provenance.kind = sim::ProvenanceKind::kGpuMeasured;
  sim::SegmentInfo segment;
  segment.address = 0x7F0000000000;
  segment.total_size = 20 * MiB;
  segment.blocks = {{segment.address, 8 * MiB, 8 * MiB, sim::BlockState::kActiveAllocated},
                    {segment.address + 8 * MiB, 12 * MiB, 0, sim::BlockState::kInactive}};
  state.initial_segments = {segment};
  state.final_segments = {segment};
  const sim::ReplayResult r = sim::replay(state, sim::ReplayOptions{});
  ASSERT_EQ(r.comparison, "state-only");
  const std::string html = replay_report_page(replay_report_data(r, state)).render(VegaAssets{});
  EXPECT_NE(html.find("Provenance: <b>gpu-measured, nothing compared</b>"), std::string::npos);
  EXPECT_NE(html.find("Events reproduced: n/a (state only)"), std::string::npos);
  EXPECT_EQ(html.find("100.00%"), std::string::npos);
}

}  // namespace
}  // namespace offsim::report
