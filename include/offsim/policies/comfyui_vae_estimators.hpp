// ComfyUI's VAE working-memory estimates: the memory_used_decode / memory_used_encode lambdas that
// comfy/sd.py's VAE.__init__ installs for the VAE type it detects from the state dict. VAE.decode/encode
// pass the value to `model_management.load_models_gpu([patcher], memory_required=memory_used, ...)` and split
// the batch by free memory / memory_used, so every figure is per batch element (the workload's batch is not
// used). decode_tiled requests the same untiled figure ("#TODO: calculate mem required for tile"), so tiling
// never changes it.
//
// The lambdas see the latent shape for decode, (B, C, h, w) or (B, C, t, h, w), and the pixel shape for
// encode, (B, 3, H, W) or, for 3-D VAEs, (1, 3, T, H, W) after VAE.encode moves the image batch into the
// frame axis; encode crops H and W down to multiples of the spatial ratio first (vae_encode_crop_pixels).
// Latent sizes come from the workload's pixel sizes through the VAE's downscale_ratio lambdas.
//
// Results are Python floats for some types (Mochi encode, the AMD ratio); they are returned rounded UP to
// a whole byte: ComfyUI compares `free > memory_required`, which holds for an integer free exactly when
// free >= ceil(memory_required).
#pragma once

#include <cstdint>
#include <string_view>

#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies::comfyui {

/// The comfy/sd.py versions offsim transcribes.
enum class Profile {
  /// Comfy-Org/ComfyUI@a125cd84b054a57729b5eecab930ca9408719832 (2025-10-11, PR #10302): the spec's snapshot.
  a125cd84,
  /// Comfy-Org/ComfyUI@033046cc4fac82d954c6daedccf1c8128433c4f1, a later comfy/sd.py read from the code index
  /// (its date was not established): AutoencoderKL figures x VAE_KL_MEM_RATIO = 2.73 on AMD, the FLUX.2
  /// (batch-norm latent) KL VAE, and Wan 2.1 factors that drop for <= 4 frames (2200/1500 instead of
  /// 7000/6000: the Qwen-Image over-estimate of issue #9771).
  c033046cc,
};

/// The branch of VAE.__init__ a family's checkpoint takes.
enum class VaeType {
  autoencoder_kl,  // default SD/SDXL/FLUX.1/SD3 AutoencoderKL (`"decoder.conv_in.weight"`, other channel counts)
  flux2_kl,        // AutoencoderKL with a batch-norm latent (`'bn.running_mean' in sd`): FLUX.2; c033046cc only
  wan21,           // `"decoder.middle.0.residual.0.gamma"` without the Wan 2.2 upsample key: Wan 2.1 and Qwen-Image
  wan22,           // Wan 2.2 VAE (`"decoder.upsamples.0.upsamples.0.residual.2.weight"`)
  hunyuan_video,   // `"decoder.conv_in.conv.weight"` (conv3d AutoencoderKL, time_compress 4)
  ltxv,            // `"decoder.up_blocks.0.res_blocks.0.conv1.conv.weight"`
  mochi,           // genmo mochi keys
  cosmos,          // `"decoder.unpatcher3d.wavelets"`
};

std::string_view to_string(VaeType type);
std::string_view to_string(Profile profile);

/// Which branch a family's VAE file takes: sd15/sdxl/flux1/sd3/z_image -> autoencoder_kl; qwen_image, anima,
/// wan21 -> wan21 (same keys); wan22 -> wan22; flux2 -> flux2_kl (c033046cc; absent from a125cd84, which
/// predates FLUX.2); the video families map to themselves. Throws ConfigError when the profile has no branch
/// for the family (cogview4: ComfyUI has no CogView4 pipeline to load it).
VaeType detect_vae_type(VaeFamily family, Profile profile);

/// memory_used_decode / memory_used_encode for workload.op, as the VAE of `type` at `profile` computes it.
/// workload.family must detect as `type`.
std::uint64_t memory_used(VaeType type, const VaeWorkload& workload, Profile profile);

}  // namespace offsim::policies::comfyui
