// Transcribed from ModelTC/LightX2V at f8aee98b (after the fix) and the parent of c177fd82 (before):
// lightx2v/models/networks/flux2/model.py, qwen_image/model.py, wan/model.py (`infer`: to_cuda /
// to_cpu around the step), wan/infer/offload/transformer_infer.py and common/offload/manager.py (block
// and phase buffers), models/runners/default_runner.py (maybe_empty_cache). Read, not copied.
#include "offsim/policies/lightx2v_offload.hpp"

#include <array>
#include <map>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

const std::array<LightX2VProfile, 2>& profiles() {
  static const std::array<LightX2VProfile, 2> all = {
      LightX2VProfile{"lightx2v@c177fd82^",
                      "cpu_offload before PR #1053: FLUX.2 / Qwen-Image move weights to the GPU and never back",
                      "ModelTC/LightX2V:lightx2v/models/networks/flux2/model.py@c177fd82^", false},
      LightX2VProfile{"lightx2v@c177fd82",
                      "cpu_offload after PR #1053: weights back to the CPU at the last step (model) or every step",
                      "ModelTC/LightX2V:lightx2v/models/networks/flux2/model.py@c177fd82", true},
  };
  return all;
}

enum class Granularity { kModel, kBlock, kPhase };

struct Settings {
  bool cpu_offload = false;
  Granularity granularity = Granularity::kBlock;  // BaseTransformerModel default
  std::string model_cls = "flux2_klein";
  bool text_encoder_offload = false;  // defaults to cpu_offload
  bool vae_offload = false;
  std::uint64_t empty_cache_min_free = 4 * GiB;         // empty_cache_min_free_gib
  std::uint64_t empty_cache_min_reclaimable = 2 * GiB;  // empty_cache_min_reclaimable_gib
};

Settings read_settings(const nlohmann::json& j) {
  Settings s;
  try {
    s.cpu_offload = j.value("cpu_offload", false);
    const std::string g = j.value("offload_granularity", "block");
    if (g == "model") s.granularity = Granularity::kModel;
    else if (g == "block") s.granularity = Granularity::kBlock;
    else if (g == "phase") s.granularity = Granularity::kPhase;
    else throw ConfigError("policy_settings.lightx2v.offload_granularity must be model, block or phase, got \"" + g + "\"");
    s.model_cls = j.value("model_cls", s.model_cls);
    s.text_encoder_offload = j.value("text_encoder_cpu_offload", s.cpu_offload);
    s.vae_offload = j.value("vae_cpu_offload", false);
    if (j.contains("empty_cache_min_free_gib")) s.empty_cache_min_free = static_cast<std::uint64_t>(j["empty_cache_min_free_gib"].get<double>() * static_cast<double>(GiB));
    if (j.contains("empty_cache_min_reclaimable_gib")) s.empty_cache_min_reclaimable = static_cast<std::uint64_t>(j["empty_cache_min_reclaimable_gib"].get<double>() * static_cast<double>(GiB));
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("policy_settings.lightx2v: ") + e.what());
  }
  return s;
}

bool is_non_block(const TensorSpec& t) { return t.group < 0; }

class LightX2VOffload final : public Policy {
 public:
  explicit LightX2VOffload(const LightX2VProfile& profile) : profile_(profile) {
    info_.id = profile.id;
    info_.family = "lightx2v";
    info_.label = profile.label;
    info_.upstream = profile.upstream;
  }
  const PolicyInfo& info() const override { return info_; }

