// The look-ahead yardstick and the traffic lower bound, on hand-checked scenarios and on the default suite.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/lookahead_policy.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/traffic_lower_bound.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

constexpr std::uint64_t M = MiB;
constexpr char kLookahead[] = "lookahead@furthest-next-use";

RunRecord run(const std::string& id, const Scenario& s) {
  auto policy = make_policy(id);
  return run_policy(*policy, s);
}

nlohmann::json stage(const std::string& name, const std::string& model) {
  return {{"name", name}, {"kind", "other"}, {"models", {model}}};
}

// Three 256 MiB models on a 600 MiB device (two fit): stages a, b, c, a.
Scenario abca(int calls) {
  std::map<std::string, nlohmann::json> manifests;
  for (const char* id : {"a", "b", "c"}) {
    manifests[std::string(id) + ".json"] =
        test::manifest(id, "transformer", {{"x.weight", 128 * M}, {"y.weight", 128 * M}});
  }
  return test::build({{"device", test::device(600 * M)},
                      {"models",
                       {{{"id", "a"}, {"manifest", "a.json"}},
                        {{"id", "b"}, {"manifest", "b.json"}},
                        {{"id", "c"}, {"manifest", "c.json"}}}},
                      {"calls", calls},
                      {"stages", nlohmann::json::array({stage("s0", "a"), stage("s1", "b"), stage("s2", "c"),
                                                        stage("s3", "a")})}},
                     manifests);
}

TEST(LookaheadPolicy, EvictsTheModelUsedFurthestAhead) {
  const RunRecord r = run(kLookahead, abca(1));
  ASSERT_TRUE(r.completed) << r.failure;
  // At s2 both a (next use: s3) and b (never again) are resident: b goes.
  ASSERT_EQ(r.stages[2].decision.evictions.size(), 1u);
  EXPECT_EQ(r.stages[2].decision.evictions[0].model, "b");
  EXPECT_EQ(r.stages[3].decision.weights_loaded, 0u);  // a was kept
  EXPECT_EQ(r.bytes_to_device, 768 * M);
  EXPECT_EQ(r.bytes_to_host, 0u);  // evictions re-point to the kept host copy
  EXPECT_EQ(traffic_lower_bound(abca(1)).total(), 768 * M);  // optimal here
}

TEST(LookaheadPolicy, AcrossCallsItUsesTheNextCallsStagesToo) {
  const Scenario s = abca(2);
  const RunRecord r = run(kLookahead, s);
  ASSERT_TRUE(r.completed) << r.failure;
  // Call 1, s2: a next at s3, b next at call 2 s1: b goes. Call 2, s1 (b): a next at s3 (occurrence 7),
  // c next at s2 (6): a goes. Call 2, s3 (a): b and c are never used again; equal size -> scenario order: b.
  EXPECT_EQ(r.stages[2].decision.evictions.at(0).model, "b");
  EXPECT_EQ(r.stages[5].decision.evictions.at(0).model, "a");
  EXPECT_EQ(r.stages[7].decision.evictions.at(0).model, "b");
  EXPECT_EQ(r.bytes_to_device, (768 + 256 + 256) * M);
  // Bound: 768 compulsory + first at call 1 s2 (c): live {a, b} = 512 MiB > room 600 - 128 (its largest
  // tensor) = 472 -> 40 MiB; later occurrences give the same, not more.
  const TrafficLowerBound bound = traffic_lower_bound(s);
  EXPECT_EQ(bound.compulsory, 768 * M);
  EXPECT_EQ(bound.reload, 40 * M);
  EXPECT_EQ(bound.reload_at, "call 1, stage \"s2\"");
  EXPECT_GE(r.bytes_to_device, bound.total());
}

TEST(LookaheadPolicy, OracleEstimateIsTheColdPeakAndTheStopConditionHolds) {
  const Scenario s = test::build(
      {{"device", test::device(GiB)},
       {"models", {{{"id", "big"}, {"manifest", "big.json"}}, {{"id", "small"}, {"manifest", "small.json"}}}},
       {"initially_resident", {"big"}},
       {"stages",
        {{{"name", "run"}, {"kind", "other"}, {"models", {"small"}},
          {"working_memory", test::working_memory({100 * M, 50 * M})}}}}},
      {{"big.json", test::manifest("big", "transformer", {{"w", 832 * M}})},
       {"small.json", test::manifest("small", "vae", {{"w", 64 * M}})}});
  const EvalResult e = evaluate(kLookahead, s);
  ASSERT_TRUE(e.run.completed) << e.run.failure;
  const StageRecord& r = e.run.stages[0];
  ASSERT_TRUE(r.t_cold.has_value());
  EXPECT_EQ(r.decision.estimate, *r.t_cold);
  EXPECT_EQ(*r.t_cold, 150 * M);
  // 192 MiB free < 150 + 64: the resident "big" (never used) is evicted; then F_P = 1 GiB.
  ASSERT_EQ(r.decision.evictions.size(), 1u);
  EXPECT_EQ(r.decision.stop, StopReason::kSatisfied);
  EXPECT_GE(*r.decision.free_memory, static_cast<std::int64_t>(*r.decision.estimate + r.decision.weights_loaded));
  EXPECT_FALSE(e.properties.failed());
}

