// The input of a VAE working-memory estimator: which VAE, which direction, how big, which dtype, tiled or
// not, on which backend. Every estimator in policies/ is a pure function of this value, so a scenario
// stage names an estimator and one VaeWorkload and gets the same bytes the upstream call site passes to
// its model cache.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "offsim/policies/dtype.hpp"

namespace offsim::policies {

/// The VAE (not the pipeline) a stage runs. Pipelines that share a VAE are listed separately because
/// their call sites use different estimators (InvokeAI's Z-Image nodes use the FLUX estimator, Anima's
/// its own Wan 2.1 one, Qwen-Image its own).
enum class VaeFamily {
  sd15,           // SD 1.x AutoencoderKL (4 latent channels, 8x)
  sdxl,           // SDXL AutoencoderKL (4 latent channels, 8x)
  flux1,          // FLUX.1 AutoEncoder (16 latent channels, 8x)
  flux2,          // FLUX.2 AutoencoderKLFlux2 (32 channels, 8x conv + 2x2 patchify: 128 channels at 16x)
  sd3,            // SD3 AutoencoderKL (16 channels, 8x)
  cogview4,       // CogView4 AutoencoderKL (16 channels, 8x)
  z_image,        // Z-Image: the FLUX.1 VAE
  qwen_image,     // Qwen-Image AutoencoderKLQwenImage (Wan 2.1 architecture, 16 channels, 8x)
  anima,          // Anima: the Wan 2.1 / Qwen-Image VAE used for images
  wan21,          // Wan 2.1 VAE (z_dim 16, 8x spatial, 4x temporal): Wan 2.1 and Wan 2.2 A14B
  wan22,          // Wan 2.2 VAE (z_dim 48, 16x spatial, 4x temporal): Wan 2.2 TI2V-5B
  hunyuan_video,  // HunyuanVideo causal 3D VAE (8x spatial, 4x temporal)
  ltxv,           // LTX-Video VAE (32x spatial, 8x temporal)
  mochi,          // Genmo Mochi VAE (8x spatial, 6x temporal)
  cosmos,         // Cosmos causal video tokenizer (8x spatial, 8x temporal)
};

enum class VaeOp { encode, decode };

/// Where the stage runs. InvokeAI's Qwen-Image estimator branches on `torch.version.hip` (rocm vs the
/// rest); ComfyUI's later AutoencoderKL estimate branches on is_amd().
enum class Backend { cuda, rocm, xpu, mps };

/// Bounds a workload read from a file must respect (validate() checks them). A side of 65536 pixels and
/// 2^34 pixel-samples (height x width x frames x batch: a 16384^2 image is 2^28, an 81-frame 1280x720 video
/// 2^26) are far beyond any decode; estimators multiply the product by constants below 2^30, so every
/// estimate stays exact in 64 bits.
inline constexpr int kMaxVaeDimension = 65536;  // height, width, frames, batch, tile sizes
inline constexpr std::uint64_t kMaxVaeSamples = std::uint64_t{1} << 34;

struct VaeWorkload {
  VaeFamily family = VaeFamily::sdxl;
  VaeOp op = VaeOp::decode;
  /// Pixel-space size: the decode's output or the encode's input (InvokeAI estimators multiply latent
  /// dims by the latent scale factor, so decode sizes are whole multiples of vae_spatial_scale()).
  int pixel_height = 0;
  int pixel_width = 0;
  /// Pixel frames (1 for images). Video decodes produce (latent_frames - 1) * temporal_scale + 1 frames.
  int frames = 1;
  /// Images in the batch. InvokeAI's VAE estimators ignore it (they read only shape[-2:]); PiD multiplies
  /// by it; ComfyUI's are per batch element (it splits batches by free memory).
  int batch = 1;
  /// dtype of the VAE's weights when the estimate is made (`next(vae.parameters()).element_size()` in
  /// InvokeAI; ComfyUI's vae_dtype). For InvokeAI's SD1.5/SDXL nodes, fp32 means the node's fp32 flag.
  DType dtype = DType::bf16;
  /// nullopt = untiled. Otherwise the tile size the call site passes: for the SD1.5/SDXL and Qwen-Image
  /// nodes this is the node's tile_size field where 0 means "the VAE's default"; each estimator resolves
  /// it the way its call site does.
  std::optional<int> tile_size;
  Backend backend = Backend::cuda;
  /// InvokeAI's opt-in low-VRAM settings: wan_memory_optimization (Wan streaming decode, PR #9462) or
  /// pid_memory_optimization (PiD chunked decode, PR #9460), whichever applies to the estimator.
  bool memory_optimization = false;
  /// diffusers AutoencoderKL.tile_sample_min_size (its config's sample_size): what InvokeAI's SD1.5/SDXL
  /// estimator uses when tile_size == 0. Required in that case; offsim does not guess a VAE's config.
  std::optional<int> vae_tile_sample_min_size;
};

std::string_view to_string(VaeFamily family);
std::string_view to_string(VaeOp op);
std::string_view to_string(Backend backend);
/// Parsers for scenario files; each throws ConfigError listing the known names.
VaeFamily parse_vae_family(std::string_view name);
VaeOp parse_vae_op(std::string_view name);
Backend parse_backend(std::string_view name);
std::span<const VaeFamily> all_vae_families();

/// Pixels per latent pixel along height/width (8, 16 for wan22 and flux2, 32 for ltxv).
int vae_spatial_scale(VaeFamily family);
/// Pixel frames per latent frame for video VAEs (1 for image VAEs).
int vae_temporal_scale(VaeFamily family);
bool is_video_vae(VaeFamily family);

/// Checks what every estimator relies on: positive sizes and batch, frames == 1 for image VAEs, decode
/// sizes divisible by the spatial scale, tile size > 0 or the 0 sentinel. Throws ConfigError saying which
/// field is wrong.
void validate(const VaeWorkload& workload);

/// One line for messages: "qwen_image decode 2560x1440 bf16 cuda tiled 256".
std::string describe(const VaeWorkload& workload);

}  // namespace offsim::policies
