// The data of the estimator chart: for each estimator that a policy asked about a VAE stage of the suite
// (one panel per estimator, VAE family, op and backend), the estimator's model over resolutions (its
// estimate as the stage's image is scaled, marked inside or outside the domain upstream states) and the
// true peaks it should bound: the suite's own stages (T_cold, with their working memory's provenance) and
// published measurement grids of the same VAE, op and backend. A true peak above the estimate violates P2;
// one below 1/1.5 of it is P5's over-estimate.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "offsim/policies/eval_result.hpp"

namespace offsim::report {

/// {"panels": [{"panel", "estimator", "label", "upstream", "basis", "passes_estimate", "points": [...]}]}
/// where each point is {"kind": "model" | "true peak", "mp" (megapixels), "gib", "bytes", "height",
/// "width", "domain", and for true peaks "e_gib", "e_bytes", "verdict", "origin", "source"}. Published
/// points are policies::load_published_points(root) (traces/published).
nlohmann::json estimator_panels(const std::vector<policies::EvalResult>& results, const std::filesystem::path& root,
                                double p5_factor = 1.5);

}  // namespace offsim::report
