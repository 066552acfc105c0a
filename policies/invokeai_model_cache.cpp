// Transcribed from invoke-ai/InvokeAI invokeai/backend/model_manager/load/model_cache/model_cache.py
// (@00f5ba9f for the smart_partial_loading branch; the legacy branch is the same code as @8e71a8a5, the
// snapshot shared/specs/offload_policies.md section 1 describes) and cached_model_with_partial_load.py.
// Read, not copied; each function below names the upstream function it reproduces.
#include "offsim/policies/invokeai_model_cache.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

constexpr std::int64_t kGB = 1LL << 30;  // InvokeAI: GB = 2**30
constexpr std::int64_t kMB = 1LL << 20;
constexpr double kMinDeviceWorkingMemGb = 1.5;        // MIN_DEVICE_WORKING_MEM_GB (smart)
constexpr double kPartialLoadHeadroomMultiplier = 1.5;  // PARTIAL_LOAD_HEADROOM_MULTIPLIER (smart)

// The decode call sites of early 2025, before and with PR #7674 (b9f9d1c152): SD1.5/SDXL, FLUX.1 and SD3 were
// the only VAE families; the encode call sites passed nothing (see InvokeAIProfile::encode_call_sites_estimate).
std::map<VaeFamily, std::string> decode_estimators_2025(const std::string& commit) {
  return {{VaeFamily::sd15, "invokeai/sd15-sdxl@" + commit},
          {VaeFamily::sdxl, "invokeai/sd15-sdxl@" + commit},
          {VaeFamily::flux1, "invokeai/flux@" + commit},
          {VaeFamily::sd3, "invokeai/sd3@" + commit}};
}

// The estimator each VAE call site passes. FLUX.2 is unmapped before PR #9519: its nodes call
// model_on_device() with no working_mem_bytes, so the cache reserves its default (bug B3).
std::map<VaeFamily, std::string> estimators_at(const char* qwen, const char* flux2 = nullptr) {
  std::map<VaeFamily, std::string> out = {
      {VaeFamily::sd15, "invokeai/sd15-sdxl@8e71a8a5"}, {VaeFamily::sdxl, "invokeai/sd15-sdxl@8e71a8a5"},
      {VaeFamily::flux1, "invokeai/flux@8e71a8a5"},     {VaeFamily::sd3, "invokeai/sd3@8e71a8a5"},
      {VaeFamily::cogview4, "invokeai/cogview4@8e71a8a5"}, {VaeFamily::z_image, "invokeai/z-image@d34655fd"},
      {VaeFamily::anima, "invokeai/anima@be8ebeb3"},    {VaeFamily::wan21, "invokeai/wan@fd0e38bc"},
      {VaeFamily::wan22, "invokeai/wan@fd0e38bc"},      {VaeFamily::qwen_image, qwen}};
  if (flux2 != nullptr) out.emplace(VaeFamily::flux2, flux2);
  return out;
}

