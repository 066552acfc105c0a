#include "offsim/policies/invokeai_vae_estimators.hpp"

#include <algorithm>
#include <initializer_list>
#include <string>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies::invokeai {
namespace {

// Every constant below was read in invoke-ai/InvokeAI at the commit named next to it; the functions keep
// upstream's arithmetic order (integer products, then the float factors) so int() truncates the same value.

void require_family(const VaeWorkload& w, std::initializer_list<VaeFamily> families, const char* function) {
  validate(w);
  for (auto f : families) {
    if (w.family == f) return;
  }
  throw ConfigError(std::string("InvokeAI ") + function + " does not serve VAE family " +
                    std::string(to_string(w.family)) + " (" + describe(w) + ")");
}

std::uint64_t pixels(const VaeWorkload& w) {
  return static_cast<std::uint64_t>(w.pixel_height) * static_cast<std::uint64_t>(w.pixel_width);
}

std::uint64_t es_of(const VaeWorkload& w) {
  return require_element_size(w.dtype, "InvokeAI VAE estimate (next(vae.parameters()).element_size())");
}

// int(float) for the non-negative values estimators produce.
std::uint64_t truncate(double value) { return static_cast<std::uint64_t>(value); }

// `tile * tile * element_size * scaling_constant * 1.25`: an exact integer product, then the float factor.
double tiled_term(int tile, std::uint64_t es, std::uint64_t constant) {
  const auto t = static_cast<std::uint64_t>(tile);
  return static_cast<double>(t * t * es * constant) * 1.25;
}

// The "house" constants of the SD1.5/SDXL, CogView4, FLUX and SD3 estimators:
// `scaling_constant = 2200 if operation == "decode" else 1100` (vae_working_memory.py@8e71a8a519; comment
// "determined experimentally ... See #8414"; the figures are those of PR #7674, see spec section 6.2).
constexpr std::uint64_t kHouseDecode = 2200;
constexpr std::uint64_t kHouseEncode = 1100;

std::uint64_t house_linear(const VaeWorkload& w) {
  return pixels(w) * es_of(w) * (w.op == VaeOp::decode ? kHouseDecode : kHouseEncode);
}

// The SD1.5/SDXL term, the same in every version but for its constant: `element_size = 4 if fp32 else 2`
// from the node's fp32 flag (not from the weights), H x W x es x constant, or for tiles the tile term with
// its +25% "for factors like tile overlap and number of tiles" (the image size does not enter), and
// "If we are running in FP32, then we should account for the likely increase in model size (~250MB)."
// `caller` names the upstream function in errors.
double sd_working_memory(const VaeWorkload& w, std::uint64_t constant, const std::string& caller) {
  const bool fp32 = w.dtype == DType::fp32;
  const std::uint64_t es = fp32 ? 4 : 2;
  double working_memory = 0;
  if (w.tile_size) {
    int tile = *w.tile_size;
    if (tile == 0) {
      // `tile_size = vae.tile_sample_min_size` (diffusers: the VAE config's sample_size).
      if (!w.vae_tile_sample_min_size) {
        throw ConfigError("InvokeAI " + caller + ": tile_size 0 means the VAE's tile_sample_min_size; set " +
                          "vae_tile_sample_min_size (" + describe(w) + ")");
      }
      tile = *w.vae_tile_sample_min_size;
    }
    working_memory = tiled_term(tile, es, constant);
  } else {
    working_memory = static_cast<double>(pixels(w) * es * constant);
  }
  if (fp32) working_memory += static_cast<double>(250 * MiB);
  return working_memory;
}

}  // namespace

std::uint64_t sd15_sdxl(const VaeWorkload& w) {
  require_family(w, {VaeFamily::sd15, VaeFamily::sdxl}, "estimate_vae_working_memory_sd15_sdxl");
  const std::uint64_t constant = w.op == VaeOp::decode ? kHouseDecode : kHouseEncode;
  return truncate(sd_working_memory(w, constant, "estimate_vae_working_memory_sd15_sdxl"));
}

