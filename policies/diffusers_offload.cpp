// Transcribed from huggingface/diffusers @58eb52c0803ea9af3abec60841c2a093bdf1f951
// (src/diffusers/pipelines/pipeline_utils.py: enable_model_cpu_offload, maybe_free_model_hooks,
// enable_sequential_cpu_offload, enable_group_offload; src/diffusers/hooks/group_offloading.py: ModuleGroup,
// GroupOffloadingHook, LazyPrefetchGroupOffloadingHook, _apply_group_offloading_block_level / _leaf_level)
// and huggingface/accelerate src/accelerate/hooks.py (CpuOffload.pre_forward at 71e81bab, 2106e87d, 12a5befd,
// c0a3aefe; AlignDevicesHook) and big_modeling.py (cpu_offload_with_hook, cpu_offload). Read from fetched git
// snapshots, not copied.
//
// Where shared/specs/offload_policies.md section 5 and the source disagree, the source is followed:
//   * the hook-order versions are pinned: load-then-offload in accelerate v0.17-v0.18, offload-then-load
//     from v0.19 (#1315), clear_device_cache() from v0.34 (#2994), the on-device checks from v1.10 (#3695);
//     from v0.34 to v1.9 the cache is emptied on EVERY forward of a chained model (each denoise step), not
//     only when something was offloaded;
//   * maybe_free_model_hooks re-runs enable_model_cpu_offload, whose pipe.to("cpu") also moves the
//     components in _exclude_from_cpu_offload off the device before putting them back (a round trip per call);
//   * with use_stream, the unmatched (top-level) group is built with stream=None: it is onloaded
//     synchronously and offloaded with module.to(cpu), a real device-to-host copy, while the block groups are
//     offloaded by pointer swaps to their pinned CPU copies.
#include "offsim/policies/diffusers_offload.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <sstream>

#include "offsim/policies/manifest_modules.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

constexpr char kPipelineUtils[] =
    "huggingface/diffusers:src/diffusers/pipelines/pipeline_utils.py@58eb52c0803ea9af3abec60841c2a093bdf1f951";

const std::array<DiffusersProfile, 3>& profiles() {
  static const std::array<DiffusersProfile, 3> all = {
      DiffusersProfile{"diffusers-model-offload@58eb52c0",
                       "enable_model_cpu_offload: accelerate CpuOffload hooks along model_cpu_offload_seq",
                       std::string(kPipelineUtils) + " (enable_model_cpu_offload) + accelerate hooks.py CpuOffload",
                       DiffusersOffloadMode::kModel},
      DiffusersProfile{"diffusers-sequential-offload@58eb52c0",
                       "enable_sequential_cpu_offload: every module's weights on the device only during its forward",
                       std::string(kPipelineUtils) + " (enable_sequential_cpu_offload) + accelerate cpu_offload",
                       DiffusersOffloadMode::kSequential},
      DiffusersProfile{"diffusers-group-offload@58eb52c0",
                       "enable_group_offload: block_level / leaf_level groups, optional stream prefetch",
                       "huggingface/diffusers:src/diffusers/hooks/group_offloading.py@"
                       "58eb52c0803ea9af3abec60841c2a093bdf1f951 (apply_group_offloading)",
                       DiffusersOffloadMode::kGroup},
  };
  return all;
}

// accelerate's CpuOffload.pre_forward, by the version that introduced each behaviour.
enum class HookOrder {
  kLoadThenOffload,        // [0.17, 0.19): module.to(device); prev.offload()
  kOffloadThenLoad,        // [0.19, 0.34): prev.offload(); module.to(device)
  kOffloadClearLoad,       // [0.34, 1.10): prev.offload(); clear_device_cache(); module.to(device)
  kOffloadClearLoadGuarded,  // >= 1.10: the same, each step only when it moves something
};

HookOrder parse_accelerate(const std::string& version) {
  int major = 0, minor = 0;
  char dot = 0;
  std::istringstream in(version);
  if (!(in >> major >> dot >> minor) || dot != '.') {
    throw ConfigError("policy_settings.diffusers.accelerate must be a version such as \"1.10\" or \"0.18.0\", got \"" +
                      version + "\"");
  }
  const std::pair<int, int> v{major, minor};
  if (v < std::pair{0, 17}) {
    throw ConfigError("enable_model_cpu_offload requires accelerate >= 0.17.0 (pipeline_utils.py), got " + version);
  }
  if (v < std::pair{0, 19}) return HookOrder::kLoadThenOffload;
  if (v < std::pair{0, 34}) return HookOrder::kOffloadThenLoad;
  if (v < std::pair{1, 10}) return HookOrder::kOffloadClearLoad;
  return HookOrder::kOffloadClearLoadGuarded;
}

