// examples/evict_others_first, the README's "Evaluate your own policy", as offsim's own policies are tested:
// its decisions, what P1-P4 say about them, and that a fixed working-memory reserve is what the seed bug
// InvokeAI #9305 was (the README says so). The example's own build and command line run in ctest -L docs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>

#include <nlohmann/json.hpp>

#include "evict_others_first.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/policy_settings.hpp"
#include "offsim/policies/properties.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;
constexpr std::uint64_t GiB = std::uint64_t{1} << 30;

Scenario seed_w7900() {
  return Scenario::load(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", kRoot);
}

PropertyReport judge(const Scenario& s, const RunRecord& run, std::uint64_t reserve) {
  PropertyOptions options;
  options.make_policy = [reserve] { return std::make_unique<example::EvictOthersFirst>(reserve); };
  return check_properties(s, run, options);
}

const PropertyResult& property(const PropertyReport& report, const char* id) {
  for (const PropertyResult& p : report.results) {
    if (p.id == id) return p;
  }
  throw std::logic_error(std::string("no ") + id);
}

TEST(ExamplePolicy, AFixedThreeGiBReserveFailsTheSeedDecodeAsPreFixInvokeAIDid) {
  const Scenario s = seed_w7900();
  example::EvictOthersFirst policy;  // 3 GiB, InvokeAI's default working memory
  const RunRecord run = run_policy(policy, s);
  EXPECT_FALSE(run.completed);
  const StageDecision& d = run.stages.front().decision;
  EXPECT_TRUE(d.evictions.empty());  // 3 GiB were free: satisfied without evicting
  EXPECT_EQ(d.stop, StopReason::kSatisfied);
  const PropertyReport report = judge(s, run, 3 * GiB);
  EXPECT_EQ(property(report, "P1").verdict, Verdict::kPass);  // its own accounting holds...
  EXPECT_EQ(property(report, "P2").verdict, Verdict::kFail);  // ...the reserve is below T_cold = 10.06 GiB
  EXPECT_EQ(property(report, "P3").verdict, Verdict::kFail);
  EXPECT_NE(report.diagnosis.find("estimator fault"), std::string::npos) << report.diagnosis;
}

TEST(ExamplePolicy, EvictsTheLeastRecentlyUsedModelOnlyUntilTheStageFits) {
  const Scenario s = seed_w7900();
  example::EvictOthersFirst policy(11 * GiB);  // above the decode's 10.06 GiB
  const RunRecord run = run_policy(policy, s);
  ASSERT_TRUE(run.completed) << run.failure;
  const StageDecision& d = run.stages.front().decision;
  // The scenario starts with transformer, text encoder and VAE resident: the transformer (20.23 GiB) is the
  // least recently used and frees enough; the text encoder stays.
  ASSERT_EQ(d.evictions.size(), 1u);
  EXPECT_EQ(d.evictions.front().model, "transformer");
  EXPECT_EQ(d.stop, StopReason::kSatisfied);
  ASSERT_TRUE(d.free_memory && d.estimate);
  EXPECT_GE(*d.free_memory, static_cast<std::int64_t>(*d.estimate + d.weights_loaded));
  const PropertyReport report = judge(s, run, 11 * GiB);
  EXPECT_FALSE(report.failed()) << report.diagnosis;
  EXPECT_EQ(property(report, "P1").checked, 1);
}

TEST(ExamplePolicy, StopsAsExhaustedWhenEvictingEverythingElseIsNotEnough) {
  const Scenario s = seed_w7900();
  example::EvictOthersFirst policy(45 * GiB);  // more than the 44.98 GiB card
  const RunRecord run = run_policy(policy, s);
  const StageDecision& d = run.stages.front().decision;
  EXPECT_EQ(d.evictions.size(), 2u);  // both other models
  EXPECT_EQ(d.stop, StopReason::kExhausted);
  // P1 judges satisfied stops only: an exhausted one claims nothing.
  EXPECT_EQ(property(judge(s, run, 45 * GiB), "P1").checked, 0);
}

TEST(ExamplePolicy, ReportsWhatItOffloadedTruthfully) {
  const Scenario s = seed_w7900();
  example::EvictOthersFirst policy(11 * GiB);
  const RunRecord run = run_policy(policy, s);
  ASSERT_FALSE(run.calls.empty());
  EXPECT_EQ(run.calls.front().claim.offloaded, std::vector<std::string>{"transformer"});
  EXPECT_TRUE(run.calls.front().claimed_offloaded_but_resident.empty());
  EXPECT_EQ(property(judge(s, run, 11 * GiB), "P4").verdict, Verdict::kPass);
}

// The seed scenario with policy_settings for `family`, read as a user's file is.
Scenario seed_with_settings_for(const std::string& family) {
  std::ifstream in(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json");
  nlohmann::json doc = nlohmann::json::parse(in);
  doc["policy_settings"][family] = {{"reserve_gb", 11}};
  return Scenario::from_json(doc, "seed.json", kRoot);
}

std::string refusal(const std::function<void()>& read) {
  try {
    read();
  } catch (const ParseError& e) {
    return e.what();
  }
  return "accepted";
}

// A new family of offsim's own must declare its settings in policy_settings.cpp, or every scenario that
// sets them would be refused (or, worse, its typos ignored).
TEST(PolicyRegistry, EveryFamilyOfOffsimsOwnPoliciesHasASettingsSchema) {
  const auto schema = policy_settings_schema();
  for (const PolicyEntry& e : all_policies()) {
    const std::string family = e.make()->info().family;
    EXPECT_TRUE(std::any_of(schema.begin(), schema.end(), [&](const auto& f) { return f.family == family; }))
        << e.id << ": family \"" << family << "\" has no entry in policies/policy_settings.cpp";
  }
}

TEST(PolicyRegistry, RegistersAPolicyWrittenOutsideOffsimOnce) {
  const PolicyEntry entry{"evict-others-first@registry-test", "test", false,
                          [] { return std::make_unique<example::EvictOthersFirst>(); }};
  // Settings of a family no policy reads are a typo or a missing policy: refused...
  EXPECT_NE(refusal([] { (void)seed_with_settings_for("evict-others-first"); })
                .find("scenario.policy_settings.evict-others-first: unknown policy family"),
            std::string::npos);
  register_policy(entry);
  // ... until a policy of that family is registered at run time: its settings are its own to read.
  const Scenario s = seed_with_settings_for("evict-others-first");
  EXPECT_EQ(s.policy_settings.at("evict-others-first").at("reserve_gb"), 11);
  EXPECT_NE(refusal([] { (void)seed_with_settings_for("evict-others-frist"); })
                .find("unknown policy family (did you mean \"evict-others-first\"?)"),
            std::string::npos);
  EXPECT_EQ(make_policy("evict-others-first@registry-test")->info().family, "evict-others-first");
  EXPECT_EQ(match_policies("evict-others-first"), std::vector<std::string>{"evict-others-first@registry-test"});
  EXPECT_THROW(register_policy(entry), ConfigError);  // the id is taken
  EXPECT_THROW(register_policy({"", "x", false, entry.make}), ConfigError);
  EXPECT_THROW(register_policy({"x@1", "x", false, nullptr}), ConfigError);
}

}  // namespace
}  // namespace offsim::policies
