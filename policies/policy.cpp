#include "offsim/policies/policy.hpp"

#include "offsim/sim/errors.hpp"

namespace offsim::policies {

std::string_view to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kSatisfied: return "satisfied";
    case StopReason::kExhausted: return "exhausted";
    case StopReason::kNotApplicable: return "n/a";
  }
  return "n/a";
}

std::vector<LoadDecision> free_memory_decisions(const StageDecision& d) {
  if (!d.loads.empty()) return d.loads;
  if (!d.free_memory || !d.estimate) return {};
  return {LoadDecision{"", *d.free_memory, *d.estimate, d.weights_loaded, d.stop, d.evictions.size()}};
}

RunContext::RunContext(const Scenario& scenario, MemoryBackend& backend) : scenario_(&scenario), backend_(&backend) {
  for (const ScenarioModel& m : scenario.models) models_.emplace(m.id, ResidentModel(*m.manifest));
}

ResidentModel& RunContext::model(const std::string& id) {
  auto it = models_.find(id);
  if (it == models_.end()) throw ConfigError("scenario \"" + scenario_->name + "\" has no model \"" + id + "\"");
  return it->second;
}

const ResidentModel& RunContext::model(const std::string& id) const {
  return const_cast<RunContext*>(this)->model(id);
}

std::vector<std::string> RunContext::model_ids() const {
  std::vector<std::string> ids;
  for (const ScenarioModel& m : scenario_->models) ids.push_back(m.id);
  return ids;
}

const nlohmann::json& RunContext::settings(const std::string& family) const {
  static const nlohmann::json empty = nlohmann::json::object();
  auto it = scenario_->policy_settings.find(family);
  return it == scenario_->policy_settings.end() ? empty : *it;
}

std::optional<std::uint64_t> RunContext::allocate_buffer(const std::string& label, std::uint64_t bytes) {
  auto ptr = backend_->allocate(bytes);
  if (ptr) {
    buffers_.emplace(label, *ptr);
    buffer_sizes_[*ptr] = bytes;
  }
  return ptr;
}

void RunContext::free_buffers(const std::string& label) {
  auto [begin, end] = buffers_.equal_range(label);
  for (auto it = begin; it != end; ++it) {
    backend_->free(it->second);
    buffer_sizes_.erase(it->second);
  }
  buffers_.erase(begin, end);
}

std::uint64_t RunContext::buffer_bytes() const {
  std::uint64_t sum = 0;
  for (const auto& [ptr, bytes] : buffer_sizes_) sum += bytes;
  return sum;
}

}  // namespace offsim::policies
