// Estimate vs true peak vs resolution, log-log, one panel per estimator (data: estimator_panels.hpp): the
// estimator's model as a line (dashed outside the domain upstream states), true peaks as points coloured
// by verdict, and each violation (E < T) highlighted with a red segment from the estimate up to the peak.
#pragma once

#include <nlohmann/json.hpp>

namespace offsim::report {

/// Vega-Lite spec; nullopt-like null when there is no panel to draw.
nlohmann::json estimator_chart(const nlohmann::json& panels);

}  // namespace offsim::report
