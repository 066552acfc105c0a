#include "offsim/policies/calibration.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "offsim/policies/estimator.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

Judgement judge(const std::vector<CalibrationPoint>& points, std::size_t index, std::uint64_t estimate, double p5) {
  Judgement j;
  j.point = index;
  j.estimate = estimate;
  const auto t = static_cast<double>(points[index].peak_reserved_growth);
  j.ratio = static_cast<double>(estimate) / t;
  j.p2_holds = estimate >= points[index].peak_reserved_growth;
  j.p5_over = static_cast<double>(estimate) > p5 * t;
  return j;
}

std::vector<CalibrationPoint> select(const std::vector<CalibrationPoint>& points, auto keep) {
  std::vector<CalibrationPoint> out;
  for (const CalibrationPoint& p : points) {
    if (keep(p)) out.push_back(p);
  }
  return out;
}

FormResult run_form(const CalibrationGroup& g, FitForm form, const CalibrationOptions& o) {
  FormResult r;
  r.form = form;
  r.fit = fit_estimate(form, g.points, o.headroom);
  for (std::size_t i = 0; i < g.points.size(); ++i) {
    r.calibration.push_back(judge(g.points, i, estimate_bytes(r.fit, g.points[i]), o.p5_factor));
  }
  std::set<std::uint64_t> counts;
  for (const CalibrationPoint& p : g.points) counts.insert(pixels(p));
  if (counts.size() > 1) {
    for (const std::uint64_t left_out : counts) {
      const auto training = select(g.points, [&](const CalibrationPoint& p) { return pixels(p) != left_out; });
      const FittedEstimate fit = fit_estimate(form, training, o.headroom);
      for (std::size_t i = 0; i < g.points.size(); ++i) {
        if (pixels(g.points[i]) != left_out) continue;
        Judgement j = judge(g.points, i, estimate_bytes(fit, g.points[i]), o.p5_factor);
        j.judged_by = fit;
        r.leave_one_out.push_back(std::move(j));
      }
    }
    std::sort(r.leave_one_out.begin(), r.leave_one_out.end(),
              [](const Judgement& a, const Judgement& b) { return a.point < b.point; });
  }
  const auto below = select(g.points, [&](const CalibrationPoint& p) { return pixels(p) <= o.holdout_above_pixels; });
  if (!below.empty() && below.size() < g.points.size()) {
    r.band_fit = fit_estimate(form, below, o.headroom);
    for (std::size_t i = 0; i < g.points.size(); ++i) {
      if (pixels(g.points[i]) <= o.holdout_above_pixels) continue;
      Judgement j = judge(g.points, i, estimate_bytes(*r.band_fit, g.points[i]), o.p5_factor);
      j.judged_by = r.band_fit;
      r.band.push_back(std::move(j));
    }
  }
  return r;
}

std::vector<Linearity> linearity_of(const CalibrationGroup& g, double tolerance) {
  std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> by_source;
  for (std::size_t i = 0; i < g.points.size(); ++i) by_source[{g.points[i].source, g.points[i].variant}].push_back(i);
  std::vector<Linearity> out;
  for (const auto& [key, indices] : by_source) {
    std::set<std::uint64_t> counts;
    for (const std::size_t i : indices) counts.insert(pixels(g.points[i]));
    if (counts.size() < 2) continue;
    Linearity l;
    l.source = key.first;
    l.variant = key.second;
    l.points = indices;  // g.points is sorted by pixels already
    l.at_min = l.at_max = indices.front();
    for (const std::size_t i : indices) {
      if (implied_constant(g.points[i]) < implied_constant(g.points[l.at_min])) l.at_min = i;
      if (implied_constant(g.points[i]) > implied_constant(g.points[l.at_max])) l.at_max = i;
    }
    l.min_constant = implied_constant(g.points[l.at_min]);
    l.max_constant = implied_constant(g.points[l.at_max]);
    l.spread = l.max_constant / l.min_constant - 1;
    l.largest_rise = -1;
    for (const std::size_t a : indices) {
      for (const std::size_t b : indices) {
        if (pixels(g.points[b]) <= pixels(g.points[a])) continue;
        const double rise = implied_constant(g.points[b]) / implied_constant(g.points[a]) - 1;
        if (rise > l.largest_rise) {
          l.largest_rise = rise;
          l.rise_from = a;
          l.rise_to = b;
        }
      }
    }
    l.proportional = l.spread <= tolerance;
    out.push_back(std::move(l));
  }
  return out;
}

