// The CI gate: every applicable property of every selected policy, from fixed seeds, within a time
// budget, optionally one shard of the work; the result is what JUnit XML and the terminal report show.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "offsim/check/property_check.hpp"

namespace offsim::check {

struct GateOptions {
  std::vector<std::string> policies;         // ids; empty = the latest profile of every family
  std::vector<PropertyId> properties;        // empty = all that apply to each policy
  std::string aspect;                        // count only violations with this aspect (e.g. fragmentation-only)
  std::vector<std::uint64_t> seeds = {20261126};  // one RapidCheck run per seed
  int cases = 60;                            // successful cases per run
  double time_budget_seconds = 150;          // no new run starts after this
  int shard_index = 0;                       // run only units with index % shard_count == shard_index
  int shard_count = 1;
  std::filesystem::path root;
  GeneratorScope scope;                      // pipelines / allocator settings to draw from (empty: all)
  std::filesystem::path counterexample_dir;  // where shrunk counterexamples are written
  std::function<void(std::size_t done, std::size_t total)> progress;
};

struct GateResult {
  std::vector<PropertyCheckResult> checks;
  std::size_t units_selected = 0;  // (policy, property, seed) units of the whole selection, every shard
  std::size_t units_total = 0;     // of those, the units in this shard
  std::size_t units_skipped = 0;   // not started because the time budget ran out
  double seconds = 0;
  std::size_t simulations = 0;
  /// A blocking failure: P1-P4 violated, a property not exercised (missing coverage class), a check not
  /// started (time budget), or nothing to check in this shard: a gate never passes having checked nothing.
  /// P5 (over-estimate) is reported only.
  bool failed() const;
};

/// Policies the gate checks by default: the newest profile of each family (historical buggy profiles
/// are the corpus's business).
std::vector<std::string> default_gate_policies();

GateResult run_gate(const GateOptions& options);

}  // namespace offsim::check
