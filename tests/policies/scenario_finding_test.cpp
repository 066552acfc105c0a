// A scenario's "finding" names the policy and property it breaks (counterexamples of `offsim check`,
// scenarios/findings/), so that `offsim check --replay FILE` needs neither retyped: it is read, validated
// naming the field, and written back by to_json.
#include <gtest/gtest.h>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "scenario_fixture.hpp"

namespace offsim::policies {
namespace {

Scenario with_finding(const nlohmann::json& finding) {
  nlohmann::json stage = {{"name", "decode"}, {"kind", "other"}, {"models", {"vae"}}};
  return test::build({{"device", test::device(4 * GiB)},
                      {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
                      {"stages", nlohmann::json::array({stage})},
                      {"finding", finding}},
                     {{"vae.json", test::manifest("vae", "vae", {{"w", 1 * GiB}})}});
}

TEST(ScenarioFinding, IsReadAndWrittenBack) {
  const Scenario s = with_finding({{"policy", "invokeai@fda7c42b"},
                                   {"also", {"invokeai@7567ee2a"}},
                                   {"property", "P3"},
                                   {"aspect", "estimator"},
                                   {"seed", 18446744073709551615ull}});
  ASSERT_TRUE(s.finding.has_value());
  EXPECT_EQ(s.finding->policy, "invokeai@fda7c42b");
  EXPECT_EQ(s.finding->also, std::vector<std::string>{"invokeai@7567ee2a"});
  EXPECT_EQ(s.finding->property, "P3");
  EXPECT_EQ(s.finding->aspect, "estimator");
  EXPECT_EQ(s.finding->seed, 18446744073709551615ull);
  const nlohmann::json back = s.to_json().at("finding");
  EXPECT_EQ(back.at("policy"), "invokeai@fda7c42b");
  EXPECT_EQ(back.at("aspect"), "estimator");
  EXPECT_EQ(back.at("seed"), 18446744073709551615ull);
  EXPECT_FALSE(with_finding({{"policy", "x"}, {"property", "P1"}}).to_json().at("finding").contains("seed"));
}

TEST(ScenarioFinding, RefusesWhatIsNotAFindingNamingTheField) {
  const auto error_of = [](const nlohmann::json& finding) -> std::string {
    try {
      (void)with_finding(finding);
    } catch (const ParseError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(error_of({{"property", "P3"}}).find("scenario.finding.policy: missing"), std::string::npos);
  EXPECT_NE(error_of({{"policy", "a"}, {"property", "P9"}}).find("scenario.finding.property: must be P1, P2, P3, P4 or P5"),
            std::string::npos);
  EXPECT_NE(error_of({{"policy", "a"}, {"property", "P3"}, {"seed", -1}}).find("scenario.finding.seed"), std::string::npos);
  EXPECT_NE(error_of({{"policy", ""}, {"property", "P3"}}).find("scenario.finding.policy"), std::string::npos);
}

}  // namespace
}  // namespace offsim::policies
