// ComfyUI's working-memory estimate for a sampling run: BaseModel.memory_required with the model config's
// memory_usage_factor (Comfy-Org/ComfyUI:comfy/model_base.py and comfy/supported_models.py @a125cd84),
// called by sampler_helpers.estimate_memory and passed to load_models_gpu as memory_required (batch doubled
// for cond + uncond) and minimum_memory_required (the batch as given).
#pragma once

#include <cstdint>

#include "offsim/policies/denoise_workload.hpp"

namespace offsim::policies::comfyui {

struct ModelMemory {
  /// memory_required([2 * B, ...], all reference-latent conds): what load_models_gpu frees room for.
  std::uint64_t memory_required = 0;
  /// memory_required([B, ...], the largest reference-latent cond only): the floor it insists on.
  std::uint64_t minimum_memory_required = 0;
};

/// The model config's memory_usage_factor (supported_models.py@a125cd84), including the ones computed in
/// __init__ from unet_config (WAN21 dim / 2222, WAN21_Vace 1.2x that, LTXV cross_attention_dim / 2048 * 5.5).
double memory_usage_factor(const DenoiseWorkload& workload);

/// sampler_helpers.estimate_memory@a125cd84. Results are rounded up to whole bytes (ComfyUI keeps floats and
/// compares `free > memory_required`).
ModelMemory estimate_memory(const DenoiseWorkload& workload);

}  // namespace offsim::policies::comfyui
