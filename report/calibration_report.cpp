#include "offsim/report/calibration_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "chart_util.hpp"
#include "offsim/policies/estimator.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;
using namespace offsim::policies;

constexpr int kCurvePoints = 40;
constexpr const char* kHeldOutPass = "held out: E >= T (P2 holds)";
constexpr const char* kHeldOutFail = "held out: E < T (P2 fails)";
constexpr const char* kNoVerdict = "no held-out verdict (one size only)";

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

const FormResult* primary_form(const CalibrationGroup& g) {
  for (const FormResult& r : g.forms) {
    if (r.form == FitForm::invokeai) return &r;
  }
  return g.forms.empty() ? nullptr : &g.forms.front();
}

// Square sizes (multiples of the VAE's scale) spanning the group's points with some room on both sides.
std::vector<int> curve_sides(const CalibrationGroup& g) {
  const int scale = vae_spatial_scale(g.model);
  const double lo = std::sqrt(static_cast<double>(pixels(g.points.front()) / static_cast<std::uint64_t>(g.points.front().frames))) / 1.3;
  const double hi = std::sqrt(static_cast<double>(pixels(g.points.back()) / static_cast<std::uint64_t>(g.points.back().frames))) * 1.3;
  std::vector<int> sides;
  for (int i = 0; i < kCurvePoints; ++i) {
    const double side = lo * std::pow(hi / lo, static_cast<double>(i) / (kCurvePoints - 1));
    const int s = std::max(scale, static_cast<int>(std::lround(side / scale)) * scale);
    if (sides.empty() || sides.back() != s) sides.push_back(s);
  }
  return sides;
}

VaeWorkload square(const CalibrationGroup& g, int side, DType dtype) {
  VaeWorkload w = workload_of(g.points.front());
  w.pixel_width = w.pixel_height = side;
  w.dtype = dtype;
  return w;
}

struct Curve {
  std::string name;
  std::string line;  // "fitted here" or "shipped upstream"
  std::vector<std::optional<std::uint64_t>> bytes;
};

// Adds `c`, or merges its name into an identical curve already there (InvokeAI's C and ComfyUI's K are the
// same line for images; several upstream versions share constants).
void add_curve(std::vector<Curve>& curves, Curve c) {
  for (Curve& other : curves) {
    if (other.bytes == c.bytes && other.line == c.line) {
      // "invokeai/qwen-image@a6724695 = @8e71a8a5": versions of one call site share their prefix.
      const auto at = c.name.find('@');
      const bool same_site = at != std::string::npos && other.name.compare(0, at + 1, c.name, 0, at + 1) == 0;
      other.name += " = " + (same_site ? c.name.substr(at) : c.name);
      return;
    }
  }
  curves.push_back(std::move(c));
}

