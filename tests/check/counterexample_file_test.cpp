// A counterexample file records what it breaks (policy, property, aspect, seed) in its "finding", so that
// `offsim check --replay FILE` replays it with nothing retyped, and the printed replay command says so.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/check/property_check.hpp"
#include "offsim/policies/scenario.hpp"

namespace offsim::check {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

TEST(CounterexampleFile, RecordsThePolicyPropertyAndSeedItBreaks) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "offsim-counterexample-file-test";
  std::filesystem::remove_all(dir);
  const GeneratorInputs inputs = load_generator_inputs(kRoot);
  OutcomeCache cache(kRoot);
  PropertyCheckOptions options;
  options.seed = 20261126;
  options.cases = 20;
  options.aspect = "estimator";
  options.counterexample_dir = dir;
  const PropertyCheckResult r = check_property("invokeai@fda7c42b", PropertyId::kP3, options, cache, inputs);
  ASSERT_TRUE(r.violated()) << r.failure;
  ASSERT_TRUE(std::filesystem::exists(r.counterexample_file));
  EXPECT_EQ(r.replay_command, "offsim check --replay " + r.counterexample_file);

  const policies::Scenario scenario = policies::Scenario::load(r.counterexample_file, kRoot);
  ASSERT_TRUE(scenario.finding);
  EXPECT_EQ(scenario.finding->policy, "invokeai@fda7c42b");
  EXPECT_EQ(scenario.finding->property, "P3");
  EXPECT_EQ(scenario.finding->aspect, "estimator");
  EXPECT_EQ(scenario.finding->seed, 20261126u);
  // What --replay does with the file alone: the recorded policy still breaks the recorded property.
  const PropertyCheckResult replayed = check_property_on(scenario.finding->policy, parse_property(scenario.finding->property),
                                                         scenario, scenario.finding->aspect);
  EXPECT_TRUE(replayed.violated());
  EXPECT_TRUE(check_property_on("invokeai@a6724695", PropertyId::kP3, scenario, "estimator").holds());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace offsim::check
