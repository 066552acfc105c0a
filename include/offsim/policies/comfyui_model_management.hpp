// ComfyUI's classic model management (Comfy-Org/ComfyUI comfy/model_management.py and
// comfy/model_patcher.py @a125cd84b054a57729b5eecab930ca9408719832, the snapshot of
// shared/specs/offload_policies.md section 3): load_models_gpu with its working-memory reservation
// (minimum_inference_memory, EXTRA_RESERVED_VRAM, 1.1x weight slack, minimum_memory_required), free_memory
// (unload order: most offloaded first, then fewer references, then smaller, then the most recently loaded;
// partial unloads of the smallest modules first), get_free_memory = driver free + (reserved - active) as its
// F_P, and partial ("lowvram") loads of the largest modules first with the rest cast to the GPU per forward.
// Call sites transcribed: CLIP.load_model (no estimate), sampler_helpers.prepare_sampling (memory_required
// and minimum_memory_required of the diffusion model), VAE.decode / VAE.encode (memory_used_decode/encode;
// an OOM of the untiled run falls back to tiles: comfyui_tiled_retry.hpp).
//
// policy_settings.comfyui: "vram_state" ("normal" default, "low" = --lowvram, "high" = --highvram/--gpu-only,
// "no" = --novram), "reserve_vram_gb" (--reserve-vram), "windows" (false: the Linux EXTRA_RESERVED_VRAM),
// "disable_smart_memory" (--disable-smart-memory). MIN_WEIGHT_MEMORY_RATIO follows the device's platform.
//
// E = max(minimum_inference_memory, memory_required + EXTRA_RESERVED_VRAM) - EXTRA_RESERVED_VRAM
//   = max(0.8 GiB, memory_required): the working memory it keeps free for the stage; EXTRA_RESERVED_VRAM is
// upstream's reserve "for other applications", kept as a margin outside E. F_P is get_free_memory after the
// free_memory passes; stop = satisfied when it exceeds 1.1 x the weights to load + the reservation (the
// condition free_memory works towards), exhausted when the unload candidates ran out first and the models
// were loaded under the lowvram budget instead.
//
// Not modelled:
//   * DynamicVRAM (comfy_aimdo, CoreModelPatcher, pinned-memory budgets), the mode newer ComfyUI uses by
//     default: out of scope. The classic path of a newer model_management.py (read at 02b2b388 through
//     the code index; its date was not established) also changed: lowvram_model_memory's floor is 0 instead
//     of 128 MiB and no longer max(0.1, . - loaded), free_memory unloads only while memory_to_free > 0, and
//     the models of one call are loaded in reverse order. Those versions are not transcribed here.
//   * the allocator: ComfyUI's cuda_malloc.py@a125cd84 sets PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync
//     by default on CUDA builds of torch >= 2; the policy runs on whatever allocator the scenario states.
//   * VAE.decode's batch split (batch_number = max(1, int(get_free_memory / memory_used)) elements at a time):
//     the stage's working memory is replayed as given, not re-shaped per chunk. Its OOM -> tiled fallback is
//     modelled (comfyui_tiled_retry.hpp: the decision's oom_fallback, a handled OOM then the tiles' derived
//     working memory); allocations a recorded trace marks fallible fail as handled OOMs as for any policy.
//     A weight-load OOM inside load_models_gpu (which the same try block would also send to the tiled path,
//     with the weights detached) is reported as a load OOM.
//   * sys.getrefcount in the unload order (Python references are not simulated: equal for every model),
//     LoRA / weight patches (backup copies), async offload streams (--async-offload, off by default),
//     clones of a patcher (each scenario model is one ModelPatcher).
//   * A "module" of ModelPatcher._load_list is a leaf module; offsim approximates it by the manifest's
//     tensors grouped by name prefix (manifest_modules.hpp), every one of them castable (comfy.ops layers).
#pragma once

#include <memory>
#include <span>
#include <string>

#include "offsim/policies/comfyui_vae_estimators.hpp"
#include "offsim/policies/policy.hpp"

namespace offsim::policies {

struct ComfyUIProfile {
  std::string id;
  std::string label;
  std::string upstream;
  /// The comfy/sd.py whose memory_used_decode/encode the VAE call site uses: estimator ids
  /// "comfyui/vae-<type>@<commit>" (policies/estimator_registry.cpp).
  comfyui::Profile vae_estimates = comfyui::Profile::a125cd84;
};

std::span<const ComfyUIProfile> comfyui_profiles();
std::unique_ptr<Policy> make_comfyui_model_management(const ComfyUIProfile& profile);

/// The estimator id ComfyUI's VAE call site uses for a VAE family under `vae_estimates`. Throws ConfigError
/// when that comfy/sd.py has no branch for the family (e.g. FLUX.2 at a125cd84).
std::string comfyui_vae_estimator_id(VaeFamily family, comfyui::Profile vae_estimates);

}  // namespace offsim::policies