json group_chart_values(const CalibrationGroup& g, const json& group_json, double p5) {
  json values = json::array();
  std::set<DType> dtypes;
  for (const CalibrationPoint& p : g.points) dtypes.insert(p.dtype);
  const std::vector<int> sides = curve_sides(g);
  const FormResult* primary = primary_form(g);
  for (const DType dtype : dtypes) {
    const std::string suffix = dtypes.size() > 1 ? " (" + std::string(to_string(dtype)) + ")" : "";
    std::vector<Curve> curves;
    for (const FormResult& r : g.forms) {
      Curve c{"fit " + std::string(to_string(r.form)) + ": " + describe(r.fit) + suffix, "fitted here", {}};
      for (const int s : sides) c.bytes.push_back(estimate_bytes(r.fit, square(g, s, dtype)));
      add_curve(curves, std::move(c));
    }
    for (const UpstreamJudgement& u : g.upstream) {
      const Estimator& e = find_estimator(u.estimator);
      Curve c{u.estimator + suffix, "shipped upstream", {}};
      for (const int s : sides) {
        try {
          c.bytes.push_back(e.estimate(square(g, s, dtype)));
        } catch (const Error&) {
          c.bytes.push_back(std::nullopt);
        }
      }
      add_curve(curves, std::move(c));
    }
    for (const Curve& c : curves) {
      for (std::size_t i = 0; i < sides.size(); ++i) {
        if (!c.bytes[i]) continue;
        values.push_back({{"kind", "curve"}, {"series", c.name}, {"line", c.line},
                          {"mp", static_cast<double>(sides[i]) * sides[i] / 1e6}, {"gib", gib(*c.bytes[i])},
                          {"bytes", *c.bytes[i]}, {"size", std::to_string(sides[i]) + "x" + std::to_string(sides[i])}});
      }
    }
    if (primary != nullptr) {
      for (const int s : sides) {
        const std::uint64_t e = estimate_bytes(primary->fit, square(g, s, dtype));
        values.push_back({{"kind", "band"}, {"mp", static_cast<double>(s) * s / 1e6}, {"hi_gib", gib(e)},
                          {"lo_gib", gib(e) / p5}, {"size", std::to_string(s) + "x" + std::to_string(s)},
                          {"what", "T between E / " + fixed(p5, 1) + " and E: P2 and P5 both hold (" +
                                       std::string(to_string(primary->form)) + " fit" + suffix + ")"}});
      }
    }
  }
  std::map<std::size_t, const Judgement*> loo, band;
  if (primary != nullptr) {
    for (const Judgement& j : primary->leave_one_out) loo[j.point] = &j;
    for (const Judgement& j : primary->band) band[j.point] = &j;
  }
  for (std::size_t i = 0; i < g.points.size(); ++i) {
    const CalibrationPoint& p = g.points[i];
    const Judgement* l = loo.count(i) ? loo[i] : nullptr;
    const Judgement* b = band.count(i) ? band[i] : nullptr;
    const bool fails = (l && !l->p2_holds) || (b && !b->p2_holds);
    const std::string verdict = fails ? kHeldOutFail : (l || b) ? kHeldOutPass : kNoVerdict;
    values.push_back({{"kind", "measured"},
                      {"mp", static_cast<double>(pixels(p)) / p.frames / 1e6},
                      {"gib", gib(p.peak_reserved_growth)},
                      {"bytes", p.peak_reserved_growth},
                      {"size", size_label(p)},
                      {"dtype", std::string(to_string(p.dtype))},
                      {"source", p.source + (p.variant.empty() ? "" : " (" + p.variant + ")")},
                      {"implied", fixed(implied_constant(p), 1)},
                      {"loo", l ? fixed(l->ratio, 3) : "-"},
                      {"band", b ? fixed(b->ratio, 3) : "-"},
                      {"verdict", verdict},
                      {"provenance", p.provenance},
                      {"origin", group_json["points"][i].value("origin", "")}});
  }
  return values;
}

