// Memory outside PyTorch's allocator that a stage takes on its first run (kernel modules, cuDNN/cuBLAS
// handles and workspaces): the driver's free shrinks after the policy has decided, once, for good.
#include <gtest/gtest.h>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

using offsim::GiB;
using offsim::MiB;

constexpr char kLookahead[] = "lookahead@furthest-next-use";

// A 1 GiB model on a 4 GiB device; its stage runs 512 MiB of activations and, the first time, takes
// `outside` bytes outside the allocator.
Scenario scenario(std::uint64_t outside, int calls = 1) {
  nlohmann::json stage = {{"name", "decode"}, {"kind", "vae_decode"}, {"models", {"vae"}},
                          {"working_memory", test::working_memory({512 * MiB})}};
  if (outside > 0) stage["first_run_outside_allocator"] = {{"label", "cuDNN handle and workspace"}, {"bytes", outside}};
  return test::build({{"device", test::device(4 * GiB)},
                      {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
                      {"calls", calls},
                      {"stages", nlohmann::json::array({stage})}},
                     {{"vae.json", test::manifest("vae", "vae", {{"w", 1 * GiB}})}});
}

RunRecord run(const Scenario& s) { return run_policy(*make_policy(kLookahead), s); }

TEST(FirstRunOutsideAllocator, TakesItOnceAndKeepsIt) {
  const Scenario s = scenario(2 * GiB, /*calls=*/2);
  ASSERT_TRUE(s.stages[0].first_run_outside_allocator.has_value());
  EXPECT_EQ(s.to_json()["stages"][0]["first_run_outside_allocator"]["bytes"], 2 * GiB);
  const RunRecord r = run(s);
  ASSERT_TRUE(r.completed) << r.failure;
  ASSERT_EQ(r.stages.size(), 2u);
  // Call 1 decided with the model loaded and nothing else: 3 GiB free. Call 2 sees the 2 GiB outside the
  // allocator, taken once (the policy emptied PyTorch's cache of the activations' segment).
  EXPECT_EQ(r.stages[0].driver_free_before, 3 * GiB);
  EXPECT_EQ(r.stages[1].driver_free_before, 3 * GiB - 2 * GiB);
}

TEST(FirstRunOutsideAllocator, AStageWhoseFirstRunNoLongerFitsFailsAfterThePolicyDecided) {
  ASSERT_TRUE(run(scenario(0)).completed);

  // 2.75 GiB outside the allocator leaves 256 MiB for 512 MiB of activations: an allocator OOM.
  const RunRecord activations = run(scenario(2 * GiB + 768 * MiB));
  ASSERT_FALSE(activations.completed);
  ASSERT_TRUE(activations.stages[0].oom.has_value());
  EXPECT_NE(activations.stages[0].oom->message.find("CUDA out of memory"), std::string::npos);

  // 3.5 GiB does not fit at all: the driver refuses it, and the message names what asked.
  const RunRecord outside = run(scenario(3 * GiB + 512 * MiB));
  ASSERT_FALSE(outside.completed);
  ASSERT_TRUE(outside.stages[0].oom.has_value());
  EXPECT_NE(outside.stages[0].oom->message.find("cuDNN handle and workspace"), std::string::npos)
      << outside.stages[0].oom->message;
  EXPECT_EQ(outside.stages[0].oom->device_free, 3 * GiB);
  EXPECT_NE(outside.failure.find("unhandled OOM in stage \"decode\""), std::string::npos) << outside.failure;

  // The policy's own decision stood (its estimate covered the activations); P3 reports the failure.
  const EvalResult e = evaluate(kLookahead, scenario(2 * GiB + 768 * MiB));
  EXPECT_TRUE(e.properties.failed());
}

TEST(FirstRunOutsideAllocator, RejectsAnEmptyAmountNamingTheField) {
  nlohmann::json stage = {{"name", "decode"}, {"kind", "other"}, {"models", {"vae"}},
                          {"first_run_outside_allocator", {{"label", "x"}, {"bytes", "0MiB"}}}};
  try {
    test::build({{"device", test::device(4 * GiB)},
                 {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
                 {"stages", nlohmann::json::array({stage})}},
                {{"vae.json", test::manifest("vae", "vae", {{"w", 1 * GiB}})}});
    FAIL() << "expected a ParseError";
  } catch (const ParseError& error) {
    EXPECT_NE(std::string(error.what()).find("scenario.stages[0].first_run_outside_allocator.bytes: must be > 0"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace offsim::policies
