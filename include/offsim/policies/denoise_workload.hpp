// The input of a diffusion-model (denoise step) working-memory estimator: ComfyUI's
// BaseModel.memory_required, which sampler_helpers.prepare_sampling passes to load_models_gpu before a
// sampling run. Shapes are latent shapes exactly as the sampler sees them, so nothing is derived here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/policies/dtype.hpp"
#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies {

/// ComfyUI model configs (comfy/supported_models.py classes) whose memory_usage_factor offsim knows.
enum class DiffusionModel {
  sd15,             // SD15
  sd20,             // SD20
  sdxl_refiner,     // SDXLRefiner
  sdxl,             // SDXL
  sd3,              // SD3
  flux,             // Flux, FluxSchnell, FluxInpaint
  chroma,           // Chroma
  hunyuan_dit,      // HunyuanDiT
  pixart,           // PixArtAlpha, PixArtSigma
  genmo_mochi,      // GenmoMochi
  ltxv,             // LTXV (factor scales with cross_attention_dim)
  hunyuan_video,    // HunyuanVideo
  cosmos,           // CosmosT2V / I2V
  lumina2,          // Lumina2
  wan21,            // WAN21_T2V / I2V / ... and WAN22_T2V (factor = dim / 2222)
  wan21_vace,       // WAN21_Vace (1.2 x the WAN21 factor)
  hidream,          // HiDream (no factor of its own: the base default)
  qwen_image,       // QwenImage
  hunyuan_image21,  // HunyuanImage21
};

/// Bounds a workload read from a file must respect (validate() checks them): a latent dimension up to
/// 2^20, at most 2^34 latent elements in noise_shape (a 2048^2 FLUX latent is 2^20) or in one reference
/// entry, so that the memory formulas (products of the shape with small constants) stay exact in 64 bits.
inline constexpr std::int64_t kMaxLatentDimension = std::int64_t{1} << 20;
inline constexpr std::int64_t kMaxLatentElements = std::int64_t{1} << 34;
inline constexpr int kMaxModelDim = 65536;

struct DenoiseWorkload {
  DiffusionModel model = DiffusionModel::flux;
  /// The latent noise shape of one sampling call: (B, C, H, W) or (B, C, T, H, W).
  std::vector<std::int64_t> noise_shape;
  /// One entry per conditioning that carries reference latents (FLUX Kontext, Qwen-Image Edit): the total
  /// element count of that conditioning's reference latents. Only models with "ref_latents" in their
  /// memory_usage_factor_conds (Flux, Chroma, QwenImage) count them; others ignore them, as upstream does.
  std::vector<std::int64_t> ref_latent_elements;
  /// The dtype memory_required uses: the model's manual_cast_dtype when it has one, else its dtype.
  DType dtype = DType::bf16;
  /// comfy.model_management.xformers_enabled() or pytorch_attention_flash_attention(): picks the formula.
  bool efficient_attention = true;
  /// unet_config "dim" (WAN21, default 2000), "cross_attention_dim" (LTXV, default 2048). Unset = upstream's
  /// default for that key.
  std::optional<int> model_dim;
  Backend backend = Backend::cuda;
};

std::string_view to_string(DiffusionModel model);
DiffusionModel parse_diffusion_model(std::string_view name);  // throws ConfigError listing names
std::string describe(const DenoiseWorkload& workload);
/// Shape rank 4 or 5 with positive dims, non-negative reference element counts; throws ConfigError.
void validate(const DenoiseWorkload& workload);

}  // namespace offsim::policies