  void begin_run(RunContext& context) override {
    settings_ = read_settings(context.settings("lightx2v"));
    const bool flux2 = settings_.model_cls.rfind("flux2", 0) == 0;
    if (flux2 && profile_.offloads_at_step_end && settings_.cpu_offload && settings_.granularity == Granularity::kPhase) {
      // At c177fd82 FLUX.2 has no phase-offload infer class; how its blocks reach the GPU in that mode
      // was not traced (docs/seed_facts.md 2.2), so it is not modelled rather than guessed.
      throw ConfigError("lightx2v: FLUX.2 with offload_granularity \"phase\" after c177fd82 is not modelled "
                        "(upstream has no FLUX.2 phase-offload class; use model or block)");
    }
    // Block and phase offload preallocate their CUDA buffers when the transformer's weights are built
    // (register_offload_buffers, called from the TransformerWeights constructor, e.g.
    // lightx2v/models/networks/qwen_image/weights/transformer_weights.py): they are held from init on,
    // before the first text encoder runs.
    for (const std::string& id : context.model_ids()) {
      if (!is_transformer(context, id) || !settings_.cpu_offload || settings_.granularity == Granularity::kModel) continue;
      const std::uint64_t block = context.model(id).manifest().largest_block_bytes();
      const int buffers = settings_.granularity == Granularity::kBlock ? 2 : 1;  // offload_blocks_num = 2
      for (int i = 0; i < buffers; ++i) {
        if (!context.allocate_buffer("lightx2v block buffer", block)) {
          throw ConfigError("lightx2v: the offload block buffers do not fit on the device at init: " +
                            context.backend().last_oom().message);
        }
      }
    }
    // Modules are built on the GPU unless their offload flag puts them on the CPU (set_init_device).
    for (const std::string& id : context.model_ids()) {
      if (offloaded_between_uses(context, id)) continue;
      if (!context.model(id).load_all(context.backend())) {
        throw ConfigError("lightx2v: model \"" + id + "\" does not fit on the device at init: " +
                          context.backend().last_oom().message);
      }
    }
  }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    for (const std::string& id : step.stage->models) {
      ResidentModel& model = context.model(id);
      std::optional<std::uint64_t> loaded = 0;
      if (is_transformer(context, id) && settings_.cpu_offload) {
        loaded = transformer_step_start(context, id, step);
        if (loaded && settings_.granularity != Granularity::kModel) {
          // Blocks not resident are copied into the init-time buffers once per step (the prefetch of
          // block i+1 while block i runs): traffic without new allocations.
          const auto& tensors = model.manifest().tensors;
          for (std::size_t t = 0; t < tensors.size(); ++t) {
            if (!is_non_block(tensors[t]) && !model.on_device(t)) decision.streamed_to_device += tensors[t].bytes;
          }
        }
      } else if (offloaded_between_uses(context, id)) {
        loaded = model.load_all(context.backend());  // e.g. text_encoder.to(AI_DEVICE)
      }
      if (!loaded) {
        decision.load_oom = context.backend().last_oom();
        return decision;
      }
      decision.weights_loaded += *loaded;
    }
    return decision;
  }

  void finish(RunContext& context, const StageStep& step) override {
    for (const std::string& id : step.stage->models) {
      ResidentModel& model = context.model(id);
      if (is_transformer(context, id) && settings_.cpu_offload) {
        transformer_step_end(context, id, step);
      } else if (offloaded_between_uses(context, id)) {
        // Offloading is a pointer swap back to the kept CPU copy (PR #476): no D2H copy.
        model.unload_all(context.backend(), false);
      }
    }
    if (step.step + 1 == step.stage->steps) maybe_empty_cache(context);
  }

  ResidencyClaim residency(const RunContext& context) const override {
    ResidencyClaim claim;
    for (const std::string& id : context.model_ids()) {
      if (offloaded_between_uses(context, id)) claim.offloaded.push_back(id);
      else claim.resident_by_design.push_back(id);
    }
    if (context.buffer_bytes() > 0) claim.resident_by_design.push_back("offload block buffers");
    return claim;
  }

 private:
  bool is_transformer(const RunContext& context, const std::string& id) const {
    const std::string& c = context.model(id).manifest().component;
    return c == "transformer" || c == "dit";
  }

  bool offloaded_between_uses(const RunContext& context, const std::string& id) const {
    const std::string& c = context.model(id).manifest().component;
    if (is_transformer(context, id)) return settings_.cpu_offload;
    if (c == "vae") return settings_.vae_offload;
    return settings_.text_encoder_offload;
  }

  // Only FLUX.2 and Qwen-Image lacked the move back before c177fd82; Wan and Z-Image already had it.
  bool moves_back() const {
    const bool affected = settings_.model_cls.rfind("flux2", 0) == 0 || settings_.model_cls == "qwen_image";
    return profile_.offloads_at_step_end || !affected;
  }

  // What `infer` does at the start of a step with cpu_offload on.
  std::optional<std::uint64_t> transformer_step_start(RunContext& context, const std::string& id, const StageStep& step) {
    ResidentModel& model = context.model(id);
    MemoryBackend& backend = context.backend();
    const bool flux2 = settings_.model_cls.rfind("flux2", 0) == 0;
    if (!moves_back()) {
      if (!flux2) {
        // Qwen-Image before c177fd82: to CUDA at step 0 ("model") or pre/post weights every step.
        if (settings_.granularity == Granularity::kModel) return step.step == 0 ? model.load_all(backend) : 0;
        return model.load_where(backend, is_non_block);
      }
      // FLUX.2 before c177fd82: `if self.cpu_offload: self.to_cuda()` at every step, any granularity.
      return model.load_all(backend);
    }
    if (settings_.granularity == Granularity::kModel) {
      if (step.step == 0) return model.load_all(backend);
      return std::uint64_t{0};
    }
    // block / phase: pre, post and non-block weights move every step; blocks stream through the
    // buffers allocated at init.
    return model.load_where(backend, is_non_block);
  }

  void transformer_step_end(RunContext& context, const std::string& id, const StageStep& step) {
    ResidentModel& model = context.model(id);
    if (!moves_back()) return;  // the bug: nothing moves back
    if (settings_.granularity == Granularity::kModel) {
      if (step.step + 1 == step.stage->steps) model.unload_all(context.backend(), false);
      return;
    }
    model.unload_where(context.backend(), is_non_block, false);
  }

  // DefaultRunner.maybe_empty_cache: only when the device is short and enough is reclaimable.
  void maybe_empty_cache(RunContext& context) {
    MemoryBackend& backend = context.backend();
    const MemoryStats s = backend.stats();
    if (backend.mem_get_info().free < settings_.empty_cache_min_free &&
        s.reserved - s.allocated >= settings_.empty_cache_min_reclaimable) {
      backend.empty_cache();
    }
  }

  LightX2VProfile profile_;
  PolicyInfo info_;
  Settings settings_;
};

}  // namespace

std::span<const LightX2VProfile> lightx2v_profiles() { return profiles(); }

std::unique_ptr<Policy> make_lightx2v_offload(const LightX2VProfile& profile) {
  return std::make_unique<LightX2VOffload>(profile);
}

}  // namespace offsim::policies