struct Settings {
  std::vector<std::string> offload_seq;   // model_cpu_offload_seq, as scenario model ids
  std::vector<std::string> exclude;       // _exclude_from_cpu_offload / exclude_modules
  HookOrder hook_order = HookOrder::kOffloadClearLoadGuarded;
  bool leaf_level = false;                // offload_type
  std::optional<int> num_blocks_per_group;
  bool use_stream = false;
  bool record_stream = false;
};

Settings read_settings(const nlohmann::json& j, const RunContext& context, DiffusersOffloadMode mode) {
  Settings s;
  try {
    // The pipeline class attribute; without it, the order of the scenario's models (stated in the docs).
    s.offload_seq = j.value("model_cpu_offload_seq", context.model_ids());
    s.exclude = j.value(mode == DiffusersOffloadMode::kGroup ? "exclude_modules" : "exclude_from_cpu_offload",
                        std::vector<std::string>{});
    s.hook_order = parse_accelerate(j.value("accelerate", std::string("1.10")));
    const std::string type = j.value("offload_type", std::string("block_level"));
    if (type != "block_level" && type != "leaf_level") {
      throw ConfigError("policy_settings.diffusers.offload_type must be block_level or leaf_level, got \"" + type +
                        "\"");
    }
    s.leaf_level = type == "leaf_level";
    if (j.contains("num_blocks_per_group")) s.num_blocks_per_group = j["num_blocks_per_group"].get<int>();
    s.use_stream = j.value("use_stream", false);
    s.record_stream = j.value("record_stream", false);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("policy_settings.diffusers: ") + e.what());
  }
  for (const auto* list : {&s.offload_seq, &s.exclude}) {
    for (const std::string& id : *list) (void)context.model(id);  // names a scenario model
  }
  if (mode == DiffusersOffloadMode::kGroup) {
    // apply_group_offloading's own checks.
    if (s.record_stream && !s.use_stream) throw ConfigError("record_stream cannot be True when use_stream=False");
    if (!s.leaf_level && !s.num_blocks_per_group) {
      throw ConfigError("num_blocks_per_group must be provided when using offload_type='block_level' "
                        "(policy_settings.diffusers.num_blocks_per_group)");
    }
    if (s.num_blocks_per_group && *s.num_blocks_per_group < 1) {
      throw ConfigError("policy_settings.diffusers.num_blocks_per_group must be >= 1");
    }
    // "Using streams is only supported for num_blocks_per_group=1 ... Setting it to 1."
    if (s.use_stream && !s.leaf_level) s.num_blocks_per_group = 1;
  }
  return s;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The tensors a stage's forward touches. A VAE decode runs post_quant_conv and the decoder, an encode the
// encoder and quant_conv (AutoencoderKL._decode / _encode); everything else runs whole.
std::vector<bool> used_tensors(const ModelManifest& manifest, StageKind kind) {
  std::vector<bool> used(manifest.tensors.size(), true);
  if (manifest.component != "vae" || (kind != StageKind::kVaeDecode && kind != StageKind::kVaeEncode)) return used;
  for (std::size_t i = 0; i < used.size(); ++i) {
    const std::string& n = manifest.tensors[i].name;
    used[i] = kind == StageKind::kVaeDecode ? starts_with(n, "decoder.") || starts_with(n, "post_quant_conv.")
                                            : starts_with(n, "encoder.") || starts_with(n, "quant_conv.");
  }
  return used;
}

// What moves during one forward of one model: groups onloaded and offloaded in forward order, each with
// the groups that stay on the device while it runs, and tensors held for the whole forward.
struct Plan {
  std::vector<std::vector<std::size_t>> groups;  // tensor indices
  std::vector<std::uint64_t> bytes;
  std::vector<std::vector<std::size_t>> enclosing;  // group indices held while the group runs
  std::vector<std::size_t> persistent;              // tensors held from the start to the end of the forward
};

