// The modules of a model as far as weight movement is concerned: a manifest's tensors grouped by the
// module that owns them directly. Offsim's manifests list tensors, not modules, so a module is
// approximated by a name prefix: the tensor name up to its last '.' ("blocks.0.attn.to_q.weight" and
// "blocks.0.attn.to_q.bias" belong to module "blocks.0.attn.to_q"; a top-level parameter such as
// "pos_embed" belongs to the root module ""). That is the unit both of these upstream walks use:
//   * ComfyUI ModelPatcher._load_list (Comfy-Org/ComfyUI:comfy/model_patcher.py@a125cd84) keeps a module
//     when all its parameters are its own (a leaf as far as parameters go) and moves or casts it whole;
//   * accelerate attach_align_device_hook (huggingface/accelerate:src/accelerate/hooks.py) and diffusers'
//     leaf-level group offloading (src/diffusers/hooks/group_offloading.py@58eb52c0) hook every module
//     with direct tensors and move exactly those tensors around its forward.
// A module whose parameters sit both on itself and on its children (ComfyUI skips it, accelerate hooks
// its direct ones) is still one group here: its direct tensors form the group, its children their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offsim/policies/model_manifest.hpp"

namespace offsim::policies {

struct ManifestModule {
  std::string name;                  // "" for tensors owned by the root module
  std::vector<std::size_t> tensors;  // indices into ModelManifest::tensors, state-dict order
  std::uint64_t bytes = 0;
  /// Indices (into the same list) of the modules that own tensors and enclose this one, innermost
  /// first: their forwards are running while this module's forward runs.
  std::vector<std::size_t> ancestors;
};

/// The module of one tensor name: everything before the last '.', or "" when there is none.
std::string module_of(const std::string& tensor_name);

/// The modules owning the tensors that `select` accepts (all tensors when it is empty), in the order of
/// their first tensor in the state dict (the order a forward meets them in the models offsim ships:
/// every manifest walks the module tree in definition order).
std::vector<ManifestModule> manifest_modules(const ModelManifest& manifest,
                                             const std::vector<bool>& select = {});

}  // namespace offsim::policies
