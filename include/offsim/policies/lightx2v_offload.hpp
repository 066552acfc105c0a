// LightX2V's cpu_offload (ModelTC/LightX2V lightx2v/models/networks/*/model.py, common/offload/manager.py,
// models/runners/default_runner.py): a schedule, not a cache. Weights move to the GPU at fixed points of
// the denoise loop and back at others, by granularity ("model", "block", "phase"). Two profiles: before
// and after PR #1053 (commit c177fd82), which added the move back to the CPU at the end of a step (last
// step for "model").
#pragma once

#include <memory>
#include <span>
#include <string>

#include "offsim/policies/policy.hpp"

namespace offsim::policies {

struct LightX2VProfile {
  std::string id;
  std::string label;
  std::string upstream;
  /// After c177fd82 every transformer moves its weights back (model: at the last step; block/phase: the
  /// non-block weights at the end of every step). Before it, FLUX.2 and Qwen-Image never did.
  bool offloads_at_step_end = true;
};

std::span<const LightX2VProfile> lightx2v_profiles();
std::unique_ptr<Policy> make_lightx2v_offload(const LightX2VProfile& profile);

}  // namespace offsim::policies
