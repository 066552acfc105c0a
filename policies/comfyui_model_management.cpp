// Transcribed from Comfy-Org/ComfyUI @a125cd84b054a57729b5eecab930ca9408719832 (read from a fetched git
// snapshot, not copied): comfy/model_management.py (LoadedModel, free_memory, load_models_gpu,
// get_free_memory, soft_empty_cache, minimum_inference_memory, EXTRA_RESERVED_VRAM,
// MIN_WEIGHT_MEMORY_RATIO), comfy/model_patcher.py (ModelPatcher._load_list, load, partially_load,
// partially_unload, detach/unpatch_model), comfy/sd.py (CLIP.load_model, VAE.decode/encode) and
// comfy/sampler_helpers.py (_prepare_sampling). Each function below names the upstream one it reproduces.
//
// Where shared/specs/offload_policies.md section 3.3 and the source disagree, the source is followed:
//   * the last key of free_memory's sort is the index in current_loaded_models, where load_models_gpu
//     inserts at 0: ascending order unloads the MOST recently loaded model first among equals, not the
//     "older position" the spec says;
//   * partially_unload stops only once `memory_to_free < memory_freed`, so it frees one module more than
//     needed when the freed bytes hit the target exactly.
#include "offsim/policies/comfyui_model_management.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "offsim/policies/comfyui_model_memory.hpp"
#include "offsim/policies/comfyui_tiled_retry.hpp"
#include "offsim/policies/manifest_modules.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

constexpr char kA125[] = "a125cd84b054a57729b5eecab930ca9408719832";

const std::array<ComfyUIProfile, 2>& profiles() {
  static const std::array<ComfyUIProfile, 2> all = {
      ComfyUIProfile{"comfyui@a125cd84",
                     "classic model management at the spec snapshot (PR #10302) with that commit's VAE estimates "
                     "(Qwen-Image decodes with the Wan 2.1 video factor 7000)",
                     std::string("Comfy-Org/ComfyUI:comfy/model_management.py@") + kA125, comfyui::Profile::a125cd84},
      ComfyUIProfile{"comfyui@a125cd84+vae-033046cc",
                     "a125cd84 model management with the VAE estimates of comfy/sd.py@033046cc (PR #11199: Wan 2.1 / "
                     "Qwen-Image factors 2200 / 1500 for <= 4 frames; AutoencoderKL x 2.73 on AMD)",
                     std::string("Comfy-Org/ComfyUI:comfy/model_management.py@") + kA125 +
                         " + comfy/sd.py@033046cc4fac82d954c6daedccf1c8128433c4f1",
                     comfyui::Profile::c033046cc},
  };
  return all;
}

// EXTRA_RESERVED_VRAM: 400 MiB on Linux; 600 MiB on Windows, +100 MiB when total_vram > 15 * 1024 MiB;
// --reserve-vram X replaces it with X GiB.
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * kMiB;
// minimum_inference_memory() = 1 GiB * 0.8 + extra_reserved_memory()
constexpr double kInferenceBase = 0.8 * kGiB;
// load_models_gpu: lowvram_model_memory = max(128 MiB, ...)
constexpr double kLowvramFloor = 128.0 * kMiB;

enum class VramState { kNoVram, kLowVram, kNormalVram, kHighVram };

struct Settings {
  VramState vram_state = VramState::kNormalVram;  // vram_state default; --lowvram/--novram/--highvram
  std::optional<double> reserve_vram_gb;          // --reserve-vram
  bool windows = false;
  bool disable_smart_memory = false;              // --disable-smart-memory
};

Settings read_settings(const nlohmann::json& j) {
  Settings s;
  try {
    const std::string state = j.value("vram_state", "normal");
    if (state == "normal") s.vram_state = VramState::kNormalVram;
    else if (state == "low") s.vram_state = VramState::kLowVram;
    else if (state == "high") s.vram_state = VramState::kHighVram;
    else if (state == "no") s.vram_state = VramState::kNoVram;
    else throw ConfigError("policy_settings.comfyui.vram_state must be normal, low, high or no, got \"" + state + "\"");
    if (j.contains("reserve_vram_gb")) s.reserve_vram_gb = j["reserve_vram_gb"].get<double>();
    s.windows = j.value("windows", false);
    s.disable_smart_memory = j.value("disable_smart_memory", false);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("policy_settings.comfyui: ") + e.what());
  }
  return s;
}

