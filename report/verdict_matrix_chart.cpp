#include "offsim/report/verdict_matrix_chart.hpp"

#include <algorithm>

#include "chart_util.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;

constexpr const char* kProperties[] = {"P1", "P2", "P3", "P4", "P5"};

bool applicable(const json& r) { return r.value("failure", std::string()).rfind("not applicable", 0) != 0; }

}  // namespace

std::string run_anchor(std::size_t result_index) { return "run-" + std::to_string(result_index); }

json verdict_matrix_chart(const json& results) {
  // Scenarios and policies in the order they ran (a facet or axis left to itself sorts by name).
  json values = json::array();
  json scenario_order = json::array(), policy_order = json::array();
  auto add_once = [](json& list, const std::string& name) {
    if (std::find(list.begin(), list.end(), json(name)) == list.end()) list.push_back(name);
  };
  for (const json& r : results) {
    add_once(scenario_order, r["scenario"].value("name", ""));
    add_once(policy_order, r["policy"].value("id", ""));
  }
  const std::size_t policies = policy_order.size();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    const std::string scenario = r["scenario"].value("name", "");
    const std::string policy = r["policy"].value("id", "");
    const std::string href = "#" + run_anchor(i);
    const bool runs = applicable(r);
    const std::string outcome = !runs ? "n/a" : r.value("completed", false) ? "ok" : "OOM";
    values.push_back({{"scenario", scenario}, {"policy", policy}, {"column", "run"}, {"verdict", outcome},
                      {"detail", r.value("failure", std::string())},
                      {"href", href}});
    for (const char* p : kProperties) {
      std::string verdict = "n/a", detail;
      if (runs && r["properties"].contains(p)) {
        verdict = r["properties"][p].value("verdict", "n/a");
        detail = r["properties"][p].value("detail", "");
      }
      if (detail.size() > 400) detail = detail.substr(0, 400) + "…";
      values.push_back({{"scenario", scenario}, {"policy", policy}, {"column", p}, {"verdict", verdict},
                        {"detail", detail}, {"href", href}});
    }
  }
  // Laid out to fit the page: the policy names in full on the left, scenarios wrapped into as many rows of
  // facets as the width needs, each scenario's name on as many lines as its facet's width needs.
  std::size_t longest_policy = 0;
  for (const json& p : policy_order) longest_policy = std::max(longest_policy, p.get<std::string>().size());
  const int label_px = text_width_px(longest_policy, 10) + 10;
  constexpr int kStep = 30, kSpacing = 16, kHeaderFont = 11;
  const int facet_px = 6 * kStep;
  const int per_row = std::max(1, (kPageContentWidth - label_px - 8) / (facet_px + kSpacing));
  const auto header_chars = static_cast<std::size_t>(facet_px / (kHeaderFont * 0.68));
  json header_lines = json::object();
  for (const json& sc : scenario_order) header_lines[sc.get<std::string>()] = wrap_lines(sc.get<std::string>(), header_chars);

  const json columns = {"run", "P1", "P2", "P3", "P4", "P5"};
  const json x = {{"field", "column"}, {"type", "ordinal"}, {"sort", columns}, {"title", nullptr},
                  {"axis", {{"orient", "top"}, {"labelAngle", 0}}}};
  const json y = {{"field", "policy"}, {"type", "nominal"}, {"title", nullptr}, {"sort", policy_order},
                  {"axis", {{"labelLimit", 0}}}};
  // "ok" (the run completed) shares pass's colour and "OOM" FAIL's: one legend entry each.
  const json colour = {{"field", "verdict"}, {"type", "nominal"}, {"title", "verdict"},
                       {"scale", {{"domain", {"pass", "ok", "FAIL", "OOM", "over", "n/a"}},
                                  {"range", {kPassColour, kPassColour, kFailColour, kFailColour, kOverColour, kNotApplicableColour}}}},
                       {"legend", {{"values", {"pass", "FAIL", "over", "n/a"}},
                                   {"labelExpr", "{'pass': 'pass / ok (the run completed)', 'FAIL': 'FAIL / OOM (unhandled)', "
                                                 "'over': 'over (P5: an over-estimate, reported)', 'n/a': 'n/a (does not apply)'}[datum.label]"},
                                   {"labelLimit", 0}}}};
  const json tooltip = json::array({{{"field", "scenario"}}, {{"field", "policy"}}, {{"field", "column"}, {"title", "property"}},
                                    {{"field", "verdict"}}, {{"field", "detail"}}});
  return {{"title", {{"text", "Verdicts: policies x scenarios"}, {"anchor", "start"},
                     {"subtitle", "click a cell to open its memory timeline"}}},
          {"data", {{"values", values}}},
          {"facet", {{"field", "scenario"}, {"type", "nominal"}, {"title", nullptr}, {"sort", scenario_order},
                     {"header", {{"labelAngle", 0}, {"labelLimit", facet_px}, {"labelFontSize", kHeaderFont}, {"labelFontWeight", "bold"}, {"labelBaseline", "bottom"},
                                 {"labelExpr", header_lines.dump() + "[datum.value] || datum.value"}}}}},
          {"columns", per_row},
          {"spacing", kSpacing},
          // Each facet's own column labels, under its name, on every row of facets.
          {"resolve", {{"axis", {{"x", "independent"}}}}},
          {"spec", {{"width", {{"step", kStep}}},
                    {"height", {{"step", policies > 14 ? 18 : 22}}},
                    {"layer", json::array({
                                  {{"mark", {{"type", "rect"}, {"stroke", "#ffffff"}, {"strokeWidth", 1.5}, {"cursor", "pointer"}}},
                                   {"encoding", {{"x", x}, {"y", y}, {"color", colour}, {"href", {{"field", "href"}}}, {"tooltip", tooltip}}}},
                                  {{"mark", {{"type", "text"}, {"fontSize", 9}, {"cursor", "pointer"}}},
                                   {"encoding", {{"x", x}, {"y", y}, {"text", {{"field", "verdict"}}}, {"href", {{"field", "href"}}}, {"tooltip", tooltip}}}},
                              })}}},
          {"config", {{"view", {{"stroke", nullptr}}}, {"axis", {{"domain", false}, {"ticks", false}}}, {"legend", {{"orient", "bottom"}}}}}};
}

}  // namespace offsim::report