// PiD's decoder replaces the VAE's (InvokeAI PR #9281): its estimate is of another network's peak, so a VAE's
// measured points do not judge it unless it is asked for by name.
bool estimates_the_vae(const Estimator& e) { return e.id.find("/pid-") == std::string::npos; }

std::vector<UpstreamJudgement> judge_upstream(const CalibrationGroup& g, const CalibrationOptions& o) {
  std::vector<UpstreamJudgement> out;
  const Workload first{workload_of(g.points.front())};
  for (const Estimator& e : all_estimators()) {
    if (o.judge && std::find(o.judge->begin(), o.judge->end(), e.id) == o.judge->end()) continue;
    if (!e.passes_estimate || !e.domain.applies_to(first)) continue;
    // Only estimators that claim some of these points (PiD's decode applies to the Qwen-Image backbone but claims
    // fp32 only: it is another decoder, not an estimate of this VAE's peaks).
    if (!o.judge && !estimates_the_vae(e)) continue;
    if (!o.judge && std::none_of(g.points.begin(), g.points.end(),
                                 [&](const CalibrationPoint& p) { return e.domain.covers(Workload{workload_of(p)}); })) {
      continue;
    }
    UpstreamJudgement u;
    u.estimator = e.id;
    u.label = e.label;
    u.upstream = e.upstream;
    for (std::size_t i = 0; i < g.points.size(); ++i) {
      const Workload w = workload_of(g.points[i]);
      std::optional<std::uint64_t> estimate;
      try {
        estimate = e.estimate(w);
      } catch (const ConfigError&) {
        continue;  // a workload this version has no branch for (e.g. a VAE it predates)
      }
      if (!estimate) continue;
      Judgement j = judge(g.points, i, *estimate, o.p5_factor);
      j.why_not_in_domain = e.domain.why_not_covered(w);
      j.in_domain = j.why_not_in_domain.empty();
      const auto& used = g.points[i].used_to_set;
      j.seen = std::find(used.begin(), used.end(), e.id) != used.end();
      u.points.push_back(std::move(j));
    }
    if (!u.points.empty()) out.push_back(std::move(u));
  }
  return out;
}

// A JSON whole number >= 0 (a literal 3 is signed in nlohmann_json, a parsed one unsigned).
bool whole(const json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0); }

json point_json(const CalibrationPoint& p, std::size_t index) {
  return {{"index", index},
          {"model", to_string(p.model)},
          {"op", to_string(p.op)},
          {"width", p.width},
          {"height", p.height},
          {"frames", p.frames},
          {"pixels", pixels(p)},
          {"dtype", to_string(p.dtype)},
          {"backend", to_string(p.backend)},
          {"peak_reserved_growth_bytes", p.peak_reserved_growth},
          {"implied_constant", implied_constant(p)},
          {"source", p.source},
          {"variant", p.variant},
          {"provenance", p.provenance},
          {"origin", p.origin},
          {"citation", p.citation},
          {"used_to_set", p.used_to_set}};
}

json judgement_json(const Judgement& j, bool upstream) {
  json out = {{"point", j.point}, {"estimate_bytes", j.estimate}, {"ratio", j.ratio}, {"p2_holds", j.p2_holds},
              {"p5_over", j.p5_over}};
  if (upstream) {
    out["in_domain"] = j.in_domain;
    out["why_not_in_domain"] = j.why_not_in_domain;
    out["seen"] = j.seen;
  }
  if (j.judged_by) out["judged_by"] = to_json(*j.judged_by);
  return out;
}

json judgements_json(const std::vector<Judgement>& js, bool upstream = false) {
  json out = json::array();
  for (const Judgement& j : js) out.push_back(judgement_json(j, upstream));
  return out;
}

json summary_json(const std::vector<Judgement>& js) {
  const JudgementSummary s = summarize(js);
  return {{"points", s.points}, {"p2_failures", s.p2_failures}, {"p5_over", s.p5_over}, {"min_ratio", s.min_ratio},
          {"max_ratio", s.max_ratio}};
}

}  // namespace

JudgementSummary summarize(const std::vector<Judgement>& judgements) {
  JudgementSummary s;
  s.points = judgements.size();
  for (std::size_t k = 0; k < judgements.size(); ++k) {
    const Judgement& j = judgements[k];
    s.p2_failures += j.p2_holds ? 0 : 1;
    s.p5_over += j.p5_over ? 1 : 0;
    s.min_ratio = k == 0 ? j.ratio : std::min(s.min_ratio, j.ratio);
    s.max_ratio = k == 0 ? j.ratio : std::max(s.max_ratio, j.ratio);
  }
  return s;
}

