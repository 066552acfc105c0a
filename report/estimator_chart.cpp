#include "offsim/report/estimator_chart.hpp"

#include <algorithm>

#include "chart_util.hpp"

namespace offsim::report {

using nlohmann::json;
using namespace detail;

bool panel_has_true_peak(const json& panel) {
  return std::any_of(panel["points"].begin(), panel["points"].end(), [](const json& p) { return p.value("kind", "") == "true peak"; });
}

json estimator_chart(const json& panels) {
  json values = json::array();
  for (const json& panel : panels["panels"]) {
    if (!panel_has_true_peak(panel)) continue;
    for (json point : panel["points"]) {
      point["panel"] = panel["panel"];
      values.push_back(std::move(point));
    }
  }
  if (values.empty()) return nullptr;
  // Explicit domains shared by every panel: panels compare at a glance, and a layer that is empty in a
  // panel (no violation there) has no extent to compute.
  double mp_lo = 1e300, mp_hi = 0, gib_lo = 1e300, gib_hi = 0;
  for (const json& v : values) {
    mp_lo = std::min(mp_lo, v["mp"].get<double>());
    mp_hi = std::max(mp_hi, v["mp"].get<double>());
    for (const char* f : {"gib", "e_gib"}) {
      if (!v.contains(f) || v[f].get<double>() <= 0) continue;
      gib_lo = std::min(gib_lo, v[f].get<double>());
      gib_hi = std::max(gib_hi, v[f].get<double>());
    }
  }
  const json x = {{"field", "mp"}, {"type", "quantitative"}, {"title", "image size (megapixels, log)"},
                  {"scale", {{"type", "log"}, {"domain", {mp_lo / 1.15, mp_hi * 1.15}}, {"nice", false}}}};
  const json y = {{"field", "gib"}, {"type", "quantitative"}, {"title", "peak reserved growth (GiB, log)"},
                  {"scale", {{"type", "log"}, {"domain", {gib_lo / 1.3, gib_hi * 1.3}}, {"nice", false}}}};
  const json verdicts = {{"field", "verdict"}, {"type", "nominal"}, {"title", "true peak vs estimate"},
                         {"scale", {{"domain", {"E < T (P2 violated)", "T <= E <= 1.5 T", "E > 1.5 T (P5 over-estimate)"}},
                                    {"range", {kFailColour, "#2b8a3e", kOverColour}}}}};
  const json point_tooltip = json::array({{{"field", "panel"}, {"title", "estimator"}},
                                          {{"field", "height"}, {"title", "height (px)"}},
                                          {{"field", "width"}, {"title", "width (px)"}},
                                          gib_tooltip("gib", "T (true peak)"), exact_bytes_tooltip("bytes", "T"),
                                          gib_tooltip("e_gib", "E (estimate)"), exact_bytes_tooltip("e_bytes", "E"),
                                          {{"field", "verdict"}},
                                          {{"field", "domain"}, {"title", "estimator domain"}},
                                          {{"field", "source"}, {"title", "T from"}}});
  const json model_tooltip = json::array({{{"field", "panel"}, {"title", "estimator"}},
                                          {{"field", "height"}, {"title", "height (px)"}},
                                          {{"field", "width"}, {"title", "width (px)"}},
                                          gib_tooltip("gib", "E (model)"), exact_bytes_tooltip("bytes", "E"),
                                          {{"field", "domain"}, {"title", "estimator domain"}}});
  return {{"title", {{"text", "Estimators: estimate vs true peak vs resolution"}, {"anchor", "start"},
                     {"subtitle", "line: the estimator's model (dashed outside its stated domain); points: true peaks, "
                                  "red segment: by how much the estimate falls short"}}},
          {"data", {{"values", values}}},
          {"facet", {{"field", "panel"}, {"type", "nominal"}, {"title", nullptr},
                     {"header", {{"labelLimit", 520}, {"labelFontSize", 11}, {"labelFontWeight", "bold"}}}}},
          {"columns", 2},
          // Every panel with its own axis labels (the scales stay shared: their domains are set above).
          {"resolve", {{"axis", {{"x", "independent"}, {"y", "independent"}}}}},
          {"spec",
           {{"width", 480},
            {"height", 260},
            {"layer",
             json::array({
                 {{"transform", json::array({{{"filter", "datum.kind === 'model'"}}})},
                  {"mark", {{"type", "line"}, {"color", "#33507a"}, {"strokeWidth", 2}, {"point", false}}},
                  {"encoding", {{"x", x}, {"y", y},
                                {"strokeDash", {{"field", "domain"}, {"type", "nominal"}, {"title", "estimator model"},
                                                {"scale", {{"domain", {"inside stated domain", "outside stated domain"}},
                                                           {"range", {json::array({1, 0}), json::array({5, 4})}}}}}},
                                {"tooltip", model_tooltip}}}},
                 {{"transform", json::array({{{"filter", "datum.kind === 'true peak' && datum.e_bytes < datum.bytes"}}})},
                  {"mark", {{"type", "rule"}, {"color", kFailColour}, {"strokeWidth", 2.5}}},
                  {"encoding", {{"x", x}, {"y", {{"field", "e_gib"}, {"type", "quantitative"}}}, {"y2", {{"field", "gib"}}},
                                {"tooltip", point_tooltip}}}},
                 {{"transform", json::array({{{"filter", "datum.kind === 'true peak'"}}})},
                  {"mark", {{"type", "point"}, {"filled", true}, {"size", 70}, {"opacity", 0.9}, {"stroke", "#1d2330"}, {"strokeWidth", 0.6}}},
                  {"encoding", {{"x", x}, {"y", y}, {"color", verdicts},
                                {"shape", {{"field", "origin"}, {"type", "nominal"}, {"title", "true peak from"}}},
                                {"tooltip", point_tooltip}}}},
             })}}},
          {"config", {{"legend", {{"orient", "bottom"}, {"columns", 2}, {"labelLimit", 420}}}}}};
}

}  // namespace offsim::report
