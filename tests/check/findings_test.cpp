// scenarios/findings/: the README's new findings, each a shrunk counterexample with the policy, property
// and aspect it violates. They must keep failing exactly that way; when a profile or the simulator changes
// so that one no longer does, the README is wrong and this test says which.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/check/property_check.hpp"
#include "offsim/policies/scenario.hpp"

namespace offsim::check {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

TEST(Findings, EachStillFailsTheWayTheReadmeSays) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kRoot / "scenarios/findings")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().filename().string());
    const policies::Scenario scenario = policies::Scenario::load(entry.path(), kRoot);
    ASSERT_TRUE(scenario.finding) << "a findings scenario names the policy, property and aspect it fails";
    const policies::ScenarioFinding& f = *scenario.finding;
    std::vector<std::string> policies = {f.policy};
    policies.insert(policies.end(), f.also.begin(), f.also.end());
    for (const std::string& policy : policies) {
      const PropertyCheckResult r = check_property_on(policy, parse_property(f.property), scenario, f.aspect);
      EXPECT_TRUE(r.violated()) << policy << " no longer fails " << f.property << " " << f.aspect;
      ++checked;
    }
  }
  EXPECT_GE(checked, 4);
}

}  // namespace
}  // namespace offsim::check

