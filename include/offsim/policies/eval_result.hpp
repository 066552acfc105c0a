// One cell of `offsim eval`: a policy run on a scenario with its property verdicts, and the JSON form
// that reports and CI consume (schema: docs/eval_json.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "offsim/policies/properties.hpp"
#include "offsim/policies/runner.hpp"

namespace offsim::policies {

/// The segment map when the run's reserved memory peaked (the first timeline sample with the highest
/// reserved, ties to the highest allocated): what the report draws to show fragmentation at the peak.
struct PeakSegments {
  std::size_t sample = 0;  // index into RunRecord::timeline
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
  std::vector<sim::SegmentInfo> segments;
};

struct EvalResult {
  const Scenario* scenario = nullptr;
  RunRecord run;
  PropertyReport properties;
  std::optional<PeakSegments> peak;  // none when the run sampled nothing
};

/// Runs the policy a second time (the simulator is deterministic) and copies the segment map at the
/// first run's peak. Throws InvariantViolation if the second run does not reproduce the first.
std::optional<PeakSegments> peak_segments(const std::string& policy_id, const Scenario& scenario, const RunRecord& run);

/// Runs one policy (by id) on one scenario and checks P1-P5.
EvalResult evaluate(const std::string& policy_id, const Scenario& scenario, const PropertyOptions& options = {});

/// {"policy": {...}, "scenario": ..., "completed": ..., "stages": [...], "properties": {...}, ...}
nlohmann::json to_json(const EvalResult& result, std::size_t timeline_points = 400);
/// {"format": "offsim-eval/1", "results": [...]}
nlohmann::json to_json(const std::vector<EvalResult>& results, std::size_t timeline_points = 400);

}  // namespace offsim::policies