namespace {

// Before PR #7674, read at 7567ee2adfa55ca817d254f1de5ea584d860a2ee (invokeai/app/invocations/
// latents_to_image.py, flux_vae_decode.py, sd3_latents_to_image.py, each `_estimate_working_memory`).
constexpr std::uint64_t kSdDecodeBeforePr7674 = 960;    // "Determined experimentally." (SD1 and SDXL)
constexpr std::uint64_t kFluxDecodeBeforePr7674 = 1090;  // 6a5cee61be "Tune the working memory estimate for FLUX"
constexpr std::uint64_t kSd3DecodeBeforePr7674 = 1230;   // 4abfb35321 "Tune SD3 VAE decode working memory estimate"
constexpr double kBufferBeforePr7674 = 1.2;              // cba6528ea7 "Add a 20% buffer to all VAE decode ..."

void require_decode_before_pr7674(const VaeWorkload& w, const char* node) {
  if (w.op != VaeOp::decode) {
    throw ConfigError(std::string("InvokeAI ") + node + " before PR #7674 estimates decodes only: the encode nodes of " +
                      "that time pass no working memory (" + describe(w) + ")");
  }
}

}  // namespace

std::uint64_t sd15_sdxl_decode_before_pr7674(const VaeWorkload& w) {
  require_family(w, {VaeFamily::sd15, VaeFamily::sdxl}, "latents_to_image._estimate_working_memory");
  require_decode_before_pr7674(w, "latents_to_image");
  // `working_memory = int(working_memory * 1.2)`: the buffer applies after the fp32 bump.
  return truncate(sd_working_memory(w, kSdDecodeBeforePr7674, "latents_to_image before PR #7674") *
                  kBufferBeforePr7674);
}

std::uint64_t flux_decode_before_pr7674(const VaeWorkload& w) {
  require_family(w, {VaeFamily::flux1}, "FluxVaeDecodeInvocation._estimate_working_memory");
  require_decode_before_pr7674(w, "flux_vae_decode");
  return truncate(static_cast<double>(pixels(w) * es_of(w) * kFluxDecodeBeforePr7674) * kBufferBeforePr7674);
}

std::uint64_t sd3_decode_before_pr7674(const VaeWorkload& w) {
  require_family(w, {VaeFamily::sd3}, "SD3LatentsToImageInvocation._estimate_working_memory");
  require_decode_before_pr7674(w, "sd3_latents_to_image");
  return truncate(static_cast<double>(pixels(w) * es_of(w) * kSd3DecodeBeforePr7674) * kBufferBeforePr7674);
}

std::uint64_t cogview4(const VaeWorkload& w) {
  require_family(w, {VaeFamily::cogview4}, "estimate_vae_working_memory_cogview4");
  return house_linear(w);
}

std::uint64_t flux(const VaeWorkload& w) {
  require_family(w, {VaeFamily::flux1, VaeFamily::z_image}, "estimate_vae_working_memory_flux");
  return house_linear(w);
}

std::uint64_t sd3(const VaeWorkload& w) {
  require_family(w, {VaeFamily::sd3}, "estimate_vae_working_memory_sd3");
  return house_linear(w);
}

std::uint64_t anima(const VaeWorkload& w) {
  require_family(w, {VaeFamily::anima}, "estimate_vae_working_memory_anima");
  // be8ebeb34a: "Calibrated empirically on a 1024x1024 fp16 decode: peak reserved memory was ~5.95GB for a
  // full decode and ~1.73GB with 512px tiles (384px stride), i.e. ~2900 bytes per output pixel per element
  // byte. Encoding follows the house ratio of ~50% of decode."
  const std::uint64_t constant = w.op == VaeOp::decode ? 2900 : 1450;
  const std::uint64_t es = es_of(w);
  if (w.tile_size) {
    if (*w.tile_size <= 0) {
      throw ConfigError("InvokeAI estimate_vae_working_memory_anima: the Anima nodes tile only with "
                        "ANIMA_VAE_TILE_SIZE = 512; tile_size must be > 0 (" + describe(w) + ")");
    }
    return truncate(tiled_term(*w.tile_size, es, constant));
  }
  return pixels(w) * es * constant;
}

