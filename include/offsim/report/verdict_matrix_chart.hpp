// Policies x scenarios: the run's outcome and the P1-P5 verdicts of each cell, coloured, each cell a link to
// that run's timeline in the same report (anchor "#run-<index of the result>").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace offsim::report {

/// In-page anchor of a result's section.
std::string run_anchor(std::size_t result_index);

/// Vega-Lite spec over the "results" array of the eval JSON.
nlohmann::json verdict_matrix_chart(const nlohmann::json& results);

}  // namespace offsim::report