std::string CalibrationGroup::name() const {
  return std::string(to_string(model)) + " " + std::string(to_string(op)) + " " + std::string(to_string(backend));
}

CalibrationReport calibrate(std::vector<CalibrationPoint> points, const CalibrationOptions& options) {
  if (points.empty()) throw ConfigError("no calibration points (after the selection)");
  if (options.forms.empty()) throw ConfigError("no estimator form selected");
  if (!(options.headroom >= 0 && options.headroom < 10)) throw ConfigError("headroom must be in [0, 10)");
  if (!(options.p5_factor >= 1)) throw ConfigError("the P5 factor must be >= 1");
  if (!(options.linear_tolerance >= 0)) throw ConfigError("the linearity tolerance must be >= 0");
  if (options.judge) {
    for (const std::string& id : *options.judge) (void)find_estimator(id);
  }
  CalibrationReport report;
  report.options = options;
  // Per VAE, decodes before encodes, then backend.
  std::map<std::tuple<int, int, int>, std::vector<CalibrationPoint>> grouped;
  for (CalibrationPoint& p : points) {
    grouped[{static_cast<int>(p.model), p.op == VaeOp::decode ? 0 : 1, static_cast<int>(p.backend)}].push_back(std::move(p));
  }
  for (auto& [key, members] : grouped) {
    CalibrationGroup g;
    g.model = members.front().model;
    g.op = members.front().op;
    g.backend = members.front().backend;
    std::stable_sort(members.begin(), members.end(), [](const CalibrationPoint& a, const CalibrationPoint& b) {
      return std::make_tuple(pixels(a), a.width, a.source, a.variant) < std::make_tuple(pixels(b), b.width, b.source, b.variant);
    });
    g.points = std::move(members);
    for (const FitForm form : options.forms) g.forms.push_back(run_form(g, form, options));
    g.linearity = linearity_of(g, options.linear_tolerance);
    g.upstream = judge_upstream(g, options);
    report.groups.push_back(std::move(g));
  }
  return report;
}

json to_json(const FittedEstimate& fit) {
  json out = {{"form", to_string(fit.form)}};
  switch (fit.form) {
    case FitForm::invokeai:
    case FitForm::comfyui:
      out["constant"] = fit.constant;
      break;
    case FitForm::invokeai_fixed:
      out["constant"] = fit.constant;
      out["fixed_bytes"] = fit.fixed_bytes;
      break;
    case FitForm::piecewise: {
      json knots = json::array();
      for (const Knot& k : fit.knots) knots.push_back({k.pixels, k.bytes_per_element_byte});
      out["knots"] = knots;
      break;
    }
  }
  return out;
}

// Bounds on what a user's file may give (an override, a calibrate JSON): an estimate is a constant times
// at most 2^34 pixel-elements (the scenario reader's bound) times an element size of at most 8 bytes, so
// constants up to 2^24 keep it below 2^61, in 64 bits; fixed bytes below 1 EiB, PyTorch's largest request.
constexpr std::uint64_t kMaxConstant = std::uint64_t{1} << 24;
constexpr std::uint64_t kMaxFixedBytes = std::uint64_t{1} << 60;

std::uint64_t bounded_constant(const json& j, const char* what) {
  const std::uint64_t v = j.get<std::uint64_t>();
  if (v > kMaxConstant) {
    throw ConfigError(std::string(what) + " " + std::to_string(v) + " is above 2^24 (upstream constants are in the thousands)");
  }
  return v;
}

