// A working-memory estimator as a value: an id pinned to an upstream commit, where it came from, the domain
// it claims to cover, and the function. Scenarios name estimators by id; the registry holds every
// transcribed version (InvokeAI's and ComfyUI's, including the pre-fix call sites that pass none).
//
// Properties (DESIGN.md section 2) are judged against the domain: P2 (E >= T_cold) and P5 (E <= k T_cold)
// only inside `covers()`; a workload the estimator does not `applies_to()` at all is a configuration error.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "offsim/policies/denoise_workload.hpp"
#include "offsim/policies/dtype.hpp"
#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies {

/// What a stage asks an estimator about: a VAE encode/decode (or PiD decode), or a denoise run.
using Workload = std::variant<VaeWorkload, DenoiseWorkload>;

struct Domain {
  // ---- What the estimator applies to at all (its call sites). Outside: ConfigError. ----
  std::vector<VaeFamily> families;        // VAE estimators
  std::vector<VaeOp> ops;                 // VAE estimators
  std::vector<DiffusionModel> models;     // denoise estimators
  // ---- What upstream claims it covers (P2/P5 are judged inside; outside it is computed, not trusted). ----
  std::vector<DType> dtypes;
  std::vector<Backend> backends;
  /// Bounds on min(height, width) and max(height, width) that upstream states (its calibration grid);
  /// nullopt where upstream states none (the estimator is then applied at every size).
  std::optional<int> min_pixel_side;
  std::optional<int> max_pixel_side;
  /// Upper bound for tiled workloads where upstream measured tiling beyond the untiled range; nullopt =
  /// max_pixel_side applies to tiled workloads too.
  std::optional<int> max_pixel_side_tiled;
  int max_frames = 1;
  bool untiled = true;
  bool tiled = false;
  /// Where the claim comes from: calibration device, grid, citation.
  std::string basis;

  bool applies_to(const Workload& workload) const;
  bool covers(const Workload& workload) const;
  /// Empty when covers(); otherwise the first reason it does not.
  std::string why_not_covered(const Workload& workload) const;
};

struct Estimator {
  /// "<project>/<call site>@<commit>", e.g. "invokeai/qwen-image@a6724695".
  std::string id;
  /// One line: which version this is, e.g. "PR #9305 as merged: decode 5500 ROCm / 2900 CUDA, ...".
  std::string label;
  /// "repo:path@commit" of the source transcribed.
  std::string upstream;
  Domain domain;
  /// False for call sites that pass no estimate (the policy then uses its default working memory).
  bool passes_estimate = true;
  /// Bytes the call site hands the policy; nullopt = passes none. Throws ConfigError for an invalid
  /// workload or one the domain does not apply to.
  std::function<std::optional<std::uint64_t>(const Workload&)> estimate;
};

/// Every registered estimator, InvokeAI first, then ComfyUI; ids are unique.
std::span<const Estimator> all_estimators();
/// Throws ConfigError listing the known ids.
const Estimator& find_estimator(std::string_view id);
std::string describe(const Workload& workload);

}  // namespace offsim::policies
