// The HTML page of `offsim calibrate --html FILE`: per (VAE, op, backend), the measured points (shape = source,
// colour = the held-out verdict of the primary fit), every fitted form's line, the lines of the estimators
// upstream ships, and the margin band of the primary fit (between E / 1.5 and E: a peak inside it satisfies
// both P2 and P5), log-log over pixels; then the fit, linearity and upstream tables. One file, opens offline.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "offsim/policies/calibration.hpp"
#include "offsim/report/html_page.hpp"
#include "offsim/report/vega_assets.hpp"

namespace offsim::report {

/// {"format": "offsim-calibration-report/1", "calibration": <calibrate --json>, "charts": [{"group", "values"}]}:
/// the curves are each estimate evaluated on a grid of square sizes around the group's points.
nlohmann::json calibration_report_data(const policies::CalibrationReport& report, const nlohmann::json& calibration_json);

HtmlPage calibration_report_page(const nlohmann::json& data);

/// Builds the data and writes the page atomically.
void write_calibration_report(const policies::CalibrationReport& report, const nlohmann::json& calibration_json,
                              const VegaAssets& assets, const std::filesystem::path& path);

}  // namespace offsim::report
