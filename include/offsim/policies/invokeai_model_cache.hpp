// InvokeAI's ModelCache (invokeai/backend/model_manager/load/model_cache/model_cache.py and
// cached_model/cached_model_with_partial_load.py): VRAM tier with smallest-first offload of unlocked
// models, lazy offload, partial loading, its own free-memory computation (driver free minus working
// memory; reserved-but-unallocated counts as used) and an empty_cache() after every offload pass.
// Profiles pin the cache and the estimator each invocation (call site) passes.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>

#include "offsim/policies/policy.hpp"
#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies {

struct InvokeAIProfile {
  std::string id;
  std::string label;
  std::string upstream;
  /// smart_partial_loading (newer cache): estimates are honoured down to 1.5 GB instead of the 3 GB
  /// default, and partially loaded models reserve 1.5x their estimate.
  bool smart_partial_loading = false;
  /// Estimator id each VAE invocation passes to model_on_device(); families not listed pass none.
  std::map<VaeFamily, std::string> vae_estimators;
  /// Whether the image-to-latents (encode) call sites pass an estimate at all: they do not before PR #8414
  /// (7d86f00d82, 2025-08-11), which entered the VAE with `with vae_info as vae` (working_mem_bytes=None).
  bool encode_call_sites_estimate = true;
  /// config_default.py's enable_partial_loading at the profile's commit (False until PR #9092); a
  /// scenario's policy_settings.invokeai.enable_partial_loading overrides it.
  bool enable_partial_loading_default = true;
};

std::span<const InvokeAIProfile> invokeai_profiles();
std::unique_ptr<Policy> make_invokeai_model_cache(const InvokeAIProfile& profile);

}  // namespace offsim::policies
