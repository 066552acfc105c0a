// Estimate vs true peak vs resolution, log-log, one panel per estimator (data: estimator_panels.hpp): the
// estimator's model as a line (dashed outside the domain upstream states), true peaks as points coloured
// by verdict, and each violation (E < T) highlighted with a red segment from the estimate up to the peak.
#pragma once

#include <nlohmann/json.hpp>

namespace offsim::report {

/// Whether a panel has a true peak to hold its model against: a panel of the model alone judges nothing, so
/// the chart leaves it out and the page lists it instead.
bool panel_has_true_peak(const nlohmann::json& panel);

/// Vega-Lite spec of the panels with a true peak, each with axes of its own; null when none has one.
nlohmann::json estimator_chart(const nlohmann::json& panels);

}  // namespace offsim::report
