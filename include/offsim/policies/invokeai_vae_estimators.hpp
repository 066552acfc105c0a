// InvokeAI's VAE working-memory estimators, transcribed from
// invoke-ai/InvokeAI:invokeai/backend/util/vae_working_memory.py and the invocations that call them.
// Each returns what the call site passes to `LoadedModel.model_on_device(working_mem_bytes=...)`; the model
// cache then reserves max(estimate, device_working_mem_gb) (that floor is the cache's, not modelled here).
//
// Conventions shared by every function (upstream's, see vae_working_memory.py@8e71a8a519):
//  * H, W are pixel sizes: decode multiplies latent dims by LATENT_SCALE_FACTOR = 8, encode reads the
//    image; the VaeWorkload already holds pixel sizes.
//  * es is the element size of the VAE's first parameter (workload.dtype), except in the SD1.5/SDXL
//    estimator, which takes it from the node's fp32 flag (4 if fp32 else 2).
//  * Python's int() truncates the float result; so do these.
// A workload whose family the function does not serve throws ConfigError.
#pragma once

#include <cstdint>
#include <optional>

#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies::invokeai {

/// estimate_vae_working_memory_sd15_sdxl @8e71a8a519 (unchanged since fd4c3bd27a, 2025-08-18; the
/// 2200/1100 constants date from PR #7674). Families sd15, sdxl. Tiled: tile^2 * es * C * 1.25 (tile_size 0
/// means vae.tile_sample_min_size = workload.vae_tile_sample_min_size, required then); fp32 adds 250 MiB.
std::uint64_t sd15_sdxl(const VaeWorkload& workload);

/// The VAE decode estimates before PR #7674 (issue #7587): the latents_to_image (SD1.5/SDXL), flux_vae_decode
/// and sd3_latents_to_image nodes at 7567ee2adf, the parent of #7674's commit b9f9d1c152 (same code as release
/// v5.6.0, the version; it dates from 299eb94a05 with the +20% of cba6528ea7 and the SD3 tuning of
/// 4abfb35321). Constants "determined experimentally" on *allocated* memory (#7674: "The previous values were
/// set based on memory _allocations_"), then `working_memory * 1.2` ("a 20% buffer ... to be safe"):
///   SD1.5/SDXL: (H * W * es * 960 [tiled: tile^2 * es * 960 * 1.25] + (fp32: 250 MiB)) * 1.2, es = 4 if fp32
///               else 2 (the node's flag); families sd15, sdxl;
///   FLUX:       H * W * es * 1090 * 1.2 (es of the VAE's parameters); family flux1;
///   SD3:        H * W * es * 1230 * 1.2; family sd3.
/// Decode only: the image_to_latents / flux_vae_encode / sd3_image_to_latents nodes of that time enter the
/// model with `with vae_info as vae` (LoadedModel.__enter__ locks with working_mem_bytes=None) until PR #8414.
/// An encode workload throws ConfigError. PR #7674 (b9f9d1c152) replaced all three by 2200 without the 1.2:
/// sd15_sdxl(), flux() and sd3() below give its decode values.
std::uint64_t sd15_sdxl_decode_before_pr7674(const VaeWorkload& workload);
std::uint64_t flux_decode_before_pr7674(const VaeWorkload& workload);
std::uint64_t sd3_decode_before_pr7674(const VaeWorkload& workload);

/// estimate_vae_working_memory_cogview4 @8e71a8a519: H * W * es * (2200 decode / 1100 encode). No tiling term.
std::uint64_t cogview4(const VaeWorkload& workload);

/// estimate_vae_working_memory_flux @8e71a8a519: H * W * es * (2200 / 1100). Families flux1 and z_image
/// (the Z-Image nodes call it since PR #8740, commit d34655fd58). FLUX Kontext's reference-image encode
/// (backend/flux/extensions/kontext_extension.py) computes the same encode figure inline.
std::uint64_t flux(const VaeWorkload& workload);

/// estimate_vae_working_memory_sd3 @8e71a8a519: H * W * es * (2200 / 1100).
std::uint64_t sd3(const VaeWorkload& workload);

/// estimate_vae_working_memory_anima, added by PR #9220 (be8ebeb34a), unchanged to 8e71a8a519. Family anima
/// (the Wan 2.1 / Qwen-Image VAE the Anima nodes load as AutoencoderKLWan). C = 2900 decode / 1450 encode;
/// tiled: tile^2 * es * C * 1.25 (the call site only tiles with ANIMA_VAE_TILE_SIZE = 512).
std::uint64_t anima(const VaeWorkload& workload);

/// The anima_l2i node's tiling decision (anima_latents_to_image.py@8e71a8a519, _use_tiled_decode): on
/// CUDA/XPU it tiles with ANIMA_VAE_TILE_SIZE = 512 when the full-decode estimate exceeds 0.7 x the device's
/// total memory (get_device_properties().total_memory). Returns the tile size to put in the workload, or
/// nullopt for a full decode.
std::optional<int> anima_l2i_tile_size(std::uint64_t full_decode_estimate, std::uint64_t device_total_memory,
                                       Backend backend);

