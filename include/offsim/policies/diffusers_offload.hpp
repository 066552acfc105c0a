// diffusers' three offload schedules (huggingface/diffusers @58eb52c0803ea9af3abec60841c2a093bdf1f951,
// src/diffusers/pipelines/pipeline_utils.py and src/diffusers/hooks/group_offloading.py) with the accelerate
// hooks they install (huggingface/accelerate src/accelerate/hooks.py, big_modeling.py). Schedules, not
// caches: no estimate, no free-memory function, no stop condition.
//
//   diffusers-model-offload      enable_model_cpu_offload: accelerate CpuOffload hooks chained along
//                                model_cpu_offload_seq; a model's pre-forward offloads the previous model of
//                                the chain and loads itself; the last one stays until maybe_free_model_hooks()
//                                at the end of the call moves everything back. The accelerate version decides
//                                the order (policy_settings.diffusers.accelerate):
//                                  [0.17, 0.19)  load the current model, then offload the previous one (71e81bab):
//                                                both are on the device at once;
//                                  [0.19, 0.34)  offload previous, then load current (#1315, 2106e87d);
//                                  [0.34, 1.10)  ... + clear_device_cache() after the offload, on every forward
//                                                (#2994, 12a5befd);
//                                  >= 1.10       offload and clear only if the previous model is on the device,
//                                                load only if the current one is not (#3695, c0a3aefe).
//   diffusers-sequential-offload enable_sequential_cpu_offload: accelerate cpu_offload on every component:
//                                each module with direct tensors gets its weights for the duration of its
//                                forward (AlignDevicesHook, offload=True) and drops them after (to meta).
//   diffusers-group-offload      enable_group_offload / apply_group_offloading: block_level (groups of
//                                num_blocks_per_group blocks of every ModuleList that is a direct child, the
//                                rest as one unmatched group held for the whole forward) or leaf_level (one
//                                group per leaf module); use_stream prefetches the next group; record_stream.
//
// policy_settings.diffusers: "model_cpu_offload_seq" (model ids in the pipeline class's order; default: the
// scenario's model order), "exclude_from_cpu_offload" (model/sequential: _exclude_from_cpu_offload),
// "accelerate" (version, default "1.10"), group offloading: "offload_type" (block_level default /
// leaf_level), "num_blocks_per_group" (required for block_level, as upstream), "use_stream", "record_stream",
// "exclude_modules". Decisions carry no E, no F_P and stop n/a; model offload reports the model its hook
// offloads as an eviction.
//
// What is approximated (modules and forward order come from manifests, not from running the model):
//   * a forward is the stage step: within it, modules/groups are streamed in state-dict order and the
//     configuration with the most bytes on the device at once stays resident while the stage's working
//     memory runs (its activations meet the weight peak);
//   * modules are manifest tensors grouped by name prefix (manifest_modules.hpp); a VAE decode runs
//     "decoder." and "post_quant_conv." only, an encode "encoder." and "quant_conv." (AutoencoderKL._decode /
//     _encode); for group offloading a VAE's decoder/encoder is one group (AutoencoderKL declares
//     _group_offload_block_modules = [quant_conv, post_quant_conv, encoder, decoder]; its up/down block
//     groups inside are not tagged in the manifests, so this over-states the VAE's peak by less than the
//     decoder's size);
//   * use_stream allocates weights on a side stream, whose cached blocks the compute stream cannot reuse;
//     offsim's MemoryBackend/ResidentModel allocate every weight on stream 0, so that pool split is not
//     simulated. record_stream defers the reuse of an offloaded group's blocks until the compute stream has
//     passed the recorded point: modelled as the group staying one group longer (3 groups at the prefetch
//     instead of 2: the case where the host runs one group ahead of the GPU), since MemoryBackend exposes no
//     record_stream.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "offsim/policies/policy.hpp"

namespace offsim::policies {

enum class DiffusersOffloadMode { kModel, kSequential, kGroup };

struct DiffusersProfile {
  std::string id;
  std::string label;
  std::string upstream;
  DiffusersOffloadMode mode = DiffusersOffloadMode::kModel;
};

std::span<const DiffusersProfile> diffusers_profiles();
std::unique_ptr<Policy> make_diffusers_offload(const DiffusersProfile& profile);

}  // namespace offsim::policies
