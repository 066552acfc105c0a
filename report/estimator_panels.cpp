#include "offsim/report/estimator_panels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "chart_util.hpp"
#include "offsim/policies/published_measurements.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;
using policies::VaeWorkload;

// The model is drawn from 256 to 2560 pixels on the image's geometric-mean side.
constexpr double kMinSide = 256;
constexpr double kMaxSide = 2560;
constexpr int kModelPoints = 48;

struct Panel {
  const policies::Estimator* estimator = nullptr;
  VaeWorkload workload;              // the stage's workload: the template the model scales
  std::uint64_t default_bytes = 0;   // what the policy reserved when the call site passes no estimate
  json points = json::array();
  std::vector<std::string> stage_keys;  // scenario/stage already drawn
};

// E at another resolution: the estimator's bytes, or the policy's default where the call site passes none.
// nullopt where the estimator does not apply (its call site cannot see that workload).
std::optional<std::uint64_t> estimate_at(const Panel& panel, const VaeWorkload& w) {
  try {
    policies::validate(w);
    const auto bytes = panel.estimator->estimate(w);
    return bytes ? *bytes : panel.default_bytes;
  } catch (const Error&) {
    return std::nullopt;
  }
}

VaeWorkload resized(const VaeWorkload& w, int height, int width) {
  VaeWorkload out = w;
  out.pixel_height = height;
  out.pixel_width = width;
  return out;
}

std::string verdict(std::uint64_t estimate, std::uint64_t truth, double p5_factor) {
  if (estimate < truth) return "E < T (P2 violated)";
  char k[16];
  std::snprintf(k, sizeof k, "%g", p5_factor);
  if (static_cast<double>(estimate) > p5_factor * static_cast<double>(truth)) return std::string("E > ") + k + " T (P5 over-estimate)";
  return std::string("T <= E <= ") + k + " T";
}

json true_peak(const Panel& panel, const VaeWorkload& w, std::uint64_t truth, std::uint64_t estimate,
               const std::string& source, const std::string& origin, double p5_factor) {
  return {{"kind", "true peak"},
          {"mp", static_cast<double>(w.pixel_height) * w.pixel_width / 1e6},
          {"gib", gib(truth)},
          {"bytes", truth},
          {"height", w.pixel_height},
          {"width", w.pixel_width},
          {"domain", panel.estimator->domain.covers(w) ? "inside stated domain" : "outside stated domain"},
          {"e_gib", gib(estimate)},
          {"e_bytes", estimate},
          {"verdict", verdict(estimate, truth, p5_factor)},
          {"origin", origin},
          {"source", source}};
}

}  // namespace

json estimator_panels(const std::vector<policies::EvalResult>& results, const std::filesystem::path& root, double p5_factor) {
  std::map<std::string, Panel> panels;  // by panel title, in a stable order
  for (const policies::EvalResult& r : results) {
    if (r.scenario == nullptr) continue;
    for (const policies::StageRecord& rec : r.run.stages) {
      if (rec.stage_index >= r.scenario->stages.size()) continue;
      const policies::Stage& stage = r.scenario->stages[rec.stage_index];
      if (!stage.workload || !std::holds_alternative<VaeWorkload>(*stage.workload)) continue;
      const std::string& source = rec.decision.estimate_source;
      const std::string id = source.substr(0, source.find(' '));
      const policies::Estimator* estimator = nullptr;
      try {
        estimator = &policies::find_estimator(id);
      } catch (const Error&) {
        continue;  // not an estimator (a policy default, or no estimate at all)
      }
      const VaeWorkload& w = std::get<VaeWorkload>(*stage.workload);
      const std::string title = id + " · " + std::string(policies::to_string(w.family)) + " " +
                                std::string(policies::to_string(w.op)) + " · " + std::string(policies::to_string(w.backend));
      Panel& panel = panels[title];
      if (panel.estimator == nullptr) {
        panel.estimator = estimator;
        panel.workload = w;
        panel.default_bytes = rec.decision.estimate.value_or(0);
      }
      // The suite's own true peak for this stage, once per scenario and stage.
      const std::string key = r.scenario->name + "/" + stage.name;
      if (rec.t_cold && std::find(panel.stage_keys.begin(), panel.stage_keys.end(), key) == panel.stage_keys.end()) {
        panel.stage_keys.push_back(key);
        const std::uint64_t e = estimate_at(panel, w).value_or(rec.decision.estimate.value_or(0));
        panel.points.push_back(true_peak(panel, w, *rec.t_cold, e,
                                         "scenario " + r.scenario->name + ", stage " + stage.name + ": T_cold from " + rec.working_memory_label,
                                         "this suite (T_cold)", p5_factor));
      }
    }
  }

  const std::vector<policies::PublishedPoint> published = panels.empty() ? std::vector<policies::PublishedPoint>{}
                                                                          : policies::load_published_points(root);
  json out = {{"panels", json::array()}, {"p5_factor", p5_factor}};
  for (auto& [title, panel] : panels) {
    const VaeWorkload& w = panel.workload;
    const int scale = policies::vae_spatial_scale(w.family);
    // The model: the stage's image scaled (aspect kept) to sides on a log grid, rounded to the VAE's scale.
    const double side = std::sqrt(static_cast<double>(w.pixel_height) * w.pixel_width);
    for (int i = 0; i < kModelPoints; ++i) {
      const double target = kMinSide * std::pow(kMaxSide / kMinSide, static_cast<double>(i) / (kModelPoints - 1));
      const double f = target / side;
      const int h = std::max(scale, static_cast<int>(std::lround(w.pixel_height * f / scale)) * scale);
      const int wd = std::max(scale, static_cast<int>(std::lround(w.pixel_width * f / scale)) * scale);
      const VaeWorkload at = resized(w, h, wd);
      const auto e = estimate_at(panel, at);
      if (!e) continue;
      panel.points.push_back({{"kind", "model"},
                              {"mp", static_cast<double>(h) * wd / 1e6},
                              {"gib", gib(*e)},
                              {"bytes", *e},
                              {"height", h},
                              {"width", wd},
                              {"domain", panel.estimator->domain.covers(at) ? "inside stated domain" : "outside stated domain"}});
    }
    for (const policies::PublishedPoint& p : published) {
      if (p.family != w.family || p.op != w.op || p.backend != w.backend) continue;
      const VaeWorkload at = resized(w, p.height, p.width);
      const auto e = estimate_at(panel, at);
      if (!e) continue;
      std::string source = "published: " + p.grid + " (" + (p.device.empty() ? "device not stated" : p.device) + ")" +
                           (p.derived ? ", derived from a published implied constant" : "");
      if (!p.citation.empty()) source += "; " + p.citation;
      panel.points.push_back(true_peak(panel, at, p.peak_reserved, *e, source, "published grid " + p.grid, p5_factor));
    }
    out["panels"].push_back({{"panel", title},
                             {"estimator", panel.estimator->id},
                             {"label", panel.estimator->label},
                             {"upstream", panel.estimator->upstream},
                             {"basis", panel.estimator->domain.basis},
                             {"passes_estimate", panel.estimator->passes_estimate},
                             {"default_bytes", panel.default_bytes},
                             {"points", panel.points}});
  }
  return out;
}

}  // namespace offsim::report
