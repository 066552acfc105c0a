// New constants for an estimator offsim already knows, so that `offsim eval` and `offsim check` judge P1-P5 with
// them before anyone opens a pull request (docs/calibration.md, "Evaluate your own estimator"). An override
// keeps the estimator's id (scenarios and policy profiles that name it pick it up) and its stated domain, and
// replaces what it computes for each (op, backend) it gives constants for with a calibrated form
// (calibration_fit.hpp): InvokeAI's C x H x W x es [+ F], ComfyUI's K x volume x dtype_size, or knots. Tiled
// workloads and (op, backend) pairs it says nothing about keep the estimator's own arithmetic.
//
// Read from a JSON file: {"format": "offsim-estimator-override/1", "estimator": ID, "constants": {...}} or the
// output of `offsim calibrate --json` (its "overrides").
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "offsim/policies/calibration.hpp"
#include "offsim/policies/calibration_fit.hpp"
#include "offsim/policies/estimator.hpp"

namespace offsim::policies {

struct EstimatorOverride {
  std::string estimator;  // id of a registered estimator
  std::map<std::pair<VaeOp, Backend>, FittedEstimate> constants;
  std::string provenance;  // where the constants came from (the file's "provenance", or calibrate's sources)
  std::string file;        // the file it was read from ("" when built in memory)
};

/// Puts `replacement` in the registry (estimator_registry.cpp) in place of the estimator with its id and returns
/// the one it replaced. Process-wide: ScopedEstimatorOverrides below uses it. Throws ConfigError for an unknown id.
Estimator replace_estimator(Estimator replacement);

/// Every override in the file (one for a bare override file, each of "overrides" in calibrate's JSON).
/// Throws ConfigError / ParseError naming the file, an unknown estimator id, op, backend or key.
std::vector<EstimatorOverride> read_estimator_overrides(const std::filesystem::path& path);
/// The same from a parsed document; `where` names it in errors.
std::vector<EstimatorOverride> estimator_overrides_from_json(const nlohmann::json& doc, const std::string& where);
nlohmann::json to_json(const EstimatorOverride& override_);

/// What `offsim calibrate --json` proposes: for each VAE of the report, the estimators in `targets` that apply to
/// it (none given: the newest registered InvokeAI and ComfyUI estimators that apply to it and pass an estimate),
/// each with the report's fits, `invokeai_form` for InvokeAI's and the comfyui form for ComfyUI's. Throws
/// ConfigError for a target that applies to no VAE of the report or a form that was not fitted.
std::vector<EstimatorOverride> overrides_from_calibration(const CalibrationReport& report,
                                                          const std::vector<std::string>& targets, FitForm invokeai_form);

/// `original` with the override's constants (same id and domain; the label says it is overridden).
Estimator apply_override(const Estimator& original, const EstimatorOverride& override_);

/// Replaces the registered estimators named by `overrides` for its lifetime (the registry is process-wide:
/// install before any run, as the CLI does; not for concurrent use). Restores the originals on destruction.
class ScopedEstimatorOverrides {
 public:
  explicit ScopedEstimatorOverrides(const std::vector<EstimatorOverride>& overrides);
  ~ScopedEstimatorOverrides();
  ScopedEstimatorOverrides(const ScopedEstimatorOverrides&) = delete;
  ScopedEstimatorOverrides& operator=(const ScopedEstimatorOverrides&) = delete;

 private:
  std::vector<Estimator> originals_;
};

}  // namespace offsim::policies