// One group per module with direct tensors, each enclosed by its ancestors' groups (their forwards are
// still running): accelerate's AlignDevicesHook per module, diffusers' leaf-level groups (a parent's orphan
// parameters form a group onloaded for the parent's forward).
Plan module_plan(const ModelManifest& manifest, const std::vector<bool>& used) {
  Plan plan;
  for (ManifestModule& m : manifest_modules(manifest, used)) {
    plan.groups.push_back(std::move(m.tensors));
    plan.bytes.push_back(m.bytes);
    plan.enclosing.push_back(std::move(m.ancestors));
  }
  return plan;
}

// _apply_group_offloading_block_level: every direct child that is a ModuleList contributes groups of
// num_blocks_per_group consecutive blocks; all other tensors form the unmatched group of the top module.
Plan block_plan(const ModelManifest& manifest, const std::vector<bool>& used, StageKind kind, int per_group) {
  Plan plan;
  auto add = [&](std::vector<std::size_t> tensors) {
    std::uint64_t bytes = 0;
    for (std::size_t t : tensors) bytes += manifest.tensors[t].bytes;
    if (tensors.empty()) return;
    plan.groups.push_back(std::move(tensors));
    plan.bytes.push_back(bytes);
    plan.enclosing.emplace_back();
  };
  if (manifest.component == "vae") {
    // _group_offload_block_modules = ["quant_conv", "post_quant_conv", "encoder", "decoder"]: each is its
    // own block-level tree, onloaded for its own forward; offsim holds each whole (no block tags inside).
    const std::vector<const char*> order = kind == StageKind::kVaeEncode
                                               ? std::vector<const char*>{"encoder.", "quant_conv."}
                                               : std::vector<const char*>{"post_quant_conv.", "decoder."};
    for (const char* prefix : order) {
      std::vector<std::size_t> tensors;
      for (std::size_t i = 0; i < manifest.tensors.size(); ++i) {
        if (used[i] && starts_with(manifest.tensors[i].name, prefix)) tensors.push_back(i);
      }
      add(std::move(tensors));
    }
    for (std::size_t i = 0; i < manifest.tensors.size(); ++i) {
      bool grouped = false;
      for (const char* prefix : order) grouped = grouped || starts_with(manifest.tensors[i].name, prefix);
      if (used[i] && !grouped) plan.persistent.push_back(i);
    }
    return plan;
  }
  // Groups in the order of their first tensor; a ModuleList nested deeper (prefix with a '.') is not a
  // direct child and stays in the unmatched group.
  std::map<std::pair<int, int>, std::vector<std::size_t>> chunks;  // (group, first block of the chunk)
  std::vector<std::pair<int, int>> chunk_order;
  for (std::size_t i = 0; i < manifest.tensors.size(); ++i) {
    if (!used[i]) continue;
    const TensorSpec& t = manifest.tensors[i];
    const bool direct = t.group >= 0 &&
                        manifest.groups[static_cast<std::size_t>(t.group)].prefix.find('.') == std::string::npos;
    if (!direct) {
      plan.persistent.push_back(i);
      continue;
    }
    const std::pair<int, int> key{t.group, t.block / per_group};
    auto [it, inserted] = chunks.try_emplace(key);
    if (inserted) chunk_order.push_back(key);
    it->second.push_back(i);
  }
  for (const auto& key : chunk_order) add(std::move(chunks[key]));
  return plan;
}

class DiffusersOffload final : public Policy {
 public:
  explicit DiffusersOffload(const DiffusersProfile& profile) : profile_(profile) {
    info_.id = profile.id;
    info_.family = "diffusers";
    info_.label = profile.label;
    info_.upstream = profile.upstream;
  }
  const PolicyInfo& info() const override { return info_; }

