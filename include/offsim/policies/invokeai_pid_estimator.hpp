// InvokeAI's working-memory estimate for the PiD (Pixel Diffusion Decoder) 4x super-resolution decode:
// estimate_pid_decode_working_memory in invoke-ai/InvokeAI:invokeai/backend/pid/decode.py, called by the
// {flux,flux2,sd3,sdxl,z_image,qwen_image}_pid_decode invocations before `pid_info.model_on_device(...)`.
// PiD replaces the VAE decode, so its input is a VaeWorkload whose pixel size is PiD's OUTPUT (the
// super-resolved image: latent size x sr_scale 4 x the backbone's latent down factor) and whose family
// names the backbone. PidNet runs in float32 whatever workload.dtype says (upstream hard-codes 4 bytes).
#pragma once

#include <cstdint>

#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies::invokeai {

enum class PidProfile {
  /// PR #9281 (3f5588f21f, 2026-07-30): out_h * out_w * 4 * 250; the batch is not counted.
  pr9281,
  /// PR #9460 (a202b161f9, 2026-08-14; unchanged to 8e71a8a519): batch * out_h * out_w * 4 * 260, and with
  /// pid_memory_optimization (workload.memory_optimization) past 1024 patch tokens
  /// min(120 * U + 224 MiB, 260 * U).
  pr9460,
};

/// Families flux1 and z_image (backbone BaseModelType.Flux), flux2, sd3, sdxl, qwen_image; others throw
/// ConfigError. Pixel sizes must be multiples of sr_scale * latent down factor (32, or 64 for flux2).
std::uint64_t pid_decode(const VaeWorkload& workload, PidProfile profile);

}  // namespace offsim::policies::invokeai
