// Runs one property (P1-P5) for one policy over generated scenarios with RapidCheck, from a fixed seed:
// the cases it ran, their coverage classes, and on failure the shrunk counterexample as a scenario JSON
// with the command that replays it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "offsim/check/case_generators.hpp"
#include "offsim/check/generated_case.hpp"
#include "offsim/policies/properties.hpp"

namespace offsim::check {

/// The five properties of DESIGN.md section 2 (0-based index into PropertyReport::results).
enum class PropertyId { kP1, kP2, kP3, kP4, kP5 };
std::string_view to_string(PropertyId id);
PropertyId parse_property(std::string_view text);  // "P1".."P5"; throws ConfigError
/// The properties that apply to a policy (P1 needs a free-memory function, P2/P5 an estimate).
std::vector<PropertyId> applicable_properties(const policies::PolicyInfo& info);
/// Coverage classes a property needs generated cases in; empty = the property was not exercised.
std::vector<std::string> required_classes(PropertyId id);

/// A generated case run under a policy, shared by the five properties (same seed, same cases).
struct CaseOutcome {
  bool feasible = true;  // every stage fits the device on its own
  policies::Scenario scenario;
  policies::RunRecord run;
  policies::PropertyReport report;
  std::vector<std::string> classes;
};

class OutcomeCache {
 public:
  explicit OutcomeCache(std::filesystem::path root) : root_(std::move(root)) {}
  /// Runs (once) `policy` on the case; with_min_capacity adds P4's capacity search.
  const CaseOutcome& get(const std::string& policy, const GeneratedCase& c, bool with_min_capacity);
  const std::filesystem::path& root() const { return root_; }
  std::size_t runs() const { return runs_; }
  /// Forgets the outcomes (not the run count): cases of another seed never share them, and a 100-seed
  /// search would otherwise keep every run it made.
  void clear() { outcomes_.clear(); }

 private:
  std::filesystem::path root_;
  std::map<std::string, std::unique_ptr<CaseOutcome>> outcomes_;
  std::size_t runs_ = 0;
};

struct PropertyCheckOptions {
  /// Only this half of a two-part property counts ("residency" or "capacity" for P4); empty = all.
  std::string aspect;
  /// Violations whose every aspect is listed here do not count (a corpus entry's named exception, e.g. a
  /// fixed variant's known, separate memory-fraction fault); any other violation still does.
  std::vector<std::string> excluded_aspects;
  std::uint64_t seed = 1;
  int cases = 100;
  bool shrink = true;
  std::filesystem::path counterexample_dir;  // empty: keep the counterexample in memory only
};

/// How a check ended. Only kHolds and kViolated say anything about the policy: a give-up (RapidCheck found
/// too few cases it could use), an error or a check never started checked nothing.
enum class CheckOutcome { kHolds, kViolated, kGaveUp, kError, kNotStarted };
std::string_view to_string(CheckOutcome outcome);
CheckOutcome parse_check_outcome(std::string_view text);  // throws ConfigError

struct PropertyCheckResult {
  std::string policy;
  PropertyId property = PropertyId::kP1;
  std::uint64_t seed = 0;
  int cases = 0;  // cases that ran (successes before any failure)
  CheckOutcome outcome = CheckOutcome::kNotStarted;
  std::map<std::string, int> classes;           // coverage class -> cases
  std::vector<std::string> missing_classes;     // required classes with no case: a coverage failure
  std::string failure;                          // the violated property's detail, shrunk
  std::string counterexample_case;              // RapidCheck's line for the shrunk case
  std::optional<nlohmann::json> counterexample;  // the shrunk case as a scenario
  std::string counterexample_file;
  std::string replay_command;
  double seconds = 0;
  bool holds() const { return outcome == CheckOutcome::kHolds; }
  /// A case that breaks the property (in a search: the shrunk counterexample), not a give-up or an error.
  bool violated() const { return outcome == CheckOutcome::kViolated; }
  /// Held on cases of every coverage class it needs.
  bool ok() const { return holds() && missing_classes.empty(); }
  /// Fails a gate: anything but ok(), except a P5 violation (over-estimates are reported, never failed).
  bool blocks_gate() const { return !ok() && !(property == PropertyId::kP5 && violated()); }
};

PropertyCheckResult check_property(const std::string& policy, PropertyId property, const PropertyCheckOptions& options,
                                   OutcomeCache& cache, const GeneratorInputs& inputs);

/// Runs one property on one scenario (replay of a stored counterexample): the result's failure says why.
PropertyCheckResult check_property_on(const std::string& policy, PropertyId property, const policies::Scenario& scenario,
                                      const std::string& aspect = "",
                                      const std::vector<std::string>& excluded_aspects = {});

}  // namespace offsim::check
