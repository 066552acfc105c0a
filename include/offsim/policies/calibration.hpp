// `offsim calibrate`'s analysis (docs/calibration.md): measured peaks grouped per (VAE, op, backend); each
// estimator form fitted to bound every point with the smallest margin; the fit proven on points it never saw
// (leave-one-out and a held-out band of large resolutions); whether the peak is linear in pixels; and the
// estimators upstream ships judged against the same points. A verdict (P2: E >= T, P5: E <= 1.5 T) is only
// ever given by a fit that did not see the point: calibration and test points never overlap (DESIGN.md
// section 2). Upstream estimators are marked where their constants were chosen from the point's source.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/calibration_fit.hpp"
#include "offsim/policies/calibration_point.hpp"

namespace offsim::policies {

struct CalibrationOptions {
  std::vector<FitForm> forms{FitForm::invokeai, FitForm::invokeai_fixed, FitForm::comfyui, FitForm::piecewise};
  /// Held-out band: fit on points with at most this many pixels (H x W x frames), judge the larger ones.
  std::uint64_t holdout_above_pixels = 1024 * 1024;
  /// Every fitted constant x (1 + headroom), rounded up (upstream ships max + ~8%: 0.08).
  double headroom = 0;
  double p5_factor = 1.5;
  /// Linear in pixels = the implied constant varies by at most this fraction over a source's sizes.
  double linear_tolerance = 0.10;
  /// Estimator ids to judge; nullopt = every registered estimator that applies to a group and passes one.
  std::optional<std::vector<std::string>> judge;
};

/// One point judged by one estimate.
struct Judgement {
  std::size_t point = 0;  // index into CalibrationGroup::points
  std::uint64_t estimate = 0;
  double ratio = 0;       // E / T
  bool p2_holds = true;   // E >= T
  bool p5_over = false;   // E > p5_factor x T (reported, not failed)
  /// Upstream estimators: inside the domain upstream states, and whether the estimator's constants were
  /// chosen from this point's source (then it is a coverage check of its own data, not a test).
  bool in_domain = true;
  std::string why_not_in_domain;
  bool seen = false;
  /// Held-out judgements: the fit that judged the point (it never saw it).
  std::optional<FittedEstimate> judged_by;
};

struct JudgementSummary {
  std::size_t points = 0;
  std::size_t p2_failures = 0;
  std::size_t p5_over = 0;
  double min_ratio = 0;
  double max_ratio = 0;
};
JudgementSummary summarize(const std::vector<Judgement>& judgements);

struct FormResult {
  FitForm form = FitForm::invokeai;
  FittedEstimate fit;                    // fitted on every point of the group
  std::vector<Judgement> calibration;    // E / T on the points it was fitted to: P2 holds by construction
  /// Each point judged by a fit on the others, every point at the same pixel count left out with it (another
  /// run at the same size would vouch for it). Empty when the group has one pixel count.
  std::vector<Judgement> leave_one_out;
  /// Fitted on the points with at most holdout_above_pixels pixels; judges the points above (band).
  std::optional<FittedEstimate> band_fit;
  std::vector<Judgement> band;
};

/// Whether the peak is proportional to pixels over one source's sizes (InvokeAI PR #9305's review question).
struct Linearity {
  std::string source;
  std::string variant;
  std::vector<std::size_t> points;  // ascending pixels
  double min_constant = 0, max_constant = 0;  // implied constants, bytes per pixel per element byte
  std::size_t at_min = 0, at_max = 0;
  double spread = 0;  // max / min - 1
  /// The largest increase of the implied constant from a smaller to a larger size (a constant calibrated at
  /// `rise_from` under-estimates `rise_to` by this fraction); <= 0 when it never rises.
  double largest_rise = 0;
  std::size_t rise_from = 0, rise_to = 0;
  bool proportional = false;  // spread <= linear_tolerance
};

struct UpstreamJudgement {
  std::string estimator;
  std::string label;
  std::string upstream;
  std::vector<Judgement> points;
};

struct CalibrationGroup {
  VaeFamily model = VaeFamily::qwen_image;
  VaeOp op = VaeOp::decode;
  Backend backend = Backend::cuda;
  std::vector<CalibrationPoint> points;  // ascending pixels, then source
  std::vector<FormResult> forms;
  std::vector<Linearity> linearity;      // per (source, variant) with at least two pixel counts
  std::vector<UpstreamJudgement> upstream;
  /// "qwen_image decode rocm".
  std::string name() const;
};

struct CalibrationReport {
  CalibrationOptions options;
  std::vector<CalibrationGroup> groups;
  std::vector<std::string> notes;
};

/// Groups the points and runs every analysis. Throws ConfigError for no points, an unknown estimator id in
/// options.judge, or options out of range.
CalibrationReport calibrate(std::vector<CalibrationPoint> points, const CalibrationOptions& options);

/// The report as `offsim calibrate --json` writes it (format offsim-calibration/1, docs/calibration.md).
nlohmann::json to_json(const CalibrationReport& report);
nlohmann::json to_json(const FittedEstimate& fit);
/// Parses to_json(FittedEstimate) back; throws ConfigError naming `where`.
FittedEstimate fitted_estimate_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace offsim::policies