FittedEstimate fitted_estimate_from_json(const json& j, const std::string& where) {
  FittedEstimate fit;
  try {
    if (j.is_number_integer()) {
      if (j.get<std::int64_t>() < 0 && !j.is_number_unsigned()) throw ConfigError("a constant must be >= 0");
      fit.constant = bounded_constant(j, "a constant of");
      return fit;
    }
    if (!j.is_object()) throw ConfigError("expected a constant or an object with form/constant/fixed_bytes/knots");
    if (j.contains("form") && !j["form"].is_string()) throw ConfigError("\"form\" must be a string such as \"invokeai\"");
    fit.form = parse_fit_form(j.value("form", "invokeai"));
    for (const auto& [key, value] : j.items()) {
      if (key != "form" && key != "constant" && key != "fixed_bytes" && key != "knots") {
        throw ConfigError("unknown key \"" + key + "\" (form, constant, fixed_bytes, knots)");
      }
    }
    if (fit.form == FitForm::piecewise) {
      if (!j.contains("knots") || !j["knots"].is_array() || j["knots"].empty()) {
        throw ConfigError("a piecewise estimate needs \"knots\": [[pixels, bytes per element byte], ...]");
      }
      for (const json& k : j["knots"]) {
        if (!k.is_array() || k.size() != 2 || !whole(k[0]) || !whole(k[1]) || k[0] == 0) {
          throw ConfigError("each knot is [pixels > 0, bytes per element byte], both whole numbers");
        }
        const Knot knot{k[0].get<std::uint64_t>(), k[1].get<std::uint64_t>()};
        if (!fit.knots.empty() && knot.pixels <= fit.knots.back().pixels) throw ConfigError("knots must ascend in pixels");
        fit.knots.push_back(knot);
      }
      return fit;
    }
    if (!j.contains("constant") || !whole(j["constant"])) {
      throw ConfigError("\"constant\" must be a whole number >= 0");
    }
    fit.constant = bounded_constant(j["constant"], "\"constant\"");
    if (j.contains("fixed_bytes")) {
      if (fit.form != FitForm::invokeai_fixed && fit.form != FitForm::invokeai) {
        throw ConfigError("fixed_bytes belongs to the invokeai forms");
      }
      if (!whole(j["fixed_bytes"])) throw ConfigError("\"fixed_bytes\" must be a whole number >= 0");
      fit.fixed_bytes = j["fixed_bytes"].get<std::uint64_t>();
      if (fit.fixed_bytes >= kMaxFixedBytes) throw ConfigError("\"fixed_bytes\" must be below 1 EiB, which no device holds");
      if (fit.fixed_bytes > 0) fit.form = FitForm::invokeai_fixed;
    }
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
  return fit;
}

json to_json(const CalibrationReport& report) {
  const CalibrationOptions& o = report.options;
  json forms = json::array();
  for (const FitForm f : o.forms) forms.push_back(to_string(f));
  json groups = json::array();
  for (const CalibrationGroup& g : report.groups) {
    json points = json::array();
    for (std::size_t i = 0; i < g.points.size(); ++i) points.push_back(point_json(g.points[i], i));
    json fits = json::array();
    for (const FormResult& r : g.forms) {
      fits.push_back({{"form", to_string(r.form)},
                      {"fit", to_json(r.fit)},
                      {"calibration", judgements_json(r.calibration)},
                      {"calibration_summary", summary_json(r.calibration)},
                      {"leave_one_out", judgements_json(r.leave_one_out)},
                      {"leave_one_out_summary", summary_json(r.leave_one_out)},
                      {"band_fit", r.band_fit ? to_json(*r.band_fit) : json(nullptr)},
                      {"band", judgements_json(r.band)},
                      {"band_summary", summary_json(r.band)}});
    }
    json linearity = json::array();
    for (const Linearity& l : g.linearity) {
      linearity.push_back({{"source", l.source},
                           {"variant", l.variant},
                           {"points", l.points},
                           {"min_constant", l.min_constant},
                           {"at_min", l.at_min},
                           {"max_constant", l.max_constant},
                           {"at_max", l.at_max},
                           {"spread", l.spread},
                           {"largest_rise", l.largest_rise},
                           {"rise_from", l.rise_from},
                           {"rise_to", l.rise_to},
                           {"proportional", l.proportional}});
    }
    json upstream = json::array();
    for (const UpstreamJudgement& u : g.upstream) {
      std::vector<Judgement> held_out;
      for (const Judgement& j : u.points) {
        if (!j.seen) held_out.push_back(j);
      }
      upstream.push_back({{"estimator", u.estimator},
                          {"label", u.label},
                          {"upstream", u.upstream},
                          {"points", judgements_json(u.points, true)},
                          {"summary", summary_json(u.points)},
                          {"held_out_summary", summary_json(held_out)}});
    }
    groups.push_back({{"model", to_string(g.model)},
                      {"op", to_string(g.op)},
                      {"backend", to_string(g.backend)},
                      {"points", points},
                      {"fits", fits},
                      {"linearity", linearity},
                      {"upstream", upstream}});
  }
  return {{"format", "offsim-calibration/1"},
          {"options",
           {{"forms", forms},
            {"holdout_above_pixels", o.holdout_above_pixels},
            {"headroom", o.headroom},
            {"p5_factor", o.p5_factor},
            {"linear_tolerance", o.linear_tolerance}}},
          {"groups", groups},
          {"notes", report.notes}};
}

}  // namespace offsim::policies