/// The two versions of estimate_vae_working_memory_wan.
enum class WanProfile {
  /// PR #9163 (eb9a951248, 2026-07-27): C = 2900 decode / 1450 encode for every frame count;
  /// clip = (2 decode / 1 encode) * 3 * frames * H * W * es.
  pr9163,
  /// PR #9462 (fd0e38bc17, 2026-08-17, unchanged to 8e71a8a519): multi-frame decode C = 6500 (z_dim 16, the
  /// Wan 2.1 VAE) / 7000 (z_dim 48, the Wan 2.2 VAE); streaming decode keeps min(frames, 4) frames, 1 copy.
  pr9462,
};
/// Families wan21 (z_dim 16) and wan22 (z_dim 48). per_frame = H * W * es * C (tiled: tile^2 * es * C * 1.25)
/// plus the clip term. Streaming (pr9462 only) = decode with workload.memory_optimization and no tiling, as
/// wan_latents_to_video.py decides it (it never streams a tiled decode).
std::uint64_t wan(const VaeWorkload& workload, WanProfile profile);

/// The wan_l2v node's tiling fallback (wan_latents_to_video.py, since PR #9163 eb9a951248, unchanged to
/// 8e71a8a519): on CUDA/XPU, when the untiled estimate exceeds 0.9 x the device's total memory it tiles with
/// the VAE's tile_sample_min_height, `getattr(vae, "tile_sample_min_height", 256)`, and re-estimates with
/// streaming off. `vae_tile_sample_min_height` is that attribute when the scenario knows it; otherwise the
/// node's fallback 256 is used. Returns the tile size to put in the workload, or nullopt for no tiling.
std::optional<int> wan_l2v_tile_size(std::uint64_t untiled_estimate, std::uint64_t device_total_memory,
                                     Backend backend, std::optional<int> vae_tile_sample_min_height = std::nullopt);

/// Versions of estimate_vae_working_memory_qwen_image that shipped or sat on the PR #9305 / #9427 branches.
enum class QwenImageProfile {
  /// e9aa4b0f73 (PR #9305 first commit, 2026-06-25): decode 5500 / encode 2750 on every backend
  /// (decode calibrated on one ROCm W7900 point, 1248x832 -> ~10.06 GiB; encode "half", not measured).
  pr9305_first,
  /// f3c73bb03d (PR #9305, 2026-06-29): encode recalibrated 2750 -> 6300 from a ROCm grid; every backend.
  pr9305_rocm_grid,
  /// ee560c0511 = merged a6724695a5 (2026-06-30): decode 5500 ROCm / 2900 otherwise, encode 6300 / 1600.
  /// Tiling is ignored (the l2i node honoured force_tiled_decode but estimated the full frame; i2l
  /// disabled tiling), which PR #9427 fixed.
  pr9305_merged,
  /// 8e71a8a519 (PR #9427, 2026-08-19): merged constants; tiled = tile^2 * es * C * 1.25 + copies * 3 * H * W
  /// * es with copies 5 decode / 1 encode; tile_size resolved by resolve_qwen_image_tile_size first.
  pr9427,
};
std::uint64_t qwen_image(const VaeWorkload& workload, QwenImageProfile profile);

/// resolve_qwen_image_vae_tile_size (backend/krea2/vae_compat.py@8e71a8a519): <= 0 -> the default
/// QWEN_IMAGE_VAE_DEFAULT_TILE_SIZE = 256, otherwise clamped up to QWEN_IMAGE_VAE_MIN_TILE_SIZE = 64.
int resolve_qwen_image_tile_size(int tile_size);

/// estimate_vae_working_memory_flux2, added by PR #9519 (FLUX.2 decode, encode and reference-image encode; at
/// 8e71a8a519 those call sites pass no estimate). Transcribed from vae_working_memory.py as it stands at
/// e724d69eea (the code index holds no copy at #9519's squash commit; the PR's own review figures are in that
/// version's comments). Family flux2. Per sample:
///   linear = H * W * es * C, C = 3600 decode / 2750 encode on ROCm (MIOpen), 2200 / 1100 elsewhere (cuDNN);
///            tiled: tile^2 * es * C * 1.25 (the reference-image encode tiles at 512);
///   score  = S^2 * 17 where the 512-wide single-head mid-block attention materializes its score matrix (ROCm,
///            MPS), S = (H/8) * (W/8) or (tile/8)^2; 0 where a fused SDPA kernel runs (CUDA, XPU);
///   E = max(linear * batch, score * batch).
std::uint64_t flux2(const VaeWorkload& workload);

/// flux2()'s score-matrix term alone (0 on backends with a fused kernel for the 512-wide head).
std::uint64_t flux2_mid_block_score_bytes(const VaeWorkload& workload);

}  // namespace offsim::policies::invokeai