std::uint64_t ceil_bytes(double v) { return static_cast<std::uint64_t>(std::ceil(std::max(0.0, v))); }

// A ModelPatcher with the LoadedModel state load_models_gpu keeps for it.
struct Patcher {
  std::string id;
  std::vector<ManifestModule> modules;  // _load_list()
  std::vector<bool> patched;            // comfy_patched_weights: the module's weights are on the device
  std::vector<bool> cast;               // prev_comfy_cast_weights: lowvram, cast to the device per forward
  std::int64_t size = 0;                // model_size()
  std::int64_t loaded = 0;              // model.model_loaded_weight_memory
  bool lowvram = false;                 // model.model_lowvram
  bool on_device = false;               // current_loaded_device() == load_device
};

class ComfyUIModelManagement final : public Policy {
 public:
  explicit ComfyUIModelManagement(const ComfyUIProfile& profile) : profile_(profile) {
    info_.id = profile.id;
    info_.family = "comfyui";
    info_.label = profile.label;
    info_.upstream = profile.upstream;
    info_.free_memory_formula = "get_free_memory: driver free + (reserved - active): cached blocks count as free";
    info_.uses_estimates = true;
  }

  const PolicyInfo& info() const override { return info_; }

  void begin_run(RunContext& context) override {
    settings_ = read_settings(context.settings("comfyui"));
    // MIN_WEIGHT_MEMORY_RATIO = 0.4, 0.0 when is_nvidia() (torch.version.cuda: false on ROCm builds).
    min_weight_ratio_ = context.scenario().device.platform == sim::Platform::kCuda ? 0.0 : 0.4;
    const double total_vram_mib = static_cast<double>(context.backend().mem_get_info().total) / kMiB;
    extra_reserved_ = settings_.windows ? 600.0 * kMiB + (total_vram_mib > 15.0 * 1024.0 ? 100.0 * kMiB : 0.0)
                                        : 400.0 * kMiB;
    if (settings_.reserve_vram_gb) extra_reserved_ = *settings_.reserve_vram_gb * kGiB;
    for (const std::string& id : context.model_ids()) {
      Patcher p;
      p.id = id;
      const ResidentModel& model = context.model(id);
      p.modules = manifest_modules(model.manifest());
      p.patched.assign(p.modules.size(), false);
      p.cast.assign(p.modules.size(), false);
      p.size = static_cast<std::int64_t>(model.total_bytes());
      patchers_.push_back(std::move(p));
    }
    // Models already on the device are fully loaded LoadedModels, inserted at 0 in the listed order.
    for (const std::string& id : context.scenario().initially_resident) {
      Patcher& p = find(id);
      p.patched.assign(p.modules.size(), true);
      p.loaded = p.size;
      p.on_device = true;
      current_loaded_.insert(current_loaded_.begin(), id);
    }
  }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    const CallSite site = call_site(*step.stage);
    decision.estimate = ceil_bytes(std::max(kInferenceBase, site.memory_required));
    decision.estimate_source = site.source;
    if (site.memory_required < kInferenceBase) {
      decision.estimate_source += "; floored to minimum_inference_memory - EXTRA_RESERVED_VRAM = 0.80 GiB";
    }
    // sampler_helpers loads the diffusion model once per sampling run, before its first step.
    if (step.stage->kind != StageKind::kDenoise || step.step == 0) {
      if (!load_models_gpu(context, step.stage->models, site, decision)) return decision;
    } else {
      decision.estimate_source += " (reserved before step 1)";
    }
    stream_cast_weights(context, *step.stage, decision);
    decision.oom_fallback = tiled_retry(*step.stage);
    return decision;
  }

  void finish(RunContext& /*context*/, const StageStep& /*step*/) override {
    // Loaded models stay in current_loaded_models until free_memory needs their room.
  }

  ResidencyClaim residency(const RunContext& /*context*/) const override {
    ResidencyClaim claim;
    for (const Patcher& p : patchers_) {
      if (std::find(current_loaded_.begin(), current_loaded_.end(), p.id) != current_loaded_.end()) {
        claim.resident_by_design.push_back(p.id);
      } else {
        claim.offloaded.push_back(p.id);
      }
    }
    return claim;
  }

 private:
  struct CallSite {
    double memory_required = 0;
    std::optional<double> minimum_memory_required;
    std::string source;
  };

  Patcher& find(const std::string& id) {
    for (Patcher& p : patchers_) {
      if (p.id == id) return p;
    }
    throw ConfigError("comfyui: model \"" + id + "\" is not in the scenario");
  }

  // What the node that runs the stage passes to load_models_gpu.
  CallSite call_site(const Stage& stage) const {
    CallSite site;
    if (stage.kind == StageKind::kDenoise) {
      // _prepare_sampling: memory_required (cond + uncond batch) and minimum_memory_required (batch).
      const auto* w = stage.workload ? std::get_if<DenoiseWorkload>(&*stage.workload) : nullptr;
      if (w == nullptr) {
        site.source = "no denoise workload in the scenario: memory_required 0";
        return site;
      }
      const comfyui::ModelMemory m = comfyui::estimate_memory(*w);
      site.memory_required = static_cast<double>(m.memory_required);
      site.minimum_memory_required = static_cast<double>(m.minimum_memory_required);
      site.source = "comfyui/memory-required@a125cd84";
      if (stage.estimator) {
        const Estimator& e = find_estimator(*stage.estimator);
        site.memory_required = static_cast<double>(e.estimate(*stage.workload).value_or(0));
        site.source = e.id;
      }
      return site;
    }
    if (stage.kind == StageKind::kVaeDecode || stage.kind == StageKind::kVaeEncode) {
      const auto* vae = stage.workload ? std::get_if<VaeWorkload>(&*stage.workload) : nullptr;
      if (vae == nullptr) {
        site.source = "no VAE workload in the scenario: memory_required 0";
        return site;
      }
      {
        // VAE.decode / VAE.encode: memory_used = memory_used_decode/encode(shape, vae_dtype).
        const std::string id =
            stage.estimator ? *stage.estimator : comfyui_vae_estimator_id(vae->family, profile_.vae_estimates);
        const Estimator& e = find_estimator(id);
        site.memory_required = static_cast<double>(e.estimate(*stage.workload).value_or(0));
        site.source = e.id;
        return site;
      }
    }
    // CLIP.load_model -> load_model_gpu(patcher): memory_required = 0.
    site.source = "no estimate passed (load_model_gpu)";
    return site;
  }

  // VAE.decode / VAE.encode retry an OOM in tiles (comfyui_tiled_retry.hpp); other call sites let it propagate.
  std::optional<OomFallback> tiled_retry(const Stage& stage) const {
    const auto* vae = stage.workload ? std::get_if<VaeWorkload>(&*stage.workload) : nullptr;
    if (vae == nullptr || (stage.kind != StageKind::kVaeDecode && stage.kind != StageKind::kVaeEncode)) return std::nullopt;
    try {
      return comfyui_tiled_retry(stage, comfyui::detect_vae_type(vae->family, profile_.vae_estimates));
    } catch (const ConfigError&) {
      return std::nullopt;  // a family this comfy/sd.py cannot load, run with a forced estimator: no tiling known
    }
  }

  // get_free_memory(dev, torch_free_too): driver free + (reserved - active).
  std::int64_t free_memory_now(RunContext& context, std::int64_t* torch_free = nullptr) const {
    const MemoryStats s = context.backend().stats();
    const auto torch = static_cast<std::int64_t>(s.reserved) - static_cast<std::int64_t>(s.active);
    if (torch_free) *torch_free = torch;
    return static_cast<std::int64_t>(context.backend().mem_get_info().free) + torch;
  }

  double inference_memory() const { return kInferenceBase + extra_reserved_; }

  bool load_module(RunContext& context, Patcher& p, std::size_t m) {
    ResidentModel& model = context.model(p.id);
    for (std::size_t t : p.modules[m].tensors) {
      if (!model.load(context.backend(), t)) return false;
    }
    return true;
  }

  void unload_module(RunContext& context, Patcher& p, std::size_t m) {
    ResidentModel& model = context.model(p.id);
    // `m.to(offload_device)`: no CPU copy is kept, so bytes cross PCIe.
    for (std::size_t t : p.modules[m].tensors) model.unload(context.backend(), t, true);
  }

  // ModelPatcher.load(device_to, lowvram_model_memory, full_load). Returns false on OOM.
  bool load(RunContext& context, Patcher& p, double budget, bool full_load) {
    // `loading.sort(reverse=True)` on (module_size, name, ...): largest first, ties by name descending.
    std::vector<std::size_t> order(p.modules.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (p.modules[a].bytes != p.modules[b].bytes) return p.modules[a].bytes > p.modules[b].bytes;
      return p.modules[a].name > p.modules[b].name;
    });
    double mem_counter = 0;
    int lowvram_counter = 0;
    std::vector<std::size_t> load_completely;
    for (std::size_t m : order) {
      const auto bytes = static_cast<double>(p.modules[m].bytes);
      if (!full_load && mem_counter + bytes >= budget) {
        ++lowvram_counter;
        if (p.cast[m]) continue;  // already lowvramed
        p.cast[m] = true;         // comfy_cast_weights: the weight stays where it is, cast per forward
        continue;
      }
      p.cast[m] = false;  // wipe_lowvram_weight
      if (full_load || mem_counter + bytes < budget) {
        mem_counter += bytes;
        load_completely.push_back(m);
      }
    }
    for (std::size_t m : load_completely) {
      if (p.patched[m]) continue;
      if (!load_module(context, p, m)) return false;
      p.patched[m] = true;
    }
    if (lowvram_counter > 0) {
      p.lowvram = true;
    } else {
      p.lowvram = false;
      if (full_load) mem_counter = static_cast<double>(p.size);  // self.model.to(device_to)
    }
    p.on_device = true;
    p.loaded = static_cast<std::int64_t>(mem_counter);
    return true;
  }

  // ModelPatcher.partially_load(device_to, extra_memory) -> bytes loaded, nullopt on OOM (after detach()).
  bool partially_load(RunContext& context, Patcher& p, double extra_memory) {
    if (!p.lowvram && p.loaded > 0) return true;  // fully loaded already
    const bool full_load = static_cast<double>(p.loaded) + extra_memory > static_cast<double>(p.size);
    if (!load(context, p, static_cast<double>(p.loaded) + extra_memory, full_load)) {
      detach(context, p);  // `except Exception: self.detach(); raise`
      return false;
    }
    return true;
  }

  // ModelPatcher.partially_unload: smallest modules first (ties by name), until more than asked is freed.
  std::int64_t partially_unload(RunContext& context, Patcher& p, double memory_to_free) {
    std::vector<std::size_t> order(p.modules.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (p.modules[a].bytes != p.modules[b].bytes) return p.modules[a].bytes < p.modules[b].bytes;
      return p.modules[a].name < p.modules[b].name;
    });
    std::int64_t freed = 0;
    for (std::size_t m : order) {
      if (memory_to_free < static_cast<double>(freed)) break;
      if (!p.patched[m]) continue;
      unload_module(context, p, m);
      p.patched[m] = false;
      p.cast[m] = true;
      freed += static_cast<std::int64_t>(p.modules[m].bytes);
    }
    p.lowvram = true;
    p.loaded -= freed;
    return freed;
  }

  // ModelPatcher.detach() -> unpatch_model(offload_device): every weight back to the CPU.
  void detach(RunContext& context, Patcher& p) {
    context.model(p.id).unload_all(context.backend(), true);
    p.patched.assign(p.modules.size(), false);
    p.cast.assign(p.modules.size(), false);
    p.lowvram = false;
    p.loaded = 0;
    p.on_device = false;
  }

  // LoadedModel.model_unload(memory_to_free): true when the model was fully unloaded (detached).
  bool model_unload(RunContext& context, Patcher& p, std::optional<double> memory_to_free) {
    if (memory_to_free && *memory_to_free < static_cast<double>(p.loaded)) {
      const std::int64_t freed = partially_unload(context, p, *memory_to_free);
      if (static_cast<double>(freed) >= *memory_to_free) return false;
    }
    detach(context, p);
    return true;
  }

  // free_memory(memory_required, device).
  void free_memory(RunContext& context, double memory_required, StageDecision& decision) {
    struct Candidate {
      std::int64_t neg_offloaded;
      std::int64_t size;
      std::size_t index;
    };
    std::vector<Candidate> candidates;
    for (std::size_t i = 0; i < current_loaded_.size(); ++i) {
      const Patcher& p = find(current_loaded_[i]);
      // (-model_offloaded_memory(), sys.getrefcount(model) [equal here], model_memory(), index)
      candidates.push_back({-(p.size - p.loaded), p.size, i});
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.neg_offloaded != b.neg_offloaded) return a.neg_offloaded < b.neg_offloaded;
      if (a.size != b.size) return a.size < b.size;
      return a.index < b.index;
    });
    std::vector<std::size_t> unloaded;
    for (const Candidate& c : candidates) {
      std::optional<double> memory_to_free;
      if (!settings_.disable_smart_memory) {
        const auto free = static_cast<double>(free_memory_now(context));
        if (free > memory_required) break;
        memory_to_free = memory_required - free;
      }
      Patcher& p = find(current_loaded_[c.index]);
      const std::uint64_t before = context.model(p.id).device_bytes();
      if (model_unload(context, p, memory_to_free)) unloaded.push_back(c.index);
      const std::uint64_t after = context.model(p.id).device_bytes();
      if (before > after) decision.evictions.push_back({p.id, before - after});
    }
    std::sort(unloaded.rbegin(), unloaded.rend());
    for (std::size_t i : unloaded) current_loaded_.erase(current_loaded_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!unloaded.empty()) {
      context.backend().empty_cache();  // soft_empty_cache()
    } else if (settings_.vram_state != VramState::kHighVram) {
      std::int64_t torch_free = 0;
      const std::int64_t total = free_memory_now(context, &torch_free);
      if (static_cast<double>(torch_free) > static_cast<double>(total) * 0.25) context.backend().empty_cache();
    }
  }

  // load_models_gpu(models, memory_required, minimum_memory_required, force_full_load=False).
  bool load_models_gpu(RunContext& context, const std::vector<std::string>& models, const CallSite& site,
                       StageDecision& decision) {
    const double inference = inference_memory();
    const double extra_mem = std::max(inference, site.memory_required + extra_reserved_);
    const double minimum = site.minimum_memory_required
                               ? std::max(inference, *site.minimum_memory_required + extra_reserved_)
                               : extra_mem;
    // Models already loaded are taken out of current_loaded_models (the is_clone detach, which moves no
    // weights) and re-inserted at 0 once loaded; they are therefore never unload candidates here.
    std::vector<std::string> to_load;
    for (const std::string& id : models) {
      if (std::find(to_load.begin(), to_load.end(), id) != to_load.end()) continue;
      to_load.push_back(id);
      auto it = std::find(current_loaded_.begin(), current_loaded_.end(), id);
      if (it != current_loaded_.end()) current_loaded_.erase(it);
    }
    double total_required = 0;
    for (const std::string& id : to_load) {
      const Patcher& p = find(id);
      // model_memory_required(device): the offloaded part if on the device, else the whole model.
      total_required += static_cast<double>(p.on_device ? p.size - p.loaded : p.size);
    }
    const double wanted = total_required * 1.1 + extra_mem;
    free_memory(context, wanted, decision);
    const bool satisfied = static_cast<double>(free_memory_now(context)) > wanted;
    if (static_cast<double>(free_memory_now(context)) < minimum) free_memory(context, minimum, decision);
    decision.free_memory = free_memory_now(context);
    decision.stop = satisfied ? StopReason::kSatisfied : StopReason::kExhausted;

    for (const std::string& id : to_load) {
      Patcher& p = find(id);
      double lowvram_model_memory = 0;
      if (settings_.vram_state == VramState::kLowVram || settings_.vram_state == VramState::kNormalVram) {
        const auto loaded = static_cast<double>(p.loaded);
        const double cur_free = static_cast<double>(free_memory_now(context)) + loaded;
        lowvram_model_memory = std::max({kLowvramFloor, cur_free - minimum,
                                         std::min(cur_free * min_weight_ratio_, cur_free - inference)});
        lowvram_model_memory = std::max(0.1, lowvram_model_memory - loaded);
      }
      if (settings_.vram_state == VramState::kNoVram) lowvram_model_memory = 0.1;
      // LoadedModel.model_load: 0 means "everything" (use_more_vram = 1e32).
      const double extra = lowvram_model_memory == 0 ? 1e32 : lowvram_model_memory;
      ResidentModel& model = context.model(id);
      const std::uint64_t before = model.bytes_to_device();
      const bool ok = partially_load(context, p, extra);
      decision.weights_loaded += model.bytes_to_device() - before;
      if (!ok) {
        decision.load_oom = context.backend().last_oom();
        return false;
      }
      if (p.lowvram && site.minimum_memory_required) {
        decision.estimate_source += "; partial load budget keeps minimum_memory_required = " +
                                    format_bytes(ceil_bytes(minimum - extra_reserved_)) + " free";
      }
      current_loaded_.insert(current_loaded_.begin(), id);
    }
    return true;
  }

  // Modules left on the CPU with comfy_cast_weights are copied to the device for every forward
  // (comfy.ops cast_bias_weight) and dropped after it: traffic every step, and the largest copy is held
  // on top of the stage's activations.
  void stream_cast_weights(RunContext& context, const Stage& stage, StageDecision& decision) {
    for (const std::string& id : stage.models) {
      Patcher& p = find(id);
      if (!p.lowvram) continue;
      ResidentModel& model = context.model(id);
      for (std::size_t m = 0; m < p.modules.size(); ++m) {
        if (p.patched[m] || !p.cast[m]) continue;
        decision.streamed_weights = std::max(decision.streamed_weights, p.modules[m].bytes);
        for (std::size_t t : p.modules[m].tensors) {
          if (!model.load(context.backend(), t)) {
            decision.load_oom = context.backend().last_oom();
            return;
          }
          model.unload(context.backend(), t, false);
        }
      }
    }
  }

  ComfyUIProfile profile_;
  PolicyInfo info_;
  Settings settings_;
  double min_weight_ratio_ = 0.0;
  double extra_reserved_ = 400.0 * kMiB;
  std::vector<Patcher> patchers_;
  std::vector<std::string> current_loaded_;  // current_loaded_models: index 0 = most recently loaded
};

}  // namespace

std::string comfyui_vae_estimator_id(VaeFamily family, comfyui::Profile vae_estimates) {
  std::string type(comfyui::to_string(comfyui::detect_vae_type(family, vae_estimates)));
  std::replace(type.begin(), type.end(), '_', '-');
  const std::string commit = vae_estimates == comfyui::Profile::a125cd84 ? "a125cd84" : "033046cc";
  return "comfyui/vae-" + type + "@" + commit;
}

std::span<const ComfyUIProfile> comfyui_profiles() { return profiles(); }

std::unique_ptr<Policy> make_comfyui_model_management(const ComfyUIProfile& profile) {
  return std::make_unique<ComfyUIModelManagement>(profile);
}

}  // namespace offsim::policies
