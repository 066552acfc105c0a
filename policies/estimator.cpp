#include "offsim/policies/estimator.hpp"

#include <algorithm>

namespace offsim::policies {
namespace {

template <typename T>
bool contains(const std::vector<T>& values, T value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string applies_reason(const Domain& d, const Workload& workload) {
  if (const auto* v = std::get_if<VaeWorkload>(&workload)) {
    if (!contains(d.families, v->family)) return "VAE family " + std::string(to_string(v->family)) + " is not served";
    if (!contains(d.ops, v->op)) return "operation " + std::string(to_string(v->op)) + " is not served";
    return {};
  }
  const auto& m = std::get<DenoiseWorkload>(workload);
  if (!contains(d.models, m.model)) return "diffusion model " + std::string(to_string(m.model)) + " is not served";
  return {};
}

}  // namespace

bool Domain::applies_to(const Workload& workload) const { return applies_reason(*this, workload).empty(); }

bool Domain::covers(const Workload& workload) const { return why_not_covered(workload).empty(); }

std::string Domain::why_not_covered(const Workload& workload) const {
  if (auto reason = applies_reason(*this, workload); !reason.empty()) return reason;
  if (const auto* v = std::get_if<VaeWorkload>(&workload)) {
    if (!contains(dtypes, v->dtype)) return "dtype " + std::string(to_string(v->dtype)) + " is outside the claim";
    if (!contains(backends, v->backend)) {
      return "backend " + std::string(to_string(v->backend)) + " is outside the claim";
    }
    const int lo = std::min(v->pixel_height, v->pixel_width);
    const int hi = std::max(v->pixel_height, v->pixel_width);
    if (min_pixel_side && lo < *min_pixel_side) {
      return "side " + std::to_string(lo) + " is below the claimed " + std::to_string(*min_pixel_side);
    }
    const auto upper = v->tile_size && max_pixel_side_tiled ? max_pixel_side_tiled : max_pixel_side;
    if (upper && hi > *upper) return "side " + std::to_string(hi) + " is above the claimed " + std::to_string(*upper);
    if (v->frames > max_frames) return std::to_string(v->frames) + " frames is above the claimed " + std::to_string(max_frames);
    if (v->tile_size && !tiled) return "tiled workloads are outside the claim";
    if (!v->tile_size && !untiled) return "untiled workloads are outside the claim";
    return {};
  }
  const auto& m = std::get<DenoiseWorkload>(workload);
  if (!contains(dtypes, m.dtype)) return "dtype " + std::string(to_string(m.dtype)) + " is outside the claim";
  if (!contains(backends, m.backend)) return "backend " + std::string(to_string(m.backend)) + " is outside the claim";
  return {};
}

std::string describe(const Workload& workload) {
  return std::visit([](const auto& w) { return describe(w); }, workload);
}

}  // namespace offsim::policies
