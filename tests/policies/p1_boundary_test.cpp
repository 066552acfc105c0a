// P1's boundary, pinned with hand-built decisions: a policy that stopped as satisfied must have
// F_P >= E + W_load - slack. Equal holds, one byte short fails, one byte over holds, for a stage-level
// decision and for a per-model one (InvokeAI locks model by model). Generated cases rarely land on the
// byte (and never for InvokeAI, whose loads are capped at exactly its slack), so only these tests would
// notice the comparison turned from `<` into `<=` or the slack applied twice.
#include <gtest/gtest.h>

#include "offsim/policies/properties.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/sim/bytes.hpp"
#include "scenario_fixture.hpp"

namespace offsim::policies {
namespace {

constexpr std::uint64_t kSlack = MiB;  // InvokeAI's documented +1 MB partial-load slack
constexpr std::uint64_t kE = 3 * GiB;
constexpr std::uint64_t kW = GiB + 5;

const Scenario& scenario() {
  static const Scenario s = test::build(
      {{"device", test::device(8 * GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages", nlohmann::json::array({{{"name", "decode"}, {"kind", "other"}, {"models", {"vae"}}}})}},
      {{"vae.json", test::manifest("vae", "vae", {{"w", GiB}})}});
  return s;
}

RunRecord run_with(const StageDecision& decision) {
  RunRecord run;
  run.policy.id = "hand-built@p1";
  run.policy.free_memory_formula = "driver_free - working_mem";
  run.policy.p1_slack = kSlack;
  run.completed = true;
  StageRecord stage;
  stage.stage = "decode";
  stage.decision = decision;
  run.stages.push_back(stage);
  return run;
}

Verdict p1_stage_level(std::int64_t free_memory) {
  StageDecision d;
  d.estimate = kE;
  d.weights_loaded = kW;
  d.free_memory = free_memory;
  d.stop = StopReason::kSatisfied;
  return check_properties(scenario(), run_with(d), PropertyOptions{}).results[0].verdict;
}

Verdict p1_per_model(std::int64_t free_memory) {
  StageDecision d;
  d.estimate = kE;
  d.loads.push_back({"vae", free_memory, kE, kW, StopReason::kSatisfied, 0});
  return check_properties(scenario(), run_with(d), PropertyOptions{}).results[0].verdict;
}

const std::int64_t kBoundary = static_cast<std::int64_t>(kE + kW - kSlack);

TEST(P1Boundary, EqualHoldsOneByteShortFailsOneByteOverHolds) {
  EXPECT_EQ(p1_stage_level(kBoundary), Verdict::kPass);
  EXPECT_EQ(p1_stage_level(kBoundary - 1), Verdict::kFail);
  EXPECT_EQ(p1_stage_level(kBoundary + 1), Verdict::kPass);
  EXPECT_EQ(p1_per_model(kBoundary), Verdict::kPass);
  EXPECT_EQ(p1_per_model(kBoundary - 1), Verdict::kFail);
  EXPECT_EQ(p1_per_model(kBoundary + 1), Verdict::kPass);
}

TEST(P1Boundary, ANegativeFreeFigureIsJudgedNotWrapped) {
  EXPECT_EQ(p1_stage_level(-1), Verdict::kFail);
}

TEST(P1Boundary, OnlySatisfiedStopsMakeAClaim) {
  StageDecision d;
  d.estimate = kE;
  d.weights_loaded = kW;
  d.free_memory = 0;
  d.stop = StopReason::kExhausted;
  EXPECT_EQ(check_properties(scenario(), run_with(d), PropertyOptions{}).results[0].verdict, Verdict::kNotApplicable);
}

}  // namespace
}  // namespace offsim::policies
