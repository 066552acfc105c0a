#include "policy_palette.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace offsim::report::detail {

namespace {

struct Hue {
  const char* family;
  double hue;         // degrees
  double saturation;  // 0..1
};

// The families offsim transcribes, each its own hue; other families take the spare hues in order.
constexpr Hue kFamilies[] = {{"invokeai", 212, 0.70}, {"comfyui", 24, 0.85}, {"lightx2v", 135, 0.55},
                             {"diffusers", 280, 0.45}, {"lookahead", 0, 0.0}};
constexpr double kSpareHues[] = {350, 48, 180, 320, 95};

std::string family_of(const std::string& id) { return id.substr(0, id.find_first_of("-@")); }

std::string hsl_hex(double h, double s, double l) {
  const double c = (1 - std::abs(2 * l - 1)) * s;
  const double hp = std::fmod(h, 360.0) / 60.0;
  const double x = c * (1 - std::abs(std::fmod(hp, 2.0) - 1));
  double r = 0, g = 0, b = 0;
  if (hp < 1) {
    r = c, g = x;
  } else if (hp < 2) {
    r = x, g = c;
  } else if (hp < 3) {
    g = c, b = x;
  } else if (hp < 4) {
    g = x, b = c;
  } else if (hp < 5) {
    r = x, b = c;
  } else {
    r = c, b = x;
  }
  const double m = l - c / 2;
  auto byte = [m](double v) { return static_cast<int>(std::lround(std::clamp(v + m, 0.0, 1.0) * 255)); };
  char hex[8];
  std::snprintf(hex, sizeof hex, "#%02x%02x%02x", byte(r), byte(g), byte(b));
  return hex;
}

const std::vector<std::vector<int>>& dashes() {
  static const std::vector<std::vector<int>> all = {{}, {6, 3}, {2, 2}, {8, 3, 2, 3}};
  return all;
}

}  // namespace

std::vector<PolicyStyle> policy_styles(const std::vector<std::string>& policy_ids) {
  // Members of each family, in the order given.
  std::vector<std::string> families;
  std::map<std::string, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < policy_ids.size(); ++i) {
    const std::string f = family_of(policy_ids[i]);
    if (!members.count(f)) families.push_back(f);
    members[f].push_back(i);
  }
  std::vector<PolicyStyle> styles(policy_ids.size());
  std::size_t spare = 0;
  for (const std::string& f : families) {
    double hue = 0, saturation = 0.6;
    const auto known = std::find_if(std::begin(kFamilies), std::end(kFamilies), [&](const Hue& h) { return f == h.family; });
    if (known != std::end(kFamilies)) {
      hue = known->hue;
      saturation = known->saturation;
    } else {
      // A family offsim does not know: a spare hue, shifted on each pass once they run out.
      hue = kSpareHues[spare % std::size(kSpareHues)] + 17.0 * static_cast<double>(spare / std::size(kSpareHues));
      ++spare;
    }
    const std::vector<std::size_t>& m = members[f];
    for (std::size_t j = 0; j < m.size(); ++j) {
      // Lightness from 28% to 68%: dark enough on white, never washed out; a lone member sits in between.
      const double l = m.size() == 1 ? 0.42 : 0.28 + 0.40 * static_cast<double>(j) / static_cast<double>(m.size() - 1);
      styles[m[j]].colour = hsl_hex(hue, saturation, l);
      styles[m[j]].dash = dashes()[j % dashes().size()];
    }
  }
  // Two unknown families could still meet on one colour after rounding: move the later one round the wheel.
  for (std::size_t i = 0; i < styles.size(); ++i) {
    const auto before = styles.begin() + static_cast<std::ptrdiff_t>(i);
    for (int attempt = 1; std::any_of(styles.begin(), before, [&](const PolicyStyle& s) { return s.colour == styles[i].colour; });
         ++attempt) {
      styles[i].colour = hsl_hex(static_cast<double>(attempt) * 29.0, 0.55, 0.45);
    }
  }
  return styles;
}

}  // namespace offsim::report::detail