std::optional<int> anima_l2i_tile_size(std::uint64_t full_decode_estimate, std::uint64_t device_total_memory,
                                       Backend backend) {
  // anima_latents_to_image.py@8e71a8a519: ANIMA_VAE_TILE_SIZE = 512; _use_tiled_decode returns False for
  // devices other than cuda (ROCm builds report cuda too) and xpu, else
  // `full_decode_working_memory > 0.7 * total_vram`.
  constexpr int kAnimaVaeTileSize = 512;
  if (backend == Backend::mps) return std::nullopt;
  if (static_cast<double>(full_decode_estimate) > 0.7 * static_cast<double>(device_total_memory)) {
    return kAnimaVaeTileSize;
  }
  return std::nullopt;
}

std::optional<int> wan_l2v_tile_size(std::uint64_t untiled_estimate, std::uint64_t device_total_memory,
                                     Backend backend, std::optional<int> vae_tile_sample_min_height) {
  // wan_latents_to_video.py@8e71a8a519: total_vram only for exec_device.type "cuda" (ROCm too) or "xpu";
  // `if total_vram is not None and estimated_working_memory > 0.9 * total_vram: use_tiling = True`.
  if (backend == Backend::mps) return std::nullopt;
  if (static_cast<double>(untiled_estimate) > 0.9 * static_cast<double>(device_total_memory)) {
    return vae_tile_sample_min_height.value_or(256);
  }
  return std::nullopt;
}

std::uint64_t wan(const VaeWorkload& w, WanProfile profile) {
  require_family(w, {VaeFamily::wan21, VaeFamily::wan22}, "estimate_vae_working_memory_wan");
  const std::uint64_t es = es_of(w);
  const bool decode = w.op == VaeOp::decode;
  std::uint64_t constant = decode ? 2900 : 1450;  // eb9a951248 / _WAN_VAE_SINGLE_FRAME_DECODE_SCALING_CONSTANT
  if (profile == WanProfile::pr9462 && decode && w.frames > 1) {
    // fd0e38bc17: _WAN_VAE_VIDEO_DECODE_SCALING_CONSTANT_A14B = 6500 (z_dim 16),
    // _WAN_VAE_VIDEO_DECODE_SCALING_CONSTANT_TI2V = 7000 (z_dim >= 32). Wan 2.1 VAE z_dim 16, Wan 2.2 VAE
    // z_dim 48 (the wan_l2v node's channel check names them "16-channel Wan 2.1" / "48-channel Wan 2.2").
    const int z_dim = w.family == VaeFamily::wan22 ? 48 : 16;
    constant = z_dim >= 32 ? 7000 : 6500;
  }
  if (w.tile_size && *w.tile_size <= 0) {
    throw ConfigError("InvokeAI estimate_vae_working_memory_wan: the Wan nodes pass the VAE's "
                      "tile_sample_min_height; tile_size must be > 0 (" + describe(w) + ")");
  }
  const double per_frame = w.tile_size ? tiled_term(*w.tile_size, es, constant)
                                        : static_cast<double>(pixels(w) * es * constant);
  // wan_latents_to_video.py@fd0e38bc17: stream_decode = optimize_memory and not use_tiling.
  const bool streaming = profile == WanProfile::pr9462 && decode && w.memory_optimization && !w.tile_size;
  std::uint64_t resident_frames = static_cast<std::uint64_t>(w.frames);
  std::uint64_t clip_copies = decode ? 2 : 1;
  if (streaming) {
    // `temporal_scale = int(getattr(vae.config, "scale_factor_temporal", None) or 4)`: 4 for both Wan VAEs.
    resident_frames = std::min<std::uint64_t>(resident_frames, static_cast<std::uint64_t>(vae_temporal_scale(w.family)));
    clip_copies = 1;
  }
  const std::uint64_t clip_bytes = clip_copies * 3 * resident_frames * pixels(w) * es;
  return truncate(per_frame + static_cast<double>(clip_bytes));
}

