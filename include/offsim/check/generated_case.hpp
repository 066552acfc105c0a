// One case the property suite generates: a real pipeline (its models' manifests), a decode (and, for
// edit pipelines, an encode) whose working memory is a published measurement, a device, an allocator
// config, a number of calls and an optional fragmented start state. It becomes an ordinary Scenario, so
// every counterexample is a scenario JSON that `offsim eval` runs as is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "offsim/policies/published_measurements.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::check {

/// A diffusion pipeline built from real weight manifests.
struct PipelineTemplate {
  std::string name;          // "qwen-image-edit-2511-q8"
  std::string text_encoder;  // manifest paths, relative to the repository root
  std::string transformer;
  std::string vae;
  policies::VaeFamily vae_family = policies::VaeFamily::qwen_image;
  bool encodes_reference = false;  // edit pipelines encode a reference image
  std::string lightx2v_model_cls;  // "qwen_image", "flux2_klein"
  std::vector<int> denoise_steps;  // step counts the pipeline is run with
  std::string text_encoder_2;      // a second text encoder run in the same stage (SDXL), or empty
  std::string vae_dtype = "bf16";  // the dtype the VAE runs in (a point measured in fp32 runs fp32)
  /// Drawn only when a scope names it: pipelines added for one corpus entry, so that the draws of every
  /// search that does not name them (the gate's fixed seeds, the other entries) stay as they were.
  bool opt_in = false;
};

/// The pipelines the generator draws from.
const std::vector<PipelineTemplate>& pipeline_templates();

/// An allocation made before the first call; `keep` = still live when the pipeline runs.
struct PriorAllocation {
  std::uint64_t bytes = 0;
  bool keep = false;
};

/// The first `events` events of a recorded stage trace (traces/cpu), run before the first call: the
/// allocator state a real stage leaves behind, not uniform noise.
struct PriorStage {
  std::shared_ptr<const sim::Trace> trace;
  std::string label;        // the trace's path, relative to the repository root
  std::size_t events = 0;   // replay events [0, events)
  bool keep_live = false;   // blocks live at the cut stay live; otherwise they are freed (cached segments stay)
};

struct GeneratedCase {
  std::size_t pipeline = 0;        // index into pipeline_templates()
  policies::PublishedPoint decode; // defines backend, resolution and the decode's T
  std::optional<policies::PublishedPoint> encode;  // same backend and resolution, when published
  std::uint64_t capacity = 0;      // device total as the driver reports it
  std::uint64_t context = 0;
  std::uint64_t other_processes = 0;
  int calls = 1;
  int denoise_steps = 4;
  std::string alloc_conf;
  std::string torch = "2.9";
  std::string lightx2v_granularity = "model";
  // enable_group_offload has no default grouping (block_level needs num_blocks_per_group), so the case
  // states one. Shrinks towards block_level, one block per group, no stream.
  bool group_offload_leaf_level = false;
  int group_offload_blocks_per_group = 1;
  std::optional<PriorStage> prior_stage;  // runs before `prior`
  std::vector<PriorAllocation> prior;
};

std::ostream& operator<<(std::ostream& out, const GeneratedCase& c);  // RapidCheck's counterexample line

/// The case as a scenario (manifests resolved against `root`, working memory inline).
policies::Scenario to_scenario(const GeneratedCase& c, const std::filesystem::path& root);

}  // namespace offsim::check
