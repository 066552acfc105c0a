// Every n/a verdict says why (`offsim eval` prints the reasons under its table, the JSON holds them per
// run): over the bundled default suite, every policy, with and without the minimum-capacity search.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

std::vector<Scenario> default_suite() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kRoot / "scenarios/default")) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::vector<Scenario> out;
  for (const auto& file : files) out.push_back(Scenario::load(file, kRoot));
  return out;
}

TEST(NotApplicableVerdicts, EachOneNamesItsReason) {
  const std::vector<Scenario> suite = default_suite();
  std::size_t not_applicable = 0;
  std::vector<std::string> properties_seen;
  for (const bool search : {false, true}) {
    PropertyOptions options;
    options.check_min_capacity = search;
    for (const Scenario& scenario : suite) {
      for (const PolicyEntry& policy : all_policies()) {
        EvalResult result;
        try {
          result = evaluate(policy.id, scenario, options);
        } catch (const ConfigError&) {
          continue;  // a policy that cannot express the scenario: eval prints the error itself as the reason
        }
        for (const PropertyResult& p : result.properties.results) {
          if (p.verdict != Verdict::kNotApplicable) continue;
          ++not_applicable;
          if (std::find(properties_seen.begin(), properties_seen.end(), p.id) == properties_seen.end()) {
            properties_seen.push_back(p.id);
          }
          EXPECT_FALSE(p.detail.empty()) << p.id << " n/a without a reason: " << scenario.name << " x " << policy.id
                                         << (search ? " (capacity search on)" : " (capacity search off)");
        }
      }
    }
  }
  EXPECT_GT(not_applicable, 0u);
  // The suite has n/a verdicts of P1, P2, P4 and P5 (P3 always applies).
  for (const char* id : {"P1", "P2", "P4", "P5"}) {
    EXPECT_NE(std::find(properties_seen.begin(), properties_seen.end(), id), properties_seen.end()) << id;
  }
}

}  // namespace
}  // namespace offsim::policies