const std::array<InvokeAIProfile, 7>& profiles() {
  static const std::array<InvokeAIProfile, 7> all = {
      InvokeAIProfile{"invokeai@fda7c42b",
                      "ModelCache before PR #9305: Qwen-Image l2i/i2l pass no working memory (3 GB default)",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@fda7c42b",
                      false, estimators_at("invokeai/qwen-image@fda7c42b")},
      InvokeAIProfile{"invokeai@a6724695",
                      "ModelCache with PR #9305 as merged: Qwen-Image decode 5500 ROCm / 2900 CUDA, encode 6300 / 1600",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@a6724695",
                      false, estimators_at("invokeai/qwen-image@a6724695")},
      InvokeAIProfile{"invokeai@8e71a8a5",
                      "ModelCache at the spec snapshot (PR #9427: tiled Qwen-Image estimate)",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@8e71a8a5",
                      false, estimators_at("invokeai/qwen-image@8e71a8a5")},
      InvokeAIProfile{"invokeai-smart@00f5ba9f",
                      "ModelCache with smart_partial_loading: estimates honoured down to 1.5 GB, 1.5x partial headroom",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@00f5ba9f",
                      true, estimators_at("invokeai/qwen-image@8e71a8a5")},
      // PR #9519 on top of the snapshot: the FLUX.2 decode / encode / reference-image encode call sites pass
      // estimate_vae_working_memory_flux2 (read at e724d69e; #9519's squash commit is in no source available
      // here). Only the VAE call sites: the FLUX.2 denoise estimate #9519 also added (linear in the attended
      // tokens, reference-image tokens included) has no workload in offsim, whose FLUX.2 denoise stages carry
      // no working memory.
      InvokeAIProfile{"invokeai@8e71a8a5+flux2-e724d69e",
                      "ModelCache at the snapshot with PR #9519's FLUX.2 VAE estimate (MIOpen 3600 / 2750, cuDNN 2200 "
                      "/ 1100, max with the mid-block score matrix)",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@8e71a8a5 + "
                      "invokeai/backend/util/vae_working_memory.py@e724d69eea0a37c49b595a8d232bd60c3e0bf4e3",
                      false, estimators_at("invokeai/qwen-image@8e71a8a5", "invokeai/flux2@e724d69e")},
      // Issue #7587 / PR #7674 (bug B5): the cache of early 2025 with the decode estimates before and after
      // b9f9d1c152. The VRAM decisions this file transcribes (_get_vram_available with its
      // `max(working_mem_bytes or default, default)`, _offload_unlocked_models smallest first then
      // empty_cache(), _load_locked_model with the +1 MB partial load) read the same at 7567ee2adf, b9f9d1c152
      // and v5.6.0 as at 8e71a8a5; what differs is the RAM-tier heuristics (not modelled) and the config
      // default enable_partial_loading = False.
      InvokeAIProfile{"invokeai@7567ee2a",
                      "ModelCache before PR #7674 (= v5.6.0): VAE decode estimates fitted to allocated memory (SD "
                      "960, FLUX 1090, SD3 1230, x 1.2); encodes pass none; partial loading off by default",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@"
                      "7567ee2adfa55ca817d254f1de5ea584d860a2ee",
                      false, decode_estimators_2025("7567ee2a"), false, false},
      InvokeAIProfile{"invokeai@b9f9d1c1",
                      "ModelCache with PR #7674: VAE decode estimates fitted to reserved memory (2200); encodes pass "
                      "none; partial loading off by default",
                      "invoke-ai/InvokeAI:invokeai/backend/model_manager/load/model_cache/model_cache.py@"
                      "b9f9d1c1521cbe291895a604605d2f65b99bfe07",
                      false, decode_estimators_2025("b9f9d1c1"), false, false},
  };
  return all;
}

struct Settings {
  double device_working_mem_gb = 3.0;  // config_default.py
  bool enable_partial_loading = true;  // default since PR #9092
  bool keep_ram_copy = true;
  bool device_working_mem_raised = false;
  std::optional<double> max_vram_cache_gb;
  std::vector<std::string> full_load_only;  // models wrapped as CachedModelOnlyFullLoad
};

Settings read_settings(const nlohmann::json& j, bool enable_partial_loading_default) {
  Settings s;
  s.enable_partial_loading = enable_partial_loading_default;
  try {
    s.device_working_mem_gb = j.value("device_working_mem_gb", s.device_working_mem_gb);
    s.enable_partial_loading = j.value("enable_partial_loading", s.enable_partial_loading);
    s.keep_ram_copy = j.value("keep_ram_copy_of_weights", s.keep_ram_copy);
    s.device_working_mem_raised = j.value("device_working_mem_raised", s.device_working_mem_raised);
    if (j.contains("max_vram_cache_gb") && !j["max_vram_cache_gb"].is_null()) {
      s.max_vram_cache_gb = j["max_vram_cache_gb"].get<double>();
    }
    s.full_load_only = j.value("full_load_only", std::vector<std::string>{});
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("policy_settings.invokeai: ") + e.what());
  }
  return s;
}