int resolve_qwen_image_tile_size(int tile_size) {
  // vae_compat.py@8e71a8a519: QWEN_IMAGE_VAE_DEFAULT_TILE_SIZE = 256, QWEN_IMAGE_VAE_MIN_TILE_SIZE = 64.
  constexpr int kDefault = 256;
  constexpr int kMin = 64;
  if (tile_size <= 0) return kDefault;
  return std::max(tile_size, kMin);
}

std::uint64_t qwen_image(const VaeWorkload& w, QwenImageProfile profile) {
  require_family(w, {VaeFamily::qwen_image}, "estimate_vae_working_memory_qwen_image");
  const std::uint64_t es = es_of(w);
  const bool decode = w.op == VaeOp::decode;
  // `is_rocm = torch.version.hip is not None`: XPU and MPS builds take the non-ROCm constants (f2af8c6013
  // documents XPU's choice as deliberate).
  const bool rocm = w.backend == Backend::rocm;
  std::uint64_t constant = 0;
  switch (profile) {
    case QwenImageProfile::pr9305_first:  // e9aa4b0f73: `5500 if operation == "decode" else 2750`
      constant = decode ? 5500 : 2750;
      break;
    case QwenImageProfile::pr9305_rocm_grid:  // f3c73bb03d: `5500 if operation == "decode" else 6300`
      constant = decode ? 5500 : 6300;
      break;
    case QwenImageProfile::pr9305_merged:  // ee560c0511 / a6724695a5
    case QwenImageProfile::pr9427:         // 8e71a8a519 (constants unchanged)
      constant = decode ? (rocm ? 5500 : 2900) : (rocm ? 6300 : 1600);
      break;
  }
  if (profile == QwenImageProfile::pr9427 && w.tile_size) {
    // The nodes pass `resolve_qwen_image_vae_tile_size(tile_size) if tiled else None`.
    const int tile = resolve_qwen_image_tile_size(*w.tile_size);
    // "tiled_decode holds several pixel-space copies at once ... Measured at ~5 frames on a 2560x1440 fp16
    // decode. Encode consumes its input image without duplicating it": image_copies = 5 decode / 1 encode.
    const std::uint64_t image_copies = decode ? 5 : 1;
    const double working_memory = tiled_term(tile, es, constant) + static_cast<double>(image_copies * 3 * pixels(w) * es);
    return truncate(working_memory);
  }
  // Untiled, and every profile before PR #9427 whatever the tiling: the full frame.
  return pixels(w) * es * constant;
}

