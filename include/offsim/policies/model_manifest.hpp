// A model's weights as their real tensor list (traces/models/*.json, format offsim-model-manifest/1).
// Each tensor is its own allocation when PyTorch moves a model to the GPU, which is what fragments the
// caching allocator; block/phase tags say what LightX2V's block/phase offload and diffusers' group
// offload move as a unit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace offsim::policies {

struct TensorSpec {
  std::string name;
  std::uint64_t bytes = 0;
  int group = -1;  // index into ModelManifest::groups; -1 = non-block tensor
  int block = -1;  // block index inside the group
  std::string phase;
};

struct BlockGroup {
  std::string prefix;  // "transformer_blocks"
  int count = 0;
  std::vector<std::string> phases;
};

struct ModelManifest {
  std::string name;       // "flux2-klein-9b-transformer"
  std::string pipeline;   // "FLUX.2-klein-9B"
  std::string component;  // "transformer"
  std::string dtype;      // "bf16"
  std::string source;     // where the config came from
  std::string path;       // file it was read from
  std::uint64_t total_bytes = 0;
  std::vector<BlockGroup> groups;
  std::vector<TensorSpec> tensors;  // state-dict order

  /// Reads and validates a manifest. Throws offsim::ParseError naming the file and the field.
  static ModelManifest load(const std::filesystem::path& path);
  /// load(), memoized per path and modification time: generated scenarios reuse the same few manifests
  /// thousands of times. Manifests are immutable once loaded, so sharing them is safe.
  static std::shared_ptr<const ModelManifest> load_shared(const std::filesystem::path& path);
  /// Bytes of the tensors outside every block group (embeddings, norms, heads, modulation).
  std::uint64_t non_block_bytes() const;
  /// Bytes of the largest block (over all groups).
  std::uint64_t largest_block_bytes() const;
};

}  // namespace offsim::policies
