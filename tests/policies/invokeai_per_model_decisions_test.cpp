// InvokeAI locks a stage's models one at a time (each model_on_device call is its own decision, with its
// own free-memory figure), so P1 judges each decision with the weights that decision loaded. Judged as one
// stage decision, the second model's F_P (computed after the first model was loaded) was compared with
// both models' weights: a false P1 failure on SDXL's two text encoders.
#include <gtest/gtest.h>

#include "offsim/policies/eval_result.hpp"
#include "offsim/sim/bytes.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

constexpr std::uint64_t M = MiB;

// Two 1 GiB text encoders, no estimate passed (InvokeAI's 3 GiB default), on a 5.5 GiB device: after
// the first encoder is loaded, F_P = ~4.5 GiB covers E + the second encoder (4 GiB) but not
// E + both encoders (5 GiB).
Scenario two_encoders() {
  std::map<std::string, nlohmann::json> manifests;
  for (const char* id : {"te1", "te2"}) {
    manifests[std::string(id) + ".json"] =
        test::manifest(id, "text_encoder", {{"a.weight", 512 * M}, {"b.weight", 512 * M}});
  }
  return test::build({{"device", test::device(5 * GiB + 512 * M)},
                      {"models", {{{"id", "te1"}, {"manifest", "te1.json"}}, {{"id", "te2"}, {"manifest", "te2.json"}}}},
                      {"stages", nlohmann::json::array({{{"name", "encode"}, {"kind", "text_encode"},
                                                         {"models", {"te1", "te2"}}}})}},
                     manifests);
}

TEST(InvokeAIPerModelDecisions, EachLockIsItsOwnDecisionAndP1JudgesEachWithItsOwnWeights) {
  const Scenario s = two_encoders();
  const EvalResult e = evaluate("invokeai@8e71a8a5", s);
  ASSERT_TRUE(e.run.completed) << e.run.failure;
  ASSERT_EQ(e.run.stages.size(), 1u);
  const StageDecision& d = e.run.stages[0].decision;
  ASSERT_EQ(d.loads.size(), 2u);
  EXPECT_EQ(d.loads[0].model, "te1");
  EXPECT_EQ(d.loads[1].model, "te2");
  for (const LoadDecision& load : d.loads) {
    EXPECT_EQ(load.weights_loaded, 1 * GiB);
    EXPECT_EQ(load.stop, StopReason::kSatisfied);
    EXPECT_GE(load.free_memory, static_cast<std::int64_t>(load.estimate + load.weights_loaded));
  }
  // The second decision saw the first encoder's gigabyte already in use...
  EXPECT_LE(d.loads[1].free_memory, d.loads[0].free_memory - static_cast<std::int64_t>(1 * GiB));
  // ...so against both encoders' weights its figure falls short: the comparison P1 must not make.
  EXPECT_LT(d.loads[1].free_memory, static_cast<std::int64_t>(d.loads[1].estimate + d.weights_loaded));
  ASSERT_EQ(e.properties.results[0].id, "P1");
  EXPECT_EQ(e.properties.results[0].verdict, Verdict::kPass) << e.properties.results[0].detail;
  EXPECT_EQ(e.properties.results[0].checked, 2u);
}

}  // namespace
}  // namespace offsim::policies