namespace {

// FLUX.2 (PR #9519), read at e724d69eea0a37c49b595a8d232bd60c3e0bf4e3: vae_working_memory.py
// (estimate_vae_working_memory_flux2, the per-backend constant table) and backend/util/attention.py
// (SDPA_MATH_BYTES_PER_SCORE_ELEMENT, sdpa_score_matrix_bytes). Constants and arithmetic, not the text.
//
// Peak reserved bytes per output pixel per element byte, fitted by upstream's
// scripts/calibrate_flux2_working_memory.py --only vae: cuDNN (RTX 4090, torch 2.7.1) implied 2185 decode /
// 1072 encode, MIOpen (RX 9070 XT and PRO W7900, torch 2.10) 3453-3525 / 2688; shipped with ~2% headroom.
// `is_rocm = device.type == "cuda" and torch.version.hip is not None` picks the MIOpen column; MPS, XPU and
// CPU take cuDNN's.
constexpr std::uint64_t kFlux2CudnnDecode = 2200;
constexpr std::uint64_t kFlux2CudnnEncode = 1100;
constexpr std::uint64_t kFlux2MiopenDecode = 3600;
constexpr std::uint64_t kFlux2MiopenEncode = 2750;
// _FLUX2_VAE_MID_BLOCK_HEADS = 1 (one 512-wide head), _FLUX2_VAE_SPATIAL_COMPRESSION = 8.
constexpr std::uint64_t kFlux2MidBlockHeads = 1;
constexpr std::uint64_t kFlux2SpatialCompression = 8;
// SDPA_MATH_BYTES_PER_SCORE_ELEMENT: an upper bound on the peak reserved bytes per score element measured
// with the math kernel forced on CUDA, gfx1100 and gfx1201 (12.88 / 13.62 / 16.38 at 4k tokens, the worst).
constexpr std::uint64_t kSdpaMathBytesPerScoreElement = 17;

// Whether the mid-block attention builds its (S x S) score matrix. Upstream asks torch (and, on ROCm, decides
// by policy for heads wider than 256). Here: CUDA takes the 512-wide head on the memory-efficient kernel
// ("verified" in the docstring); ROCm runs math (gfx1100 / torch 2.10 answered MATH in #9519's dispatch
// probe, and the later guard sends every ROCm build there); MPS "has no fused kernel at all". XPU is taken
// as fused (its probe answer for this head is not recorded anywhere read; the Qwen-Image estimator's
// comment measured XPU on an efficient kernel).
bool flux2_score_matrix_materializes(Backend backend) { return backend == Backend::rocm || backend == Backend::mps; }

void require_flux2_tile(const VaeWorkload& w) {
  if (w.tile_size && *w.tile_size <= 0) {
    throw ConfigError("InvokeAI estimate_vae_working_memory_flux2: its only tiled call site (the FLUX.2 "
                      "reference-image encode) passes REF_ENCODE_TILE_SIZE = 512; tile_size must be > 0 (" +
                      describe(w) + ")");
  }
}

}  // namespace

std::uint64_t flux2_mid_block_score_bytes(const VaeWorkload& w) {
  require_family(w, {VaeFamily::flux2}, "estimate_vae_working_memory_flux2");
  require_flux2_tile(w);
  if (!flux2_score_matrix_materializes(w.backend)) return 0;
  const auto tile = static_cast<std::uint64_t>(w.tile_size.value_or(0));
  // Untiled: (out_h // 8) * (out_w // 8); tiled: (tile // 8) ** 2.
  const std::uint64_t seq = w.tile_size ? (tile / kFlux2SpatialCompression) * (tile / kFlux2SpatialCompression)
                                        : (static_cast<std::uint64_t>(w.pixel_height) / kFlux2SpatialCompression) *
                                              (static_cast<std::uint64_t>(w.pixel_width) / kFlux2SpatialCompression);
  // (batch, heads, S, S): "one head per sample prices the whole batch".
  const std::uint64_t heads = kFlux2MidBlockHeads * static_cast<std::uint64_t>(w.batch);
  return heads * seq * seq * kSdpaMathBytesPerScoreElement;
}

std::uint64_t flux2(const VaeWorkload& w) {
  require_family(w, {VaeFamily::flux2}, "estimate_vae_working_memory_flux2");
  require_flux2_tile(w);
  const std::uint64_t es = es_of(w);
  const bool decode = w.op == VaeOp::decode;
  const bool miopen = w.backend == Backend::rocm;
  const std::uint64_t constant =
      miopen ? (decode ? kFlux2MiopenDecode : kFlux2MiopenEncode) : (decode ? kFlux2CudnnDecode : kFlux2CudnnEncode);
  // `batch_size = image_tensor.shape[0]`; the linear term is per sample.
  const double linear = (w.tile_size ? tiled_term(*w.tile_size, es, constant) : static_cast<double>(pixels(w) * es * constant)) *
                        static_cast<double>(w.batch);
  // "max, not sum": the mid-block attention and the full-resolution convolutions peak in different phases.
  const double score = static_cast<double>(flux2_mid_block_score_bytes(w));
  return truncate(std::max(linear, score));
}

}  // namespace offsim::policies::invokeai
