// The HTML report of `offsim eval --html FILE`: the verdict matrix (policies x scenarios, each cell a link
// to its run), then per scenario every policy's memory timeline with its stage table (E, F_P, W_load,
// stop reason, evictions, T_warm and T_cold each with the provenance of its working memory) and the segment
// map at the run's peak and at any OOM, then the estimators' models against true peaks. One file, opens
// offline; the data it draws is embedded as JSON (segment maps only inside their charts).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "offsim/policies/eval_result.hpp"
#include "offsim/report/html_page.hpp"
#include "offsim/report/vega_assets.hpp"

namespace offsim::report {

/// {"eval": to_json(results), "estimators": estimator_panels(results, root), "suite": [...]}: everything
/// the report draws. `suite` names the scenario files or folders that were run.
nlohmann::json eval_report_data(const std::vector<policies::EvalResult>& results, const std::filesystem::path& root,
                                const std::vector<std::string>& suite);

/// The page built from eval_report_data's output.
HtmlPage eval_report_page(const nlohmann::json& data);

void write_eval_report(const nlohmann::json& data, const VegaAssets& assets, const std::filesystem::path& path);

}  // namespace offsim::report
