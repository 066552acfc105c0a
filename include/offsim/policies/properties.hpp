// The invariant "no eviction implies free >= estimate >= true peak", split into P1-P5 exactly as
// DESIGN.md section 2 defines them, judged on a RunRecord. Each property applies only where its table
// says; a property that does not apply says so instead of passing.
//
//   P1  stop = satisfied  =>  F_P >= E + W_load (+ the policy's documented slack)   [caches with F_P]
//   P2  E >= T_cold inside the estimator's stated domain                             [every estimate]
//   P3  no unhandled OOM; a failure is diagnosed (estimator / accounting / fragmentation / weights)
//   P4  models reported offloaded hold 0 device bytes, and min capacity(k calls) = min capacity(1 call)
//   P5  E <= k T_cold (k = 1.5): an over-estimate evicts needlessly; reported, never failed
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/runner.hpp"

namespace offsim::policies {

enum class Verdict { kPass, kFail, kNotApplicable, kReported };
std::string_view to_string(Verdict verdict);

struct PropertyResult {
  std::string id;  // "P1".."P5"
  Verdict verdict = Verdict::kNotApplicable;
  std::size_t checked = 0;   // stage steps (or calls) the property was evaluated on
  std::size_t violations = 0;
  std::string detail;        // first violation, or why it does not apply
  std::vector<std::size_t> stage_records;  // indices into RunRecord::stages that violate it
  /// Which parts of a property failed. P4: "residency" (models reported offloaded hold no bytes),
  /// "capacity" (k calls fit where one fits). P3: the diagnosis of each OOM ("weights", "estimator",
  /// "memory-fraction", "accounting", "fragmentation", "unaccounted"), and "fragmentation-only" when P3
  /// fails on fragmentation while P1 and P2 hold.
  std::vector<std::string> aspects;
};

struct PropertyOptions {
  double p5_factor = 1.5;
  /// P4's capacity half reruns the scenario; off for cheap checks.
  bool check_min_capacity = true;
  /// Makes a fresh instance of the policy that produced the run (needed for reruns).
  std::function<std::unique_ptr<Policy>()> make_policy;
};

struct PropertyReport {
  std::array<PropertyResult, 5> results;
  std::optional<std::uint64_t> min_capacity_one_call;
  std::optional<std::uint64_t> min_capacity_all_calls;
  /// P3 diagnosis of the first unhandled OOM, e.g. "estimator fault: E = 3.00 GiB < T_cold = 10.06 GiB".
  std::string diagnosis;
  bool failed() const;
};

PropertyReport check_properties(const Scenario& scenario, const RunRecord& run, const PropertyOptions& options);

/// Smallest device total (2 MiB steps) on which `calls` calls of the scenario run without an unhandled
/// OOM under a fresh policy from `make`. nullopt when even the scenario's own capacity fails.
std::optional<std::uint64_t> min_capacity(const Scenario& scenario, int calls,
                                          const std::function<std::unique_ptr<Policy>()>& make);

}  // namespace offsim::policies