class InvokeAIModelCache final : public Policy {
 public:
  explicit InvokeAIModelCache(const InvokeAIProfile& profile) : profile_(profile) {
    info_.id = profile.id;
    info_.family = "invokeai";
    info_.label = profile.label;
    info_.upstream = profile.upstream;
    info_.free_memory_formula = "driver_free (mem_get_info free + memory_allocated - memory_allocated): "
                                "reserved-but-unallocated counts as used";
    info_.p1_slack = static_cast<std::uint64_t>(kMB);  // _move_model_to_vram(vram_available + MB)
    info_.uses_estimates = true;
  }

  const PolicyInfo& info() const override { return info_; }

  void begin_run(RunContext& context) override {
    settings_ = read_settings(context.settings("invokeai"), profile_.enable_partial_loading_default);
    // The RAM tier holds every model (its LRU is not modelled: host RAM is assumed sufficient); the
    // order of insertion breaks ties in the smallest-first sort, as Python's stable sort does.
    for (const std::string& id : context.model_ids()) {
      entries_.push_back({id, 0, std::find(settings_.full_load_only.begin(), settings_.full_load_only.end(), id) !=
                                         settings_.full_load_only.end() ||
                                     !settings_.enable_partial_loading});
    }
  }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    const std::optional<std::uint64_t> estimate = call_site_estimate(*step.stage, decision.estimate_source);
    // model_on_device(working_mem_bytes) locks every model the invocation uses, in order.
    for (const std::string& id : step.stage->models) {
      Entry& entry = find(id);
      ++entry.locks;  // ModelCache.lock: cache_entry.lock() before _load_locked_model
      if (!load_locked_model(context, entry, estimate, decision)) break;
    }
    return decision;
  }

  void finish(RunContext& /*context*/, const StageStep& step) override {
    // unlock() only decrements the lock count: lazy offload keeps the weights on the device.
    for (const std::string& id : step.stage->models) --find(id).locks;
  }

  ResidencyClaim residency(const RunContext& context) const override {
    // The cache reports what it believes is on the device; nothing is claimed offloaded unless the
    // cache moved it (partial unload leaves the rest resident, by design: lazy offload).
    ResidencyClaim claim;
    for (const Entry& e : entries_) {
      if (context.model(e.id).device_bytes() > 0) claim.resident_by_design.push_back(e.id);
      else claim.offloaded.push_back(e.id);
    }
    return claim;
  }

 private:
  struct Entry {
    std::string id;
    int locks = 0;
    bool full_load_only = false;
  };

  Entry& find(const std::string& id) {
    for (Entry& e : entries_) {
      if (e.id == id) return e;
    }
    throw ConfigError("invokeai: model \"" + id + "\" is not in the cache");
  }

  // The working_mem_bytes the invocation passes: its estimator's value, or none.
  std::optional<std::uint64_t> call_site_estimate(const Stage& stage, std::string& source) const {
    std::optional<std::string> id = stage.estimator;
    if (!id && stage.workload) {
      if (const auto* vae = std::get_if<VaeWorkload>(&*stage.workload)) {
        auto it = profile_.vae_estimators.find(vae->family);
        if (it != profile_.vae_estimators.end()) id = it->second;
      }
    }
    if (id && stage.workload && !profile_.encode_call_sites_estimate) {
      const auto* vae = std::get_if<VaeWorkload>(&*stage.workload);
      if (vae != nullptr && vae->op == VaeOp::encode) {
        source = "no estimate passed: the encode call sites pass none before PR #8414";
        return std::nullopt;
      }
    }
    if (id && stage.workload) {
      const Estimator& estimator = find_estimator(*id);
      const std::optional<std::uint64_t> bytes = estimator.estimate(*stage.workload);
      source = estimator.id + (bytes ? "" : " (passes no estimate)");
      return bytes;
    }
    source = "no estimate passed";
    return std::nullopt;
  }

  // _get_vram_available(working_mem_bytes), and the working memory it used.
  std::int64_t vram_available(RunContext& context, std::optional<std::int64_t> working_mem, std::int64_t* used = nullptr) const {
    const std::int64_t allocated = static_cast<std::int64_t>(context.backend().stats().allocated);
    if (settings_.max_vram_cache_gb) {
      if (used) *used = 0;
      return static_cast<std::int64_t>(*settings_.max_vram_cache_gb * static_cast<double>(kGB)) - allocated;
    }
    const auto default_bytes = static_cast<std::int64_t>(settings_.device_working_mem_gb * static_cast<double>(kGB));
    std::int64_t wm;
    if (!profile_.smart_partial_loading) {
      // Legacy: `max(working_mem_bytes or default, default)`: an estimate can only raise the reserve.
      wm = std::max(working_mem.value_or(0) != 0 ? *working_mem : default_bytes, default_bytes);
    } else if (!working_mem) {
      wm = default_bytes;
    } else {
      const std::int64_t floor = settings_.device_working_mem_raised
                                     ? default_bytes
                                     : static_cast<std::int64_t>(kMinDeviceWorkingMemGb * static_cast<double>(kGB));
      wm = std::max(*working_mem, floor);
    }
    if (used) *used = wm;
    const auto free = static_cast<std::int64_t>(context.backend().mem_get_info().free);
    const std::int64_t available_to_process = free + allocated;
    return available_to_process - wm - allocated;
  }

  std::int64_t partial_load_reserve(std::int64_t estimate) const {
    const auto default_bytes = static_cast<std::int64_t>(settings_.device_working_mem_gb * static_cast<double>(kGB));
    const std::int64_t floor = settings_.device_working_mem_raised
                                   ? default_bytes
                                   : static_cast<std::int64_t>(kMinDeviceWorkingMemGb * static_cast<double>(kGB));
    const std::int64_t cap = std::max(default_bytes, estimate);
    const auto scaled = static_cast<std::int64_t>(static_cast<double>(estimate) * kPartialLoadHeadroomMultiplier);
    return std::max(floor, std::min(scaled, cap));
  }

  // CachedModelWithPartialLoad.partial_unload_from_vram / CachedModelOnlyFullLoad.full_unload_from_vram.
  std::uint64_t move_model_to_ram(RunContext& context, const Entry& entry, std::int64_t bytes_to_free) {
    ResidentModel& model = context.model(entry.id);
    const bool copy = !settings_.keep_ram_copy;  // keep_ram_copy: unload is a pointer swap
    if (entry.full_load_only) return model.unload_all(context.backend(), copy);
    return model.unload_at_least(context.backend(), bytes_to_free, copy);
  }

  // partial_load_to_vram(vram_available) / full_load_to_vram(). Returns nullopt on OOM.
  std::optional<std::uint64_t> move_model_to_vram(RunContext& context, const Entry& entry, std::int64_t budget) {
    ResidentModel& model = context.model(entry.id);
    if (entry.full_load_only) return model.load_all(context.backend());  // "tries anyway"
    return model.load_up_to(context.backend(), budget);
  }

  // _offload_unlocked_models: smallest total size first, skipping locked entries, re-checking the
  // availability before each; then empty_cache().
  void offload_unlocked_models(RunContext& context, std::int64_t required, std::optional<std::int64_t> wm,
                               StageDecision& decision) {
    std::vector<const Entry*> order;
    for (const Entry& e : entries_) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [&](const Entry* a, const Entry* b) {
      return context.model(a->id).total_bytes() < context.model(b->id).total_bytes();
    });
    for (const Entry* e : order) {
      const std::int64_t to_free = required - vram_available(context, wm);
      if (to_free <= 0) break;
      if (e->locks > 0) continue;
      const std::uint64_t freed = move_model_to_ram(context, *e, to_free);
      if (freed > 0) decision.evictions.push_back({e->id, freed});
    }
    context.backend().empty_cache();
  }

  // _load_locked_model.
  bool load_locked_model(RunContext& context, Entry& entry, std::optional<std::uint64_t> estimate,
                         StageDecision& decision) {
    ResidentModel& model = context.model(entry.id);
    const std::size_t evictions_before = decision.evictions.size();
    const std::optional<std::int64_t> wm =
        estimate ? std::optional<std::int64_t>(static_cast<std::int64_t>(*estimate)) : std::nullopt;
    const auto needed = static_cast<std::int64_t>(model.total_bytes() - model.device_bytes());
    offload_unlocked_models(context, needed, wm, decision);
    std::int64_t used_wm = 0;
    std::int64_t available = vram_available(context, wm, &used_wm);
    std::optional<std::int64_t> effective_wm = wm;
    if (profile_.smart_partial_loading && !settings_.max_vram_cache_gb && wm && needed > available &&
        kPartialLoadHeadroomMultiplier > 1.0) {
      const std::int64_t reserve = partial_load_reserve(*wm);
      std::int64_t headroom_wm = 0;
      const std::int64_t headroom = vram_available(context, reserve, &headroom_wm);
      if (headroom < available) {
        effective_wm = reserve;
        available = headroom;
        used_wm = headroom_wm;
      }
    }
    decision.estimate = static_cast<std::uint64_t>(used_wm);
    if (decision.estimate_source.rfind("no estimate passed", 0) == 0 ||
        decision.estimate_source.find("passes no") != std::string::npos) {
      decision.estimate_source += "; cache default device_working_mem_gb = " + format_bytes(decision.estimate.value_or(0));
    }
    decision.free_memory = available + used_wm;  // F_P: the policy's free memory before the reserve
    decision.stop = available >= needed ? StopReason::kSatisfied : StopReason::kExhausted;
    if (available < 0) {
      // Last resort: unload the model being locked itself (it may be partly resident from before).
      const std::uint64_t freed = move_model_to_ram(context, entry, -available);
      if (freed > 0) decision.evictions.push_back({entry.id, freed});
      available = vram_available(context, effective_wm);
    }
    const std::optional<std::uint64_t> loaded = move_model_to_vram(context, entry, available + kMB);
    if (!loaded) {
      decision.load_oom = context.backend().last_oom();
      // The cache deletes an entry whose load raised: its weights leave the device.
      model.unload_all(context.backend(), false);
      return false;
    }
    decision.weights_loaded += *loaded;
    decision.loads.push_back({entry.id, *decision.free_memory, *decision.estimate, *loaded, decision.stop,
                              decision.evictions.size() - evictions_before});
    if (!model.fully_resident()) {
      // Custom autocast layers copy non-resident weights to the device per forward: the largest copy
      // is held on top of the activations.
      std::uint64_t largest = 0;
      for (std::size_t i = 0; i < model.manifest().tensors.size(); ++i) {
        if (model.on_device(i)) continue;
        largest = std::max(largest, model.manifest().tensors[i].bytes);
        decision.streamed_to_device += model.manifest().tensors[i].bytes;
      }
      decision.streamed_weights = std::max(decision.streamed_weights, largest);
    }
    return true;
  }

  InvokeAIProfile profile_;
  PolicyInfo info_;
  Settings settings_;
  std::vector<Entry> entries_;
};

}  // namespace

std::span<const InvokeAIProfile> invokeai_profiles() { return profiles(); }

std::unique_ptr<Policy> make_invokeai_model_cache(const InvokeAIProfile& profile) {
  return std::make_unique<InvokeAIModelCache>(profile);
}

}  // namespace offsim::policies
