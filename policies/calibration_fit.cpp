#include "offsim/policies/calibration_fit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

// 128-bit products: constant x pixels x element size can pass 2^64 before the range check (GCC and Clang).
__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

std::uint64_t checked(u128 value, const char* what) {
  if (value > std::numeric_limits<std::uint64_t>::max()) {
    throw ConfigError(std::string(what) + ": the estimate does not fit in 64 bits");
  }
  return static_cast<std::uint64_t>(value);
}

u128 ceil_div(u128 a, u128 b) { return (a + b - 1) / b; }

std::uint64_t workload_pixels(const VaeWorkload& w) {
  return static_cast<std::uint64_t>(w.pixel_width) * static_cast<std::uint64_t>(w.pixel_height) *
         static_cast<std::uint64_t>(w.frames);
}

std::uint64_t es_of(const VaeWorkload& w) { return require_element_size(w.dtype, "calibrated estimate"); }

// f(pixels) of the piecewise form: exact linear interpolation, rounded up; proportional outside the knots.
u128 piecewise_value(const std::vector<Knot>& knots, std::uint64_t px) {
  if (knots.empty()) throw ConfigError("a piecewise estimate needs at least one knot");
  const Knot& first = knots.front();
  const Knot& last = knots.back();
  if (px <= first.pixels) return ceil_div(u128{first.bytes_per_element_byte} * px, first.pixels);
  if (px >= last.pixels) return ceil_div(u128{last.bytes_per_element_byte} * px, last.pixels);
  const auto b = std::upper_bound(knots.begin(), knots.end(), px, [](std::uint64_t p, const Knot& k) { return p < k.pixels; });
  const Knot& hi = *b;
  const Knot& lo = *(b - 1);
  const u128 span = hi.pixels - lo.pixels;
  return ceil_div(u128{lo.bytes_per_element_byte} * (hi.pixels - px) + u128{hi.bytes_per_element_byte} * (px - lo.pixels),
                  span);
}

std::uint64_t scale_up(std::uint64_t value, double headroom) {
  if (headroom <= 0) return value;
  // The tolerance keeps an exact product (5000 x 1.08) from rounding up past itself.
  const double scaled = static_cast<double>(value) * (1.0 + headroom);
  return static_cast<std::uint64_t>(std::ceil(scaled - 1e-9 * std::max(1.0, scaled)));
}

// max over points of ceil(T / (x(point) x es)) for the proportional forms.
template <typename Volume>
std::uint64_t smallest_factor(std::span<const CalibrationPoint> points, Volume volume) {
  std::uint64_t best = 0;
  for (const CalibrationPoint& p : points) {
    const u128 denominator = u128{volume(p)} * element_size(p);
    if (denominator == 0) throw ConfigError("calibration point " + describe(p) + " has no volume");
    best = std::max(best, checked(ceil_div(p.peak_reserved_growth, denominator), "fitted constant"));
  }
  return best;
}

// C x + F >= T for every point, C, F >= 0, minimising sum (C x + F) / T: the optimum of a linear programme in
// two unknowns lies on a vertex of the feasible region, which is where two constraints meet (two points, or a
// point and an axis). A few hundred points give a few tens of thousands of vertices: enumerated.
std::pair<double, double> fixed_term_optimum(std::span<const CalibrationPoint> points) {
  std::vector<std::pair<double, double>> xt;  // (pixels x es, T)
  for (const CalibrationPoint& p : points) {
    xt.emplace_back(static_cast<double>(pixels(p)) * element_size(p), static_cast<double>(p.peak_reserved_growth));
  }
  std::vector<std::pair<double, double>> candidates;
  for (std::size_t i = 0; i < xt.size(); ++i) {
    candidates.emplace_back(xt[i].second / xt[i].first, 0.0);  // F = 0 through point i
    candidates.emplace_back(0.0, xt[i].second);                // C = 0 at point i's height
    for (std::size_t j = i + 1; j < xt.size(); ++j) {
      if (xt[i].first == xt[j].first) continue;
      const double c = (xt[i].second - xt[j].second) / (xt[i].first - xt[j].first);
      candidates.emplace_back(c, xt[i].second - c * xt[i].first);
    }
  }
  double best_objective = std::numeric_limits<double>::infinity();
  std::pair<double, double> best{0, 0};
  for (const auto& [c, f] : candidates) {
    if (c < 0 || f < -1e-6 * std::max(1.0, std::abs(f))) continue;
    bool feasible = true;
    double objective = 0;
    for (const auto& [x, t] : xt) {
      const double e = c * x + std::max(0.0, f);
      if (e < t * (1 - 1e-12)) {
        feasible = false;
        break;
      }
      objective += e / t;
    }
    if (!feasible) continue;
    // Ties (all points on one line through the origin): the smaller fixed term.
    const bool better = objective < best_objective * (1 - 1e-12) ||
                        (objective <= best_objective * (1 + 1e-12) && std::max(0.0, f) < best.second);
    if (better) {
      best_objective = std::min(best_objective, objective);
      best = {c, std::max(0.0, f)};
    }
  }
  return best;
}

}  // namespace

std::string_view to_string(FitForm form) {
  switch (form) {
    case FitForm::invokeai: return "invokeai";
    case FitForm::invokeai_fixed: return "invokeai_fixed";
    case FitForm::comfyui: return "comfyui";
    case FitForm::piecewise: return "piecewise";
  }
  throw ConfigError("unknown FitForm value " + std::to_string(static_cast<int>(form)));
}

