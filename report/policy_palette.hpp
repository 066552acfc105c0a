// Colours and dash patterns for many policies in one chart: a hue per family (the id up to its first '-'
// or '@': every InvokeAI profile is a blue), a distinct lightness per member, and dash patterns that
// alternate within a family so that neighbouring shades still read as two lines. Categorical schemes
// (tableau10) repeat after ten policies; the default suite has fifteen.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace offsim::report::detail {

struct PolicyStyle {
  std::string colour;           // "#rrggbb", distinct for every policy given
  std::vector<int> dash;        // Vega strokeDash; empty: solid
};

/// One style per policy id, in the order given; no two alike in colour.
std::vector<PolicyStyle> policy_styles(const std::vector<std::string>& policy_ids);

}  // namespace offsim::report::detail