json group_chart(const std::string& name, const std::string& primary, const json& values, double p5) {
  double mp_lo = 1e300, mp_hi = 0, gib_lo = 1e300, gib_hi = 0;
  for (const json& v : values) {
    mp_lo = std::min(mp_lo, v["mp"].get<double>());
    mp_hi = std::max(mp_hi, v["mp"].get<double>());
    for (const char* f : {"gib", "hi_gib", "lo_gib"}) {
      if (!v.contains(f) || v[f].get<double>() <= 0) continue;
      gib_lo = std::min(gib_lo, v[f].get<double>());
      gib_hi = std::max(gib_hi, v[f].get<double>());
    }
  }
  const json x = {{"field", "mp"}, {"type", "quantitative"}, {"title", "image size (megapixels, log)"},
                  {"scale", {{"type", "log"}, {"domain", {mp_lo / 1.1, mp_hi * 1.1}}, {"nice", false}}}};
  const json y_scale = {{"type", "log"}, {"domain", {gib_lo / 1.2, gib_hi * 1.2}}, {"nice", false}};
  const json y = {{"field", "gib"}, {"type", "quantitative"}, {"title", "peak reserved growth (GiB, log)"}, {"scale", y_scale}};
  const json point_tooltip = json::array({{{"field", "size"}}, {{"field", "dtype"}}, {{"field", "source"}, {"title", "measured by"}},
                                          gib_tooltip("gib", "T (measured)"), exact_bytes_tooltip("bytes", "T"),
                                          {{"field", "implied"}, {"title", "implied constant (B/px/es)"}},
                                          {{"field", "loo"}, {"title", "leave-one-out E/T"}},
                                          {{"field", "band"}, {"title", "band E/T"}}, {{"field", "verdict"}},
                                          {{"field", "provenance"}}, {{"field", "origin"}}});
  std::string subtitle = "points: measured peaks; solid lines: fitted here; dashed: shipped upstream; band: where T";
  subtitle += " satisfies P2 and P5 (" + fixed(p5, 1) + ") for the " + primary + " fit";
  return {{"title", {{"text", name}, {"anchor", "start"}, {"subtitle", subtitle}}},
          {"width", 760},
          {"height", 380},
          {"data", {{"values", values}}},
          {"layer",
           json::array({
               {{"transform", json::array({{{"filter", "datum.kind === 'band'"}}})},
                {"mark", {{"type", "area"}, {"color", "#2b8a3e"}, {"opacity", 0.13}}},
                {"encoding", {{"x", x}, {"y", {{"field", "lo_gib"}, {"type", "quantitative"}, {"scale", y_scale}, {"title", "peak reserved growth (GiB, log)"}}},
                              {"y2", {{"field", "hi_gib"}}},
                              {"tooltip", json::array({{{"field", "size"}}, {{"field", "what"}}, gib_tooltip("lo_gib", "E / 1.5"), gib_tooltip("hi_gib", "E")})}}}},
               {{"transform", json::array({{{"filter", "datum.kind === 'curve'"}}})},
                {"mark", {{"type", "line"}, {"strokeWidth", 2}, {"clip", true}}},
                {"encoding", {{"x", x}, {"y", y},
                              {"color", {{"field", "series"}, {"type", "nominal"}, {"title", "estimate"}, {"legend", {{"labelLimit", 620}}}}},
                              {"strokeDash", {{"field", "line"}, {"type", "nominal"}, {"title", "line"},
                                              {"scale", {{"domain", {"fitted here", "shipped upstream"}},
                                                         {"range", {json::array({1, 0}), json::array({6, 4})}}}}}},
                              {"tooltip", json::array({{{"field", "series"}, {"title", "estimate"}}, {{"field", "size"}},
                                                       gib_tooltip("gib", "E"), exact_bytes_tooltip("bytes", "E")})}}}},
               {{"transform", json::array({{{"filter", "datum.kind === 'measured'"}}})},
                {"mark", {{"type", "point"}, {"filled", true}, {"size", 80}, {"opacity", 0.95}, {"stroke", "#1d2330"}, {"strokeWidth", 0.6}}},
                {"encoding", {{"x", x}, {"y", y},
                              {"shape", {{"field", "source"}, {"type", "nominal"}, {"title", "measured by"}, {"legend", {{"labelLimit", 620}}}}},
                              {"color", {{"field", "verdict"}, {"type", "nominal"}, {"title", "point"},
                                         {"scale", {{"domain", {kHeldOutPass, kHeldOutFail, kNoVerdict}},
                                                    {"range", {"#2b8a3e", kFailColour, "#8a90a0"}}}}}},
                              {"tooltip", point_tooltip}}}},
           })},
          {"resolve", {{"scale", {{"color", "independent"}}}}},
          {"config", {{"legend", {{"orient", "bottom"}, {"direction", "vertical"}, {"labelLimit", 620}}}}}};
}

// "1024x1024" for a square count of pixels, else "N pixels".
std::string pixels_text(std::uint64_t pixels) {
  const auto side = static_cast<std::uint64_t>(std::llround(std::sqrt(static_cast<double>(pixels))));
  return side * side == pixels ? std::to_string(side) + "x" + std::to_string(side) : std::to_string(pixels) + " pixels";
}

std::string td_num(const std::string& text, const std::string& title = "") {
  return "<td class=\"num\"" + (title.empty() ? "" : " title=\"" + html_escape(title) + "\"") + ">" + html_escape(text) + "</td>";
}

std::string summary_cells(const json& s, bool verdict) {
  if (s.value("points", 0) == 0) return "<td class=\"na\">-</td><td class=\"na\">-</td>";
  const auto fails = s.value("p2_failures", 0);
  const std::string cls = verdict ? (fails ? " class=\"FAIL\"" : " class=\"pass\"") : "";
  return "<td" + cls + ">" + std::to_string(fails) + " of " + std::to_string(s.value("points", 0)) + "</td>" +
         td_num(fixed(s.value("min_ratio", 0.0), 3) + ".." + fixed(s.value("max_ratio", 0.0), 3));
}