std::span<const FitForm> all_fit_forms() {
  static constexpr std::array kForms{FitForm::invokeai, FitForm::invokeai_fixed, FitForm::comfyui, FitForm::piecewise};
  return kForms;
}

FitForm parse_fit_form(std::string_view name) {
  if (name == "invokeai+fixed") return FitForm::invokeai_fixed;
  for (const FitForm f : all_fit_forms()) {
    if (to_string(f) == name) return f;
  }
  throw ConfigError("unknown estimator form \"" + std::string(name) + "\"; known: invokeai, invokeai_fixed, comfyui, piecewise");
}

std::uint64_t comfyui_volume(const VaeWorkload& w) {
  const auto s = static_cast<std::uint64_t>(vae_spatial_scale(w.family));
  const auto h = static_cast<std::uint64_t>(w.pixel_height) / s;
  const auto wd = static_cast<std::uint64_t>(w.pixel_width) / s;
  if (w.op == VaeOp::decode) {
    // A decode's latent has (frames - 1) / temporal + 1 frames (validate() guarantees the division is whole).
    const std::uint64_t t =
        is_video_vae(w.family) ? static_cast<std::uint64_t>((w.frames - 1) / vae_temporal_scale(w.family) + 1) : 1;
    return t * h * wd * s * s;
  }
  return static_cast<std::uint64_t>(w.frames) * (h * s) * (wd * s);
}

std::uint64_t estimate_bytes(const FittedEstimate& fit, const VaeWorkload& w) {
  const std::uint64_t es = es_of(w);
  switch (fit.form) {
    case FitForm::invokeai:
    case FitForm::invokeai_fixed:
      return checked(u128{fit.constant} * workload_pixels(w) * es + fit.fixed_bytes, "calibrated estimate");
    case FitForm::comfyui:
      return checked(u128{fit.constant} * comfyui_volume(w) * es, "calibrated estimate");
    case FitForm::piecewise:
      return checked(piecewise_value(fit.knots, workload_pixels(w)) * es, "calibrated estimate");
  }
  throw ConfigError("unknown estimator form");
}

std::uint64_t estimate_bytes(const FittedEstimate& fit, const CalibrationPoint& point) {
  return estimate_bytes(fit, workload_of(point));
}

FittedEstimate fit_estimate(FitForm form, std::span<const CalibrationPoint> points, double headroom) {
  if (points.empty()) throw ConfigError("nothing to fit: no calibration points");
  if (!(headroom >= 0)) throw ConfigError("headroom must be >= 0");
  FittedEstimate fit;
  fit.form = form;
  switch (form) {
    case FitForm::invokeai:
      fit.constant = scale_up(smallest_factor(points, [](const CalibrationPoint& p) { return pixels(p); }), headroom);
      break;
    case FitForm::comfyui:
      fit.constant =
          scale_up(smallest_factor(points, [](const CalibrationPoint& p) { return comfyui_volume(workload_of(p)); }), headroom);
      break;
    case FitForm::invokeai_fixed: {
      const auto [c, f] = fixed_term_optimum(points);
      (void)f;
      // An integer C (what upstream ships), then the smallest F that bounds every point with it.
      const double rounded = std::round(c);
      fit.constant = static_cast<std::uint64_t>(std::abs(c - rounded) <= 1e-6 * std::max(1.0, c) ? rounded : std::ceil(c));
      i128 fixed = 0;
      for (const CalibrationPoint& p : points) {
        const i128 short_by = static_cast<i128>(p.peak_reserved_growth) -
                              static_cast<i128>(u128{fit.constant} * pixels(p) * element_size(p));
        fixed = std::max(fixed, short_by);
      }
      fit.fixed_bytes = static_cast<std::uint64_t>(fixed);
      fit.constant = scale_up(fit.constant, headroom);
      fit.fixed_bytes = scale_up(fit.fixed_bytes, headroom);
      break;
    }
    case FitForm::piecewise: {
      std::map<std::uint64_t, std::uint64_t> at;  // pixels -> largest ceil(T / es)
      for (const CalibrationPoint& p : points) {
        std::uint64_t& v = at[pixels(p)];
        v = std::max<std::uint64_t>(v, checked(ceil_div(p.peak_reserved_growth, element_size(p)), "knot"));
      }
      for (const auto& [px, v] : at) fit.knots.push_back({px, scale_up(v, headroom)});
      break;
    }
  }
  return fit;
}

std::string describe(const FittedEstimate& fit) {
  switch (fit.form) {
    case FitForm::invokeai: return "C = " + std::to_string(fit.constant);
    case FitForm::invokeai_fixed:
      return "C = " + std::to_string(fit.constant) + ", F = " + format_bytes(fit.fixed_bytes);
    case FitForm::comfyui: return "K = " + std::to_string(fit.constant);
    case FitForm::piecewise: {
      if (fit.knots.empty()) return "no knots";
      std::uint64_t lo = std::numeric_limits<std::uint64_t>::max(), hi = 0;
      for (const Knot& k : fit.knots) {
        const std::uint64_t per_pixel = k.bytes_per_element_byte / std::max<std::uint64_t>(1, k.pixels);
        lo = std::min(lo, per_pixel);
        hi = std::max(hi, per_pixel);
      }
      return std::to_string(fit.knots.size()) + (fit.knots.size() == 1 ? " knot, " : " knots, ") + std::to_string(lo) +
             ".." + std::to_string(hi) + " B/px/es";
    }
  }
  return "";
}

}  // namespace offsim::policies
