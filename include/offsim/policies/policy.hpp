// An offload policy: the model cache or schedule that decides which weights are on the device before
// each stage runs. Every policy reports, per decision, what DESIGN.md section 2 needs to judge it: the
// working-memory estimate E it used, its own free-memory figure F_P, the weights it loaded W_load and
// why it stopped evicting.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/policies/resident_model.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::policies {

enum class StopReason {
  kSatisfied,      // the policy's own condition (enough free memory) held when it stopped evicting
  kExhausted,      // everything left was locked or already off the device; it proceeded anyway
  kNotApplicable,  // schedule-based offloaders decide no free-memory question
};
std::string_view to_string(StopReason reason);

struct Eviction {
  std::string model;
  std::uint64_t bytes = 0;  // weights moved off the device
};

/// One free-memory decision inside a stage: what P1 judges. A policy that loads a stage's models in one
/// decision (ComfyUI's load_models_gpu) has one; InvokeAI locks each model on its own
/// (model_on_device per model), so a two-model stage (SDXL's two text encoders) holds two, each with the
/// F_P it computed and only the weights that decision loaded.
struct LoadDecision {
  std::string model;
  std::int64_t free_memory = 0;  // F_P of this decision
  std::uint64_t estimate = 0;    // E it reserved
  std::uint64_t weights_loaded = 0;  // W_load of this decision alone
  StopReason stop = StopReason::kNotApplicable;
  std::size_t evictions = 0;  // how many of the stage's evictions (in order) this decision made
};

/// What the stage's caller does when the stage's working memory runs out of memory and the program goes on:
/// ComfyUI's VAE.decode / VAE.encode catch the OOM and run the stage again in tiles. The runner counts the
/// first OOM as handled and replays `working_memory` instead; an OOM there is unhandled.
struct OomFallback {
  std::string label;                                 // what runs instead, citing upstream
  std::shared_ptr<const sim::Trace> working_memory;  // the retry's activations (its provenance says how derived)
};

/// One decision of a policy before a stage step.
struct StageDecision {
  /// E: the working memory the policy reserved for the stage (its default when the call site passed
  /// none); nullopt for policies that reserve nothing.
  std::optional<std::uint64_t> estimate;
  std::string estimate_source;  // estimator id, or "default 3 GiB (no estimate passed)"
  /// F_P: free memory as the policy computes it, before subtracting E, when it stopped evicting.
  std::optional<std::int64_t> free_memory;
  std::uint64_t weights_loaded = 0;  // W_load
  StopReason stop = StopReason::kNotApplicable;
  /// Per-model decisions when the policy decides model by model; empty when the stage is one decision
  /// (then estimate, free_memory, weights_loaded and stop above are that decision).
  std::vector<LoadDecision> loads;
  std::vector<Eviction> evictions;
  /// A weight load failed inside the decision (e.g. InvokeAI's full load that "tries anyway").
  std::optional<OomReport> load_oom;
  /// Weights of a partially loaded model are copied to the device layer by layer while the stage runs
  /// (InvokeAI's autocast layers, ComfyUI's lowvram cast): the largest such copy is held on top of the
  /// stage's working memory.
  std::uint64_t streamed_weights = 0;
  /// Host-to-device bytes of this step that never become resident: blocks copied into preallocated
  /// buffers (LightX2V block offload), per-forward copies of non-resident layers (InvokeAI partial load).
  /// Counted as traffic only; the memory they occupy is the buffers or streamed_weights.
  std::uint64_t streamed_to_device = 0;
  /// Set when the call site survives an OOM of the working memory by running something smaller.
  std::optional<OomFallback> oom_fallback;
};

/// The free-memory decisions of a stage, as P1 judges them: `loads` when the policy decided model by
/// model, else the stage-level decision (model left empty) when it has an F_P and an E, else none.
std::vector<LoadDecision> free_memory_decisions(const StageDecision& d);

/// What a policy says about residency after a request (P4).
struct ResidencyClaim {
  std::vector<std::string> offloaded;         // models it reports as off the device
  std::vector<std::string> resident_by_design;  // kept on purpose (cache hits, LightX2V block buffers)
};

struct PolicyInfo {
  std::string id;        // "invokeai@a6724695"
  std::string family;    // "invokeai": the key of scenario.policy_settings it reads
  std::string label;     // one line
  std::string upstream;  // "repo:path@commit" it transcribes
  /// How F_P is computed, e.g. "driver_free (reserved-but-unallocated counts as used)"; empty for
  /// schedule-based offloaders, which have none (P1 does not apply).
  std::string free_memory_formula;
  /// Documented slack P1 allows: W_load may exceed F_P - E by this much (InvokeAI's +1 MB).
  std::uint64_t p1_slack = 0;
  /// The policy asks an estimator (P2/P5 apply to what it uses).
  bool uses_estimates = false;
};

/// What a policy may touch while deciding: the device and the models' residency.
class RunContext {
 public:
  RunContext(const Scenario& scenario, MemoryBackend& backend);

  const Scenario& scenario() const { return *scenario_; }
  MemoryBackend& backend() { return *backend_; }
  ResidentModel& model(const std::string& id);
  const ResidentModel& model(const std::string& id) const;
  std::vector<std::string> model_ids() const;
  /// The policy family's settings from the scenario (an empty object when absent).
  const nlohmann::json& settings(const std::string& family) const;

  /// Allocations the policy itself holds (LightX2V's block buffers): counted as resident by design.
  std::optional<std::uint64_t> allocate_buffer(const std::string& label, std::uint64_t bytes);
  void free_buffers(const std::string& label);
  std::uint64_t buffer_bytes() const;

 private:
  const Scenario* scenario_;
  MemoryBackend* backend_;
  std::map<std::string, ResidentModel> models_;
  std::multimap<std::string, std::uint64_t> buffers_;  // label -> address
  std::map<std::uint64_t, std::uint64_t> buffer_sizes_;
};

/// A stage step as the runner presents it to the policy.
struct StageStep {
  const Stage* stage = nullptr;
  int call = 0;  // 0-based
  int step = 0;  // 0-based denoise step
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual const PolicyInfo& info() const = 0;
  /// Start of the run: models that are already on the device (scenario.initially_resident) are loaded
  /// by the runner before this is called.
  virtual void begin_run(RunContext& /*context*/) {}
  /// Make room and put what the stage needs on the device.
  virtual StageDecision prepare(RunContext& context, const StageStep& step) = 0;
  /// The stage step has run (successfully or not).
  virtual void finish(RunContext& context, const StageStep& step) = 0;
  virtual void end_call(RunContext& /*context*/, int /*call*/) {}
  virtual ResidencyClaim residency(const RunContext& context) const = 0;
};

}  // namespace offsim::policies