std::string fit_text(const json& fit) {
  const std::string form = fit.value("form", "");
  if (form == "piecewise") return std::to_string(fit["knots"].size()) + " knots";
  std::string out = (form == "comfyui" ? "K = " : "C = ") + std::to_string(fit.value("constant", std::uint64_t{0}));
  if (fit.contains("fixed_bytes")) out += ", F = " + format_bytes(fit.value("fixed_bytes", std::uint64_t{0}));
  return out;
}

std::string group_tables(const json& g) {
  std::string out;
  const json& points = g["points"];
  auto size = [&](std::size_t i) {
    const json& p = points[i];
    return std::to_string(p.value("width", 0)) + "x" + std::to_string(p.value("height", 0));
  };
  if (!g["linearity"].empty()) {
    out += "<h4>Linear in pixels?</h4><table><tr><th>source</th><th>sizes</th><th>implied constant</th><th>spread</th>"
           "<th>largest rise (smaller to larger size)</th><th>verdict</th></tr>\n";
    for (const json& l : g["linearity"]) {
      const auto& idx = l["points"];
      const double rise = l.value("largest_rise", 0.0);
      out += "<tr><td>" + html_escape(l.value("source", "") + (l.value("variant", "").empty() ? "" : " (" + l.value("variant", "") + ")")) +
             "</td><td>" + std::to_string(idx.size()) + ": " + size(idx.front().get<std::size_t>()) + ".." + size(idx.back().get<std::size_t>()) +
             "</td>" + td_num(fixed(l.value("min_constant", 0.0), 0) + ".." + fixed(l.value("max_constant", 0.0), 0)) +
             td_num(fixed(100 * l.value("spread", 0.0), 1) + "%") +
             td_num(rise > 0 ? "+" + fixed(100 * rise, 1) + "% (" + size(l.value("rise_from", std::size_t{0})) + " to " +
                                   size(l.value("rise_to", std::size_t{0})) + ")"
                             : "never rises") +
             (l.value("proportional", false) ? "<td class=\"pass\">linear</td>" : "<td class=\"over\">not linear</td>") + "</tr>\n";
    }
    out += "</table>\n";
  }
  out += "<h4>Fits</h4><table><tr><th>form</th><th>fitted on every point</th><th>E/T on its own points</th>"
         "<th>leave-one-out: P2 fails</th><th>E/T</th><th>band fit</th><th>band: P2 fails</th><th>E/T</th></tr>\n";
  for (const json& f : g["fits"]) {
    out += "<tr><td>" + html_escape(f.value("form", "")) + "</td><td>" + html_escape(fit_text(f["fit"])) + "</td>" +
           td_num(fixed(f["calibration_summary"].value("min_ratio", 0.0), 3) + ".." + fixed(f["calibration_summary"].value("max_ratio", 0.0), 3)) +
           summary_cells(f["leave_one_out_summary"], true) + "<td>" +
           html_escape(f["band_fit"].is_null() ? "-" : fit_text(f["band_fit"])) + "</td>" + summary_cells(f["band_summary"], true) + "</tr>\n";
  }
  out += "</table>\n";
  if (!g["upstream"].empty()) {
    out += "<h4>Estimators upstream ships, on the same points</h4><table><tr><th>estimator</th><th>all points: P2 fails</th>"
           "<th>E/T</th><th>held out (not its calibration data): P2 fails</th><th>E/T</th></tr>\n";
    for (const json& u : g["upstream"]) {
      out += "<tr><td title=\"" + html_escape(u.value("label", "")) + "\">" + html_escape(u.value("estimator", "")) + "</td>" +
             summary_cells(u["summary"], false) + summary_cells(u["held_out_summary"], true) + "</tr>\n";
    }
    out += "</table>\n";
  }
  out += "<details><summary>Every point</summary><table><tr><th>size</th><th>dtype</th><th>source</th><th>T</th>"
         "<th>implied constant</th><th>provenance</th></tr>\n";
  for (const json& p : points) {
    const auto t = p.value("peak_reserved_growth_bytes", std::uint64_t{0});
    out += "<tr><td>" + std::to_string(p.value("width", 0)) + "x" + std::to_string(p.value("height", 0)) + "</td><td>" +
           html_escape(p.value("dtype", "")) + "</td><td>" + html_escape(p.value("source", "") + (p.value("variant", "").empty() ? "" : " (" + p.value("variant", "") + ")")) +
           "</td>" + td_num(format_bytes(t), std::to_string(t) + " bytes") + td_num(fixed(p.value("implied_constant", 0.0), 1)) + "<td>" +
           html_escape(p.value("provenance", "")) + "</td></tr>\n";
  }
  out += "</table></details>\n";
  return out;
}

}  // namespace