  void begin_run(RunContext& context) override {
    settings_ = read_settings(context.settings("diffusers"), context, profile_.mode);
    if (profile_.mode == DiffusersOffloadMode::kModel) {
      // cpu_offload_with_hook(model, device, prev_module_hook=hook) along the sequence; models missing from
      // the pipeline are skipped (`pop(model_str, None)`), so the chain links the present ones.
      std::optional<std::string> hook;
      for (const std::string& id : settings_.offload_seq) {
        if (excluded(id)) continue;
        prev_[id] = hook;
        hook = id;
      }
      // Components outside the sequence get a hook without predecessor (offloaded only at the call's end).
      for (const std::string& id : context.model_ids()) {
        if (!excluded(id) && !prev_.count(id)) prev_[id] = std::nullopt;
      }
      enable_model_cpu_offload(context);
      return;
    }
    // enable_sequential_cpu_offload: `self.to("cpu")` and empty the cache when the pipeline is on the
    // device; enable_group_offload: each ModuleGroup's offload_() at hook initialisation (module.to(cpu), or
    // the pinned CPU copy taken with .cpu() under use_stream). Either way resident weights are copied back.
    bool moved = false;
    for (const std::string& id : context.model_ids()) {
      if (excluded(id)) continue;
      moved = context.model(id).unload_all(context.backend(), true) > 0 || moved;
    }
    if (moved && profile_.mode == DiffusersOffloadMode::kSequential) context.backend().empty_cache();
    for (const std::string& id : settings_.exclude) {
      if (!context.model(id).load_all(context.backend())) {
        throw ConfigError("diffusers: excluded model \"" + id + "\" does not fit on the device: " +
                          context.backend().last_oom().message);
      }
    }
  }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    decision.estimate_source = "none: a schedule, not a cache";
    for (const std::string& id : step.stage->models) {
      if (excluded(id)) continue;
      const std::uint64_t before = context.model(id).bytes_to_device();
      const bool ok = profile_.mode == DiffusersOffloadMode::kModel ? pre_forward(context, id, decision)
                                                                    : stream_forward(context, id, *step.stage);
      decision.weights_loaded += context.model(id).bytes_to_device() - before;
      if (!ok) {
        decision.load_oom = context.backend().last_oom();
        return decision;
      }
    }
    return decision;
  }

  void finish(RunContext& context, const StageStep& step) override {
    if (profile_.mode == DiffusersOffloadMode::kModel) return;  // a model stays until the next one runs
    // The end of the forward: post_forward offloads what was held for the peak.
    for (const std::string& id : step.stage->models) {
      auto it = held_.find(id);
      if (it == held_.end()) continue;
      ResidentModel& model = context.model(id);
      for (const auto& [tensor, copy] : it->second) model.unload(context.backend(), tensor, copy);
      held_.erase(it);
    }
  }

  void end_call(RunContext& context, int /*call*/) override {
    // maybe_free_model_hooks() at the end of __call__: re-runs enable_model_cpu_offload when model offload
    // is active; with sequential or group offloading it has no hooks to reset and does nothing.
    if (profile_.mode == DiffusersOffloadMode::kModel) enable_model_cpu_offload(context);
  }

  ResidencyClaim residency(const RunContext& context) const override {
    ResidencyClaim claim;
    for (const std::string& id : context.model_ids()) {
      if (excluded(id)) claim.resident_by_design.push_back(id);
      else claim.offloaded.push_back(id);
    }
    return claim;
  }

 private:
  bool excluded(const std::string& id) const {
    return std::find(settings_.exclude.begin(), settings_.exclude.end(), id) != settings_.exclude.end();
  }

  // enable_model_cpu_offload: `self.to("cpu")` (every component, the excluded ones too), empty the device
  // cache, then the excluded components back to the device.
  void enable_model_cpu_offload(RunContext& context) {
    for (const std::string& id : context.model_ids()) context.model(id).unload_all(context.backend(), true);
    context.backend().empty_cache();
    for (const std::string& id : settings_.exclude) {
      if (!context.model(id).load_all(context.backend())) {
        throw ConfigError("diffusers: excluded model \"" + id + "\" does not fit on the device: " +
                          context.backend().last_oom().message);
      }
    }
  }

  // UserCpuOffloadHook.offload() = CpuOffload.init_hook = module.to("cpu"): a device-to-host copy.
  void offload(RunContext& context, const std::string& id, StageDecision& decision) {
    const std::uint64_t freed = context.model(id).unload_all(context.backend(), true);
    if (freed > 0) decision.evictions.push_back({id, freed});
  }

  // CpuOffload.pre_forward of `id`'s hook.
  bool pre_forward(RunContext& context, const std::string& id, StageDecision& decision) {
    ResidentModel& model = context.model(id);
    const std::optional<std::string>& prev = prev_.at(id);
    switch (settings_.hook_order) {
      case HookOrder::kLoadThenOffload:
        if (!model.load_all(context.backend())) return false;
        if (prev) offload(context, *prev, decision);
        return true;
      case HookOrder::kOffloadThenLoad:
        if (prev) offload(context, *prev, decision);
        return model.load_all(context.backend()).has_value();
      case HookOrder::kOffloadClearLoad:
        if (prev) {
          offload(context, *prev, decision);
          context.backend().empty_cache();  // clear_device_cache()
        }
        return model.load_all(context.backend()).has_value();
      case HookOrder::kOffloadClearLoadGuarded:
        if (prev && context.model(*prev).device_bytes() > 0) {
          offload(context, *prev, decision);
          context.backend().empty_cache();
        }
        if (model.fully_resident()) return true;
        return model.load_all(context.backend()).has_value();
    }
    return false;
  }

  // The groups of `id` held at once at the forward's peak: `window` consecutive groups (current, prefetched
  // next, and for record_stream the one whose blocks are not reusable yet) with everything enclosing them.
  std::set<std::size_t> peak_groups(const Plan& plan, std::size_t window) const {
    std::set<std::size_t> best;
    std::uint64_t best_bytes = 0;
    for (std::size_t i = 0; i < plan.groups.size(); ++i) {
      std::set<std::size_t> held;
      for (std::size_t k = i; k < std::min(plan.groups.size(), i + window); ++k) {
        held.insert(k);
        held.insert(plan.enclosing[k].begin(), plan.enclosing[k].end());
      }
      std::uint64_t bytes = 0;
      for (std::size_t g : held) bytes += plan.bytes[g];
      if (best.empty() || bytes > best_bytes) {
        best = std::move(held);
        best_bytes = bytes;
      }
    }
    return best;
  }

  // One forward of `id` under sequential or group offloading.
  bool stream_forward(RunContext& context, const std::string& id, const Stage& stage) {
    ResidentModel& model = context.model(id);
    const std::vector<bool> used = used_tensors(model.manifest(), stage.kind);
    Plan plan;
    std::size_t window = 1;
    bool swap = false;  // offload is a pointer swap back to the kept CPU copy (no device-to-host copy)
    if (profile_.mode == DiffusersOffloadMode::kSequential) {
      plan = module_plan(model.manifest(), used);
      swap = true;  // AlignDevicesHook.post_forward: set_module_tensor_to_device(..., "meta")
    } else {
      plan = settings_.leaf_level ? module_plan(model.manifest(), used)
                                  : block_plan(model.manifest(), used, stage.kind, *settings_.num_blocks_per_group);
      swap = settings_.use_stream;
      // The first forward records the execution order without prefetching (LazyPrefetchGroupOffloadingHook).
      const bool prefetching = settings_.use_stream && traced_.count(id) > 0;
      if (prefetching) window = settings_.record_stream ? 3 : 2;
      if (settings_.use_stream) traced_.insert(id);
    }
    std::vector<std::pair<std::size_t, bool>>& held = held_[id];
    // The unmatched group: onloaded when the top module's forward starts, offloaded (a copy) when it ends.
    for (std::size_t t : plan.persistent) {
      if (!model.load(context.backend(), t)) return false;
      held.emplace_back(t, true);
    }
    const std::set<std::size_t> peak = peak_groups(plan, window);
    for (std::size_t g = 0; g < plan.groups.size(); ++g) {
      if (peak.count(g)) continue;
      for (std::size_t t : plan.groups[g]) {
        if (!model.load(context.backend(), t)) return false;
      }
      for (std::size_t t : plan.groups[g]) model.unload(context.backend(), t, !swap);
    }
    for (std::size_t g : peak) {
      for (std::size_t t : plan.groups[g]) {
        if (!model.load(context.backend(), t)) return false;
        held.emplace_back(t, !swap);
      }
    }
    return true;
  }

  DiffusersProfile profile_;
  PolicyInfo info_;
  Settings settings_;
  std::map<std::string, std::optional<std::string>> prev_;  // model offload: each hook's prev_module_hook
  std::set<std::string> traced_;                           // group offload: execution order recorded
  std::map<std::string, std::vector<std::pair<std::size_t, bool>>> held_;  // tensor, copy on offload
};

}  // namespace

std::span<const DiffusersProfile> diffusers_profiles() { return profiles(); }

std::unique_ptr<Policy> make_diffusers_offload(const DiffusersProfile& profile) {
  return std::make_unique<DiffusersOffload>(profile);
}

}  // namespace offsim::policies
