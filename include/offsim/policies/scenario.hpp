// A scenario: a pipeline (stages that load models, run a working-memory trace and ask an estimator), on
// a device as its driver reports it, with an allocator backend and config, called one or more times.
// JSON format offsim-scenario/1, documented in docs/scenario_format.md; every field is validated with an
// error that names it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/estimator.hpp"
#include "offsim/policies/json_document.hpp"
#include "offsim/policies/model_manifest.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::policies {

enum class StageKind { kTextEncode, kDenoise, kVaeDecode, kVaeEncode, kOther };
std::string_view to_string(StageKind kind);

/// The activations a stage allocates while it runs, with where the numbers come from.
struct WorkingMemory {
  std::string source;  // file it was read from, or "inline"
  std::shared_ptr<const sim::Trace> trace;
  sim::ProvenanceKind provenance() const { return trace->metadata.provenance.kind; }
  /// "published: InvokeAI PR #9305 ..." — shown next to every verdict that uses it.
  std::string label() const;
};

struct Stage {
  std::string name;
  StageKind kind = StageKind::kOther;
  std::vector<std::string> models;  // model ids the stage runs (and needs on the device)
  int steps = 1;                    // denoise steps: the working memory runs once per step
  std::optional<Workload> workload;  // what estimators are asked about
  std::optional<std::string> estimator;  // force this estimator id instead of the policy's call site
  std::optional<WorkingMemory> working_memory;  // none: the stage allocates nothing beyond weights
  /// Memory the process takes outside PyTorch's allocator the first time the stage runs, and keeps
  /// (kernel modules loaded on first use, cuDNN/cuBLAS handles and workspaces): mem_get_info's free is that
  /// much smaller from then on, and a decision made before the first run did not see it.
  struct OutsideAllocator {
    std::string label;  // "cuDNN handle and workspace"
    std::uint64_t bytes = 0;
  };
  std::optional<OutsideAllocator> first_run_outside_allocator;
};

struct ScenarioModel {
  std::string id;  // "transformer"
  std::string manifest_path;
  std::shared_ptr<const ModelManifest> manifest;
};

/// The policy and property a scenario breaks, when it is a counterexample written by `offsim check` or a
/// finding (scenarios/findings/): `offsim check --replay FILE` reads them, so that neither is retyped.
struct ScenarioFinding {
  std::string policy;                 // the policy id that fails
  std::vector<std::string> also;      // other policy ids that fail the same way
  std::string property;               // "P1".."P5"
  std::string aspect;                 // only this kind of violation counts ("" = any)
  std::optional<std::uint64_t> seed;  // the search that found it (counterexamples)
};

/// What one run may hold, checked when a scenario is read: a run keeps a record per stage step and a
/// timeline point per allocator call, so a scenario beyond these is refused up front instead of ending in
/// bad_alloc minutes later. Real pipelines run a few calls of at most ~100 denoise steps (the bundled
/// scenarios: at most 44 stage steps and a few dozen working-memory events per run).
inline constexpr int kMaxCalls = 10000;
inline constexpr int kMaxSteps = 10000;
inline constexpr std::uint64_t kMaxStageRuns = 10000;     // calls x the sum of the stages' steps
inline constexpr std::uint64_t kMaxRunEvents = 5000000;   // calls x steps x working-memory trace events

struct Scenario {
  std::string name;
  std::string description;
  std::string source;  // file it was read from
  std::vector<std::string> facts;  // provenance of the scenario's numbers, shown in reports

  sim::DeviceSpec device;
  std::string alloc_conf;
  const sim::VersionProfile* torch = &sim::VersionProfile::newest();

  std::vector<ScenarioModel> models;
  std::vector<std::string> initially_resident;  // model ids on the device when the first call starts
  /// Allocations the process made before the first call (other tensors, earlier work): run before the
  /// models load; what it does not free stays live for the whole run (a fragmented start state).
  std::optional<WorkingMemory> prior_history;
  int calls = 1;
  double pcie_bytes_per_second = 25e9;
  std::vector<Stage> stages;
  /// Settings of each policy family for this pipeline, e.g. {"lightx2v": {"cpu_offload": true,
  /// "offload_granularity": "model"}, "invokeai": {"device_working_mem_gb": 3}}.
  nlohmann::json policy_settings = nlohmann::json::object();
  std::optional<ScenarioFinding> finding;  // "finding": what the scenario is a counterexample of

  const ScenarioModel& model(const std::string& id) const;

  /// Reads a scenario; relative paths (manifests, traces) resolve against `root` (the repository root
  /// by default: scenarios are run from a checkout). Throws ParseError naming the file and the field.
  static Scenario load(const std::filesystem::path& path, const std::filesystem::path& root);
  static Scenario from_json(const nlohmann::json& doc, const std::string& source, const std::filesystem::path& root);
  static Scenario from_document(const JsonDocument& doc, const std::filesystem::path& root);
  /// The scenario as JSON that load() reads back (inline working memory included): what properties print
  /// as counterexamples.
  nlohmann::json to_json() const;
};

/// Reads a stage's working-memory trace: offsim's own format, a snapshot pickle or JSON, or the inline
/// form {"provenance": {...}, "ops": [["alloc", bytes], ["free", index], ...]} (docs/scenario_format.md).
std::shared_ptr<const sim::Trace> load_working_memory_file(const std::filesystem::path& path);
/// Builds a trace from the inline form (a whole working-memory file). Throws ParseError naming the file,
/// line, column and entry. A stage must free everything it allocates; a prior history (`allow_live`) may
/// leave allocations live.
std::shared_ptr<const sim::Trace> working_memory_from_document(const JsonDocument& doc, bool allow_live = false);
nlohmann::json working_memory_to_json(const sim::Trace& trace);

}  // namespace offsim::policies