json calibration_report_data(const CalibrationReport& report, const json& calibration_json) {
  json charts = json::array();
  for (std::size_t i = 0; i < report.groups.size(); ++i) {
    const FormResult* primary = primary_form(report.groups[i]);
    charts.push_back({{"group", report.groups[i].name()},
                      {"primary_form", primary ? std::string(to_string(primary->form)) : ""},
                      {"values", group_chart_values(report.groups[i], calibration_json["groups"][i], report.options.p5_factor)}});
  }
  return {{"format", "offsim-calibration-report/1"}, {"calibration", calibration_json}, {"charts", charts}};
}

HtmlPage calibration_report_page(const json& data) {
  const json& c = data["calibration"];
  HtmlPage page("offsim calibrate");
  std::string head = "<h1>offsim calibrate</h1>\n<p>Working-memory estimators fitted to measured peak reserved growth "
                     "(T), per VAE, operation and backend. Every fitted estimate bounds every point it was fitted to with "
                     "the smallest margin its form allows; a <b>verdict</b> (P2: E &ge; T) comes only from a fit that did "
                     "not see the point: leave-one-out (all points of the same size left out together) and a band of "
                     "sizes above " + pixels_text(c["options"].value("holdout_above_pixels", std::uint64_t{0})) +
                     " judged by a fit on the smaller ones. Estimators upstream ships are judged on the same "
                     "points; their <i>held-out</i> columns leave out the grids their constants were chosen from.</p>\n";
  head += "<p class=\"meta\">" + html_escape(c.value("command", "")) + "</p>\n<ul class=\"meta\">";
  for (const json& n : c["notes"]) head += "<li>" + html_escape(n.get<std::string>()) + "</li>";
  head += "</ul>\n";
  page.add_html(head);
  for (std::size_t i = 0; i < data["charts"].size(); ++i) {
    const json& chart = data["charts"][i];
    const json& g = c["groups"][i];
    page.add_html("<h2>" + html_escape(chart.value("group", "")) + "</h2>\n");
    page.add_chart(group_chart(chart.value("group", ""), chart.value("primary_form", ""), chart["values"],
                               c["options"].value("p5_factor", 1.5)),
                   "calibrate: " + chart.value("group", ""));
    page.add_html(group_tables(g));
  }
  if (!c["overrides"].empty()) {
    page.add_html("<h2>Try the fitted constants</h2><p>The JSON output of this run (<code>--json FILE</code>) holds these "
                  "overrides; <code>offsim eval --estimator-override FILE</code> and <code>offsim check "
                  "--estimator-override FILE</code> judge P1-P5 with them:</p><pre>" +
                  html_escape(c["overrides"].dump(1)) + "</pre>\n");
  }
  page.add_html("<h2>Reading this report</h2><p class=\"note\">E = estimate, T = measured peak reserved growth (what "
                "upstream calibrates on: a fresh process, weights resident, cache emptied). Charts are log-log; hover for "
                "exact bytes. The data is embedded in this file (<code>script#offsim-calibration</code>).</p>\n");
  page.add_data("offsim-calibration", data);
  return page;
}

void write_calibration_report(const CalibrationReport& report, const json& calibration_json, const VegaAssets& assets,
                              const std::filesystem::path& path) {
  calibration_report_page(calibration_report_data(report, calibration_json)).write(path, assets);
}

}  // namespace offsim::report