TEST(TrafficLowerBound, CountsFirstLoadsAndTheWorstStageOfCapacityPressure) {
  // a (256 MiB) resident, b (4 x 128 MiB) not; stages a, b (activations peak 300 MiB), a; device 500 MiB:
  // compulsory 512 (b); at b: live {a} = 256 MiB, room = 500 - max(300, 128) = 200 -> 56 MiB reloaded.
  nlohmann::json second = stage("second", "b");
  second["working_memory"] = test::working_memory({200 * M, 100 * M});
  const Scenario s = test::build(
      {{"device", test::device(500 * M)},
       {"models", {{{"id", "a"}, {"manifest", "a.json"}}, {{"id", "b"}, {"manifest", "b.json"}}}},
       {"initially_resident", {"a"}},
       {"stages", nlohmann::json::array({stage("first", "a"), second, stage("third", "a")})}},
      {{"a.json", test::manifest("a", "transformer", {{"w", 256 * M}})},
       {"b.json", test::manifest("b", "transformer",
                                 {{"w0", 128 * M}, {"w1", 128 * M}, {"w2", 128 * M}, {"w3", 128 * M}})}});
  const TrafficLowerBound bound = traffic_lower_bound(s);
  EXPECT_EQ(bound.compulsory, 512 * M);
  EXPECT_EQ(bound.reload, 56 * M);
  EXPECT_EQ(bound.reload_at, "call 1, stage \"second\"");
  ASSERT_TRUE(s.stages.at(1).working_memory.has_value());
  EXPECT_EQ(peak_allocated_bytes(*s.stages[1].working_memory->trace), 300 * M);
}

// The bound holds for every policy that completes a default scenario and counts what it streams: a policy
// below it would be moving weights it does not count. Runs whose stages stream weight copies without
// counting them as traffic (InvokeAI's autocast layers in its transcription at the time of writing) are
// listed in the test's XML properties instead.
TEST(TrafficLowerBound, NoPolicyMovesFewerBytesThanTheBoundOnTheDefaultSuite) {
  const std::filesystem::path root = OFFSIM_SOURCE_DIR;
  std::size_t checked = 0;
  std::string uncounted_runs;
  for (const auto& entry : std::filesystem::directory_iterator(root / "scenarios/default")) {
    if (entry.path().extension() != ".json") continue;
    const Scenario s = Scenario::load(entry.path(), root);
    const TrafficLowerBound bound = traffic_lower_bound(s);
    for (const PolicyEntry& p : all_policies()) {
      auto policy = p.make();
      RunOptions options;
      options.record_timeline = false;
      options.compute_cold = false;
      RunRecord r;
      try {
        r = run_policy(*policy, s, options);
      } catch (const ConfigError&) {
        continue;  // the policy cannot express this scenario (reported as n/a by offsim eval)
      }
      if (!r.completed) continue;
      // A stage that holds streamed weight copies (decision.streamed_weights) but whose traffic does not
      // include them moves bytes it does not count: the bound cannot judge such a run.
      bool uncounted = false;
      for (const StageRecord& st : r.stages) {
        uncounted = uncounted || (st.decision.streamed_weights > 0 &&
                                  st.bytes_to_device < st.decision.weights_loaded + st.decision.streamed_weights);
      }
      if (uncounted) {
        uncounted_runs += (uncounted_runs.empty() ? "" : ", ") + p.id + " on " + s.name;
        continue;
      }
      ++checked;
      EXPECT_GE(r.bytes_to_device, bound.total())
          << p.id << " on " << s.name << ": moved " << format_bytes(r.bytes_to_device) << ", bound "
          << format_bytes(bound.total()) << " (compulsory " << format_bytes(bound.compulsory) << ", reload "
          << format_bytes(bound.reload) << " at " << bound.reload_at << ")";
    }
  }
  EXPECT_GT(checked, 10u);
  if (!uncounted_runs.empty()) RecordProperty("streaming_not_counted_as_traffic", uncounted_runs);
}

}  // namespace
}  // namespace offsim::policies
