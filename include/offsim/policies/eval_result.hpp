// One cell of `offsim eval`: a policy run on a scenario with its property verdicts, and the JSON form
// that reports and CI consume (schema: docs/eval_json.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "offsim/policies/properties.hpp"
#include "offsim/policies/runner.hpp"

namespace offsim::policies {

struct EvalResult {
  const Scenario* scenario = nullptr;
  RunRecord run;
  PropertyReport properties;
};

/// Runs one policy (by id) on one scenario and checks P1-P5.
EvalResult evaluate(const std::string& policy_id, const Scenario& scenario, const PropertyOptions& options = {});

/// {"policy": {...}, "scenario": ..., "completed": ..., "stages": [...], "properties": {...}, ...}
nlohmann::json to_json(const EvalResult& result, std::size_t timeline_points = 400);
/// {"format": "offsim-eval/1", "results": [...]}
nlohmann::json to_json(const std::vector<EvalResult>& results, std::size_t timeline_points = 400);

}  // namespace offsim::policies
