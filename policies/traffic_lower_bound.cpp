#include "offsim/policies/traffic_lower_bound.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace offsim::policies {

std::uint64_t peak_allocated_bytes(const sim::Trace& trace) {
  std::unordered_map<std::uint64_t, std::uint64_t> live;  // handle -> size
  std::uint64_t current = 0, peak = 0;
  for (const sim::TraceEvent& e : trace.events) {
    if (e.action == sim::TraceAction::kAlloc) {
      live[e.addr] = e.size;
      current += e.size;
      peak = std::max(peak, current);
    } else if (e.action == sim::TraceAction::kFreeRequested) {
      auto it = live.find(e.addr);
      if (it == live.end()) continue;
      current -= it->second;
      live.erase(it);
    }
  }
  return peak;
}

TrafficLowerBound traffic_lower_bound(const Scenario& scenario, int calls) {
  if (calls <= 0) calls = scenario.calls;
  TrafficLowerBound bound;
  const std::set<std::string> resident(scenario.initially_resident.begin(), scenario.initially_resident.end());
  std::map<std::string, std::uint64_t> bytes;
  for (const ScenarioModel& m : scenario.models) bytes[m.id] = m.manifest->total_bytes;

  // The run as a sequence of stage occurrences; which occurrences use each model.
  std::vector<std::size_t> occurrence_stage;
  for (int c = 0; c < calls; ++c) {
    for (std::size_t s = 0; s < scenario.stages.size(); ++s) occurrence_stage.push_back(s);
  }
  std::map<std::string, std::vector<std::size_t>> uses;
  for (std::size_t k = 0; k < occurrence_stage.size(); ++k) {
    for (const std::string& id : scenario.stages[occurrence_stage[k]].models) {
      auto& u = uses[id];
      if (u.empty() || u.back() != k) u.push_back(k);
    }
  }
  for (const auto& [id, u] : uses) {
    if (!u.empty() && !resident.count(id)) bound.compulsory += bytes[id];
  }

  const std::uint64_t overhead = scenario.device.context_bytes + scenario.device.other_process_bytes;
  const std::uint64_t capacity = scenario.device.total_bytes > overhead ? scenario.device.total_bytes - overhead : 0;
  for (std::size_t k = 0; k < occurrence_stage.size(); ++k) {
    const Stage& stage = scenario.stages[occurrence_stage[k]];
    std::uint64_t largest_tensor = 0;
    for (const std::string& id : stage.models) {
      for (const TensorSpec& t : scenario.model(id).manifest->tensors) {
        largest_tensor = std::max(largest_tensor, t.bytes);
      }
    }
    const std::uint64_t activations = stage.working_memory ? peak_allocated_bytes(*stage.working_memory->trace) : 0;
    const std::uint64_t need = std::max(activations, largest_tensor);
    const std::uint64_t room = capacity > need ? capacity - need : 0;
    std::uint64_t live = 0;
    for (const auto& [id, u] : uses) {
      if (std::find(stage.models.begin(), stage.models.end(), id) != stage.models.end()) continue;
      const bool before = resident.count(id) > 0 || u.front() < k;
      const bool after = u.back() > k;
      if (before && after) live += bytes[id];
    }
    if (live > room && live - room > bound.reload) {
      bound.reload = live - room;
      bound.reload_at = "call " + std::to_string(k / scenario.stages.size() + 1) + ", stage \"" + stage.name + "\"";
    }
  }
  return bound;
}

}  // namespace offsim::policies
