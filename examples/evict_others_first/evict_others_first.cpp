#include "evict_others_first.hpp"

#include <algorithm>

namespace example {

using namespace offsim::policies;

EvictOthersFirst::EvictOthersFirst(std::uint64_t reserve) : reserve_(reserve) {
  info_.id = "evict-others-first@example";
  info_.family = "evict-others-first";
  info_.label = "examples/evict_others_first: evict unused models (LRU) until the stage fits with a fixed reserve";
  // P1 applies to a policy that says how it computes its free memory (F_P) and why it stopped evicting;
  // P2 and P5 to one that reserves working memory (E): here the fixed reserve, its estimate of every stage.
  info_.free_memory_formula = "driver free after empty_cache()";
  info_.uses_estimates = true;
}

void EvictOthersFirst::begin_run(RunContext& context) {
  recently_used_.clear();
  for (const std::string& id : context.model_ids()) {
    if (context.model(id).device_bytes() > 0) recently_used_.push_back(id);
  }
}

StageDecision EvictOthersFirst::prepare(RunContext& context, const StageStep& step) {
  const std::vector<std::string>& needed = step.stage->models;
  MemoryBackend& device = context.backend();
  std::uint64_t to_load = 0;  // what the stage's models still lack on the device
  for (const std::string& id : needed) to_load += context.model(id).total_bytes() - context.model(id).device_bytes();

  StageDecision decision;  // what P1-P5 read: evictions, F_P, E, W_load and why it stopped
  decision.estimate = reserve_;
  decision.estimate_source = "evict-others-first: fixed reserve (no estimate asked)";
  // Freed tensors stay in PyTorch's cache until empty_cache(): the driver sees them only after it.
  device.empty_cache();
  for (const std::string& id : recently_used_) {
    if (device.mem_get_info().free >= to_load + reserve_) break;
    if (std::find(needed.begin(), needed.end(), id) != needed.end()) continue;
    if (const std::uint64_t freed = context.model(id).unload_all(device, /*copy=*/false)) {
      decision.evictions.push_back({id, freed});
      device.empty_cache();
    }
  }
  const std::uint64_t free = device.mem_get_info().free;
  decision.free_memory = static_cast<std::int64_t>(free);
  decision.stop = free >= to_load + reserve_ ? StopReason::kSatisfied : StopReason::kExhausted;
  for (const std::string& id : needed) {
    const std::optional<std::uint64_t> loaded = context.model(id).load_all(device);  // one allocation per tensor
    if (!loaded) {
      decision.load_oom = device.last_oom();
      return decision;
    }
    decision.weights_loaded += *loaded;
  }
  return decision;
}

void EvictOthersFirst::finish(RunContext& /*context*/, const StageStep& step) {
  // Lazy: the stage's models stay until another stage needs the room; they become the most recently used.
  for (const std::string& id : step.stage->models) {
    std::erase(recently_used_, id);
    recently_used_.push_back(id);
  }
}

ResidencyClaim EvictOthersFirst::residency(const RunContext& context) const {
  ResidencyClaim claim;
  for (const std::string& id : context.model_ids()) {
    (context.model(id).device_bytes() > 0 ? claim.resident_by_design : claim.offloaded).push_back(id);
  }
  return claim;
}

}  // namespace example
