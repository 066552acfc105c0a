// The README's "Evaluate your own policy" example, compiled and run so that it cannot rot: a cache that
// evicts every model the next stage does not use, empties PyTorch's cache, then loads what the stage
// needs. It exports F_P (driver free memory after its eviction) and passes no estimate.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "offsim/policies/policy.hpp"
#include "offsim/policies/properties.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/policies/scenario.hpp"

namespace offsim::policies {
namespace {

class EvictOthersFirst final : public Policy {
 public:
  EvictOthersFirst() {
    info_.id = "evict-others-first@example";
    info_.family = "evict-others-first";
    info_.label = "README example: evict every model the stage does not use, then load the stage's";
    info_.free_memory_formula = "driver_free after evicting and empty_cache()";
  }
  const PolicyInfo& info() const override { return info_; }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    const auto& needed = step.stage->models;
    for (const std::string& id : context.model_ids()) {
      if (std::find(needed.begin(), needed.end(), id) != needed.end()) continue;
      const std::uint64_t freed = context.model(id).unload_all(context.backend(), /*copy=*/false);
      if (freed > 0) decision.evictions.push_back({id, freed});
    }
    context.backend().empty_cache();
    decision.free_memory = static_cast<std::int64_t>(context.backend().mem_get_info().free);
    for (const std::string& id : needed) {
      const std::optional<std::uint64_t> loaded = context.model(id).load_all(context.backend());
      if (!loaded) {
        decision.load_oom = context.backend().last_oom();
        return decision;
      }
      decision.weights_loaded += *loaded;
    }
    return decision;
  }

  void finish(RunContext&, const StageStep&) override {}  // lazy: weights stay until another stage needs room

  ResidencyClaim residency(const RunContext& context) const override {
    ResidencyClaim claim;
    for (const std::string& id : context.model_ids()) {
      (context.model(id).device_bytes() > 0 ? claim.resident_by_design : claim.offloaded).push_back(id);
    }
    return claim;
  }

 private:
  PolicyInfo info_;
};

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

TEST(ExamplePolicy, PassesTheSeedScenarioThatThePreFixInvokeAICacheFails) {
  const Scenario s = Scenario::load(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", kRoot);
  EvictOthersFirst policy;
  const RunRecord run = run_policy(policy, s);
  ASSERT_TRUE(run.completed) << run.failure;
  PropertyOptions options;
  options.make_policy = [] { return std::make_unique<EvictOthersFirst>(); };
  const PropertyReport report = check_properties(s, run, options);
  EXPECT_FALSE(report.failed()) << report.diagnosis;
  // It evicted both resident models before the decode, and moved no byte back over PCIe (pointer swaps).
  EXPECT_EQ(run.stages.front().decision.evictions.size(), 2u);
  EXPECT_EQ(run.bytes_to_host, 0u);
}

}  // namespace
}  // namespace offsim::policies
