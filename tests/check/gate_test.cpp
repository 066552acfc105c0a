// The gate never passes having checked nothing: checks the time budget left unstarted fail it (and are
// listed, so every report shows them), an empty result fails it, and only a P5 violation is "reported,
// never failed": a P5 give-up or error checked nothing and fails like any other.
#include "offsim/check/gate.hpp"

#include <gtest/gtest.h>

namespace offsim::check {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

PropertyCheckResult result(PropertyId property, CheckOutcome outcome) {
  PropertyCheckResult r;
  r.policy = "invokeai@a6724695";
  r.property = property;
  r.outcome = outcome;
  return r;
}

TEST(GateResult, FailsOnAnythingButHoldingAndAReportedOverEstimate) {
  GateResult gate;
  EXPECT_TRUE(gate.failed()) << "an empty gate checked nothing";
  gate.checks = {result(PropertyId::kP1, CheckOutcome::kHolds), result(PropertyId::kP5, CheckOutcome::kViolated)};
  EXPECT_FALSE(gate.failed()) << "P5 over-estimates are reported, never failed";
  for (CheckOutcome nothing_checked : {CheckOutcome::kGaveUp, CheckOutcome::kError, CheckOutcome::kNotStarted}) {
    for (PropertyId property : {PropertyId::kP3, PropertyId::kP5}) {
      GateResult g = gate;
      g.checks.push_back(result(property, nothing_checked));
      EXPECT_TRUE(g.failed()) << to_string(property) << " " << to_string(nothing_checked);
    }
  }
  GateResult violated = gate;
  violated.checks.push_back(result(PropertyId::kP3, CheckOutcome::kViolated));
  EXPECT_TRUE(violated.failed());
  GateResult uncovered = gate;
  uncovered.checks[0].missing_classes = {"evicts"};
  EXPECT_TRUE(uncovered.failed()) << "a property not exercised was not checked";
  GateResult skipped = gate;
  skipped.units_skipped = 1;
  EXPECT_TRUE(skipped.failed());
}

TEST(RunGate, ChecksTheBudgetLeftUnstartedAreListedAndFailTheGate) {
  GateOptions options;
  options.root = kRoot;
  options.policies = {"lightx2v@c177fd82"};
  options.time_budget_seconds = 1e-9;  // runs out before the first check
  const GateResult gate = run_gate(options);
  ASSERT_EQ(gate.units_total, 2u) << "P3 and P4 apply to a schedule-based policy";
  EXPECT_EQ(gate.units_selected, 2u);
  EXPECT_EQ(gate.units_skipped, 2u);
  ASSERT_EQ(gate.checks.size(), 2u);
  for (const PropertyCheckResult& c : gate.checks) {
    EXPECT_EQ(c.outcome, CheckOutcome::kNotStarted);
    EXPECT_NE(c.failure.find("not started"), std::string::npos) << c.failure;
  }
  EXPECT_TRUE(gate.failed());
}

TEST(RunGate, AShardCountsFromZeroAndKnowsTheWholeSelection) {
  GateOptions options;
  options.root = kRoot;
  options.policies = {"lightx2v@c177fd82"};
  options.time_budget_seconds = 1e-9;
  options.shard_count = 2;
  options.shard_index = 1;
  const GateResult gate = run_gate(options);
  EXPECT_EQ(gate.units_selected, 2u);
  ASSERT_EQ(gate.units_total, 1u);
  EXPECT_EQ(gate.checks.at(0).property, PropertyId::kP4) << "shard 1 of 2 takes the second unit (P3, P4)";
}

}  // namespace
}  // namespace offsim::check
