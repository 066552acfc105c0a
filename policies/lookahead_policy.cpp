#include "offsim/policies/lookahead_policy.hpp"

#include <array>
#include <limits>

#include "offsim/policies/runner.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::policies {

namespace {

const std::array<LookaheadProfile, 1>& profiles() {
  static const std::array<LookaheadProfile, 1> all = {
      LookaheadProfile{"lookahead@furthest-next-use",
                       "yardstick: knows every future stage; evicts the model used furthest ahead; oracle estimate "
                       "= T_cold",
                       "offsim (no upstream): Belady 1966 furthest-next-use rule, variable-size heuristic"},
  };
  return all;
}

class LookaheadPolicy final : public Policy {
 public:
  explicit LookaheadPolicy(const LookaheadProfile& profile) {
    info_.id = profile.id;
    info_.family = "lookahead";
    info_.label = profile.label;
    info_.upstream = profile.upstream;
    info_.free_memory_formula = "driver_free after empty_cache() (only bytes stranded in weight segments are "
                                "not counted)";
    info_.uses_estimates = true;
  }

  const PolicyInfo& info() const override { return info_; }

  void begin_run(RunContext& context) override {
    const Scenario& s = context.scenario();
    cold_.assign(s.stages.size(), std::nullopt);
    cold_known_.assign(s.stages.size(), false);
  }

  StageDecision prepare(RunContext& context, const StageStep& step) override {
    StageDecision decision;
    const Scenario& scenario = context.scenario();
    const std::size_t stage_index = static_cast<std::size_t>(step.stage - scenario.stages.data());
    const std::uint64_t estimate = oracle(scenario, stage_index, decision.estimate_source);
    decision.estimate = estimate;
    if (step.step > 0) {
      decision.estimate_source += " (decided before step 1)";
      return decision;
    }
    const std::size_t now = static_cast<std::size_t>(step.call) * scenario.stages.size() + stage_index;
    MemoryBackend& backend = context.backend();
    std::uint64_t needed = 0;
    for (const std::string& id : step.stage->models) {
      const ResidentModel& m = context.model(id);
      needed += m.total_bytes() - m.device_bytes();
    }
    auto driver_free = [&] {
      backend.empty_cache();
      return backend.mem_get_info().free;
    };
    std::uint64_t free = driver_free();
    while (free < estimate + needed) {
      if (!evict_one(context, *step.stage, now, decision)) break;
      free = driver_free();
    }
    decision.free_memory = static_cast<std::int64_t>(free);
    decision.stop = free >= estimate + needed ? StopReason::kSatisfied : StopReason::kExhausted;
    for (const std::string& id : step.stage->models) {
      ResidentModel& m = context.model(id);
      const std::uint64_t before = m.bytes_to_device();
      // A load that fails for segment rounding or fragmentation evicts the next model by the same rule
      // and retries (the tensors already placed stay); it fails only when nothing is left to evict.
      bool ok = m.load_all(backend).has_value();
      while (!ok && evict_one(context, *step.stage, now, decision)) {
        backend.empty_cache();
        ok = m.load_all(backend).has_value();
      }
      decision.weights_loaded += m.bytes_to_device() - before;
      if (!ok) {
        decision.load_oom = backend.last_oom();
        return decision;
      }
    }
    // Tensors occupy whole segments (rounding): make sure E is still free once they are placed.
    while (driver_free() < estimate) {
      if (!evict_one(context, *step.stage, now, decision)) break;
    }
    return decision;
  }

  void finish(RunContext& /*context*/, const StageStep& /*step*/) override {}

  ResidencyClaim residency(const RunContext& context) const override {
    ResidencyClaim claim;
    for (const std::string& id : context.model_ids()) {
      if (context.model(id).device_bytes() > 0) claim.resident_by_design.push_back(id);
      else claim.offloaded.push_back(id);
    }
    return claim;
  }

 private:
  std::uint64_t oracle(const Scenario& scenario, std::size_t stage_index, std::string& source) {
    const Stage& stage = scenario.stages[stage_index];
    if (!stage.working_memory) {
      source = "oracle: no working memory in the scenario (weights only)";
      return 0;
    }
    if (!cold_known_[stage_index]) {
      cold_[stage_index] = cold_peak(scenario, stage);
      cold_known_[stage_index] = true;
    }
    source = "oracle: T_cold [" + stage.working_memory->label() + "]";
    return cold_[stage_index].value_or(0);
  }

  // Occurrence index of the next stage after `now` that runs `id`; max() when none of the scenario's calls do.
  static std::size_t next_use(const Scenario& scenario, const std::string& id, std::size_t now) {
    const std::size_t total = static_cast<std::size_t>(scenario.calls) * scenario.stages.size();
    for (std::size_t k = now + 1; k < total; ++k) {
      const Stage& s = scenario.stages[k % scenario.stages.size()];
      for (const std::string& m : s.models) {
        if (m == id) return k;
      }
    }
    return std::numeric_limits<std::size_t>::max();
  }

  // Evicts the resident model (not run by `stage`) used furthest ahead; false when there is none.
  bool evict_one(RunContext& context, const Stage& stage, std::size_t now, StageDecision& decision) {
    const Scenario& scenario = context.scenario();
    const std::string* victim = nullptr;
    std::size_t victim_next = 0;
    std::uint64_t victim_bytes = 0;
    const std::vector<std::string> ids = context.model_ids();
    for (const std::string& id : ids) {
      const std::uint64_t bytes = context.model(id).device_bytes();
      if (bytes == 0) continue;
      bool used_now = false;
      for (const std::string& m : stage.models) used_now = used_now || m == id;
      if (used_now) continue;
      const std::size_t next = next_use(scenario, id, now);
      if (victim == nullptr || next > victim_next || (next == victim_next && bytes > victim_bytes)) {
        victim = &id;
        victim_next = next;
        victim_bytes = bytes;
      }
    }
    if (victim == nullptr) return false;
    const std::uint64_t freed = context.model(*victim).unload_all(context.backend(), false);
    decision.evictions.push_back({*victim, freed});
    return true;
  }

  PolicyInfo info_;
  std::vector<std::optional<std::uint64_t>> cold_;
  std::vector<bool> cold_known_;
};

}  // namespace

std::span<const LookaheadProfile> lookahead_profiles() { return profiles(); }

std::unique_ptr<Policy> make_lookahead_policy(const LookaheadProfile& profile) {
  return std::make_unique<LookaheadPolicy>(profile);
}

}  // namespace offsim::policies
