#include "offsim/check/gate.hpp"

#include <algorithm>
#include <chrono>

#include "offsim/policies/policy_registry.hpp"

namespace offsim::check {

bool GateResult::failed() const {
  if (units_skipped > 0 || checks.empty()) return true;
  return std::any_of(checks.begin(), checks.end(), [](const PropertyCheckResult& c) { return c.blocks_gate(); });
}

std::vector<std::string> default_gate_policies() {
  std::vector<std::string> out;
  for (const policies::PolicyEntry& e : policies::all_policies()) {
    if (e.latest) out.push_back(e.id);
  }
  return out;
}

GateResult run_gate(const GateOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  GateResult result;
  const std::vector<std::string> policies = options.policies.empty() ? default_gate_policies() : options.policies;
  struct Unit {
    std::string policy;
    PropertyId property;
    std::uint64_t seed;
  };
  std::vector<Unit> units;
  std::size_t index = 0;
  // Properties of one (policy, seed) are adjacent: they check the same generated cases and share their runs.
  for (const std::string& policy : policies) {
    const policies::PolicyInfo info = policies::make_policy(policy)->info();
    for (std::uint64_t seed : options.seeds) {
      for (PropertyId property : applicable_properties(info)) {
        if (!options.properties.empty() &&
            std::find(options.properties.begin(), options.properties.end(), property) == options.properties.end()) {
          continue;
        }
        ++result.units_selected;
        if (static_cast<int>(index++ % static_cast<std::size_t>(options.shard_count)) == options.shard_index) {
          units.push_back({policy, property, seed});
        }
      }
    }
  }
  result.units_total = units.size();
  GeneratorInputs inputs = load_generator_inputs(options.root);
  inputs.scope = options.scope;
  OutcomeCache cache(options.root);
  for (std::size_t i = 0; i < units.size(); ++i) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > options.time_budget_seconds) {
      // Listed as failed checks, so that every report (table, JUnit, JSON) shows what was not checked.
      result.units_skipped = units.size() - i;
      for (std::size_t j = i; j < units.size(); ++j) {
        PropertyCheckResult skipped;
        skipped.policy = units[j].policy;
        skipped.property = units[j].property;
        skipped.seed = units[j].seed;
        skipped.failure = "not started: the time budget of " + std::to_string(options.time_budget_seconds) +
                          " s ran out first";
        result.checks.push_back(std::move(skipped));
      }
      break;
    }
    if (i > 0 && (units[i].policy != units[i - 1].policy || units[i].seed != units[i - 1].seed)) cache.clear();
    PropertyCheckOptions o;
    o.seed = units[i].seed;
    o.cases = options.cases;
    o.counterexample_dir = options.counterexample_dir;
    o.aspect = options.aspect;
    result.checks.push_back(check_property(units[i].policy, units[i].property, o, cache, inputs));
    if (options.progress) options.progress(i + 1, units.size());
  }
  result.simulations = cache.runs();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace offsim::check
