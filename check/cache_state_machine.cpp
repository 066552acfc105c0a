#include "offsim/check/cache_state_machine.hpp"

#include <numeric>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::check {

using policies::make_policy;
using policies::ScenarioModel;
using policies::StageKind;

namespace {

constexpr std::uint64_t kDevice = 8 * GiB;
// Segments round every tensor up to 2 MiB; tensors here are whole multiples, but cached free pieces and
// the small pool can still hold a few MiB: "fits" keeps this much slack.
constexpr std::uint64_t kSlack = 256 * MiB;

std::shared_ptr<ModelManifest> manifest(const std::string& name, int tensors, std::uint64_t tensor_bytes) {
  auto m = std::make_shared<ModelManifest>();
  m->name = name;
  m->pipeline = "synthetic";
  m->component = name;
  m->dtype = "bf16";
  for (int i = 0; i < tensors; ++i) {
    m->tensors.push_back({name + ".w" + std::to_string(i), tensor_bytes, -1, -1, ""});
    m->total_bytes += tensor_bytes;
  }
  return m;
}

const Stage& stage_of(const CacheSut& sut, int model) { return sut.scenario->stages[static_cast<std::size_t>(model)]; }

void prepare(CacheSut& sut, int model) {
  const StageDecision d = sut.policy->prepare(*sut.context, {&stage_of(sut, model), 0, 0});
  // P1 on every decision that stopped as satisfied (per model where the policy decides model by model).
  const auto slack = static_cast<std::int64_t>(sut.policy->info().p1_slack);
  for (const policies::LoadDecision& load : policies::free_memory_decisions(d)) {
    if (load.stop == StopReason::kSatisfied) {
      RC_ASSERT(load.free_memory + slack >= static_cast<std::int64_t>(load.estimate + load.weights_loaded));
    }
  }
}

}  // namespace

std::shared_ptr<Scenario> cache_test_scenario() {
  auto s = std::make_shared<Scenario>();
  s->name = "cache state machine";
  s->device.name = "8 GiB test device";
  s->device.total_bytes = kDevice;
  const std::vector<std::pair<std::string, std::pair<int, std::uint64_t>>> models = {
      {"a", {12, 256 * MiB}}, {"b", {6, 256 * MiB}}, {"c", {16, 32 * MiB}}, {"d", {10, 384 * MiB}}};
  for (const auto& [id, shape] : models) {
    s->models.push_back({id, "synthetic", manifest(id, shape.first, shape.second)});
    Stage stage;
    stage.name = "use_" + id;
    stage.kind = StageKind::kOther;
    stage.models = {id};
    s->stages.push_back(stage);
  }
  return s;
}

std::unique_ptr<CacheSut> make_cache_sut(const std::string& policy_id, bool locks_hold, std::uint64_t working_memory) {
  auto sut = std::make_unique<CacheSut>();
  sut->policy_id = policy_id;
  sut->locks_hold = locks_hold;
  sut->working_memory = working_memory;
  sut->scenario = cache_test_scenario();
  sut->backend = std::make_unique<SimBackend>(sut->scenario->device, sim::AllocatorConfig::parse(""));
  sut->context = std::make_unique<RunContext>(*sut->scenario, *sut->backend);
  sut->policy = make_policy(policy_id);
  sut->policy->begin_run(*sut->context);
  return sut;
}

CacheModel initial_model(const CacheSut& sut) {
  CacheModel m;
  for (const ScenarioModel& model : sut.scenario->models) m.sizes.push_back(model.manifest->total_bytes);
  m.working_memory = sut.working_memory;
  m.locks_hold = sut.locks_hold;
  m.locks.assign(m.sizes.size(), 0);
  m.full.assign(m.sizes.size(), false);
  return m;
}

void CacheModel::on_request(int model) {
  const auto i = static_cast<std::size_t>(model);
  ++locks[i];
  latest = model;
  if (!locks_hold) std::fill(full.begin(), full.end(), false);
  std::uint64_t held = 0;
  for (std::size_t k = 0; k < locks.size(); ++k) {
    if (locks_hold ? locks[k] > 0 : k == i) held += sizes[k];
  }
  full[i] = full[i] || held + working_memory + kSlack <= kDevice;
}

void check_cache_invariants(const CacheModel& model, CacheSut& sut) {
  // Weights are the only allocations: they account for every allocated byte.
  std::uint64_t weights = sut.context->buffer_bytes();
  for (const ScenarioModel& m : sut.scenario->models) weights += sut.context->model(m.id).device_bytes();
  RC_ASSERT(weights == sut.backend->stats().allocated);
  // A model promised fully resident is.
  for (std::size_t i = 0; i < model.full.size(); ++i) {
    if (model.full[i]) RC_ASSERT(sut.context->model(sut.scenario->models[i].id).fully_resident());
  }
  // What the cache says is offloaded holds nothing.
  for (const std::string& id : sut.policy->residency(*sut.context).offloaded) {
    RC_ASSERT(sut.context->model(id).device_bytes() == 0u);
  }
}

Lock::Lock(const CacheModel& m) : model(*rc::gen::inRange(0, static_cast<int>(m.locks.size()))) {}
void Lock::apply(CacheModel& m) const { m.on_request(model); }
void Lock::run(const CacheModel& m, CacheSut& sut) const {
  prepare(sut, model);
  check_cache_invariants(nextState(m), sut);
}
void Lock::show(std::ostream& os) const { os << "Lock(" << static_cast<char>('a' + model) << ")"; }

Unlock::Unlock(const CacheModel& m) {
  std::vector<int> held;
  for (std::size_t i = 0; i < m.locks.size(); ++i) {
    if (m.locks[i] > 0) held.push_back(static_cast<int>(i));
  }
  model = held.empty() ? 0 : *rc::gen::elementOf(held);
}
void Unlock::checkPreconditions(const CacheModel& m) const { RC_PRE(m.locks[static_cast<std::size_t>(model)] > 0); }
void Unlock::apply(CacheModel& m) const {
  const auto i = static_cast<std::size_t>(model);
  --m.locks[i];
  // Unlocked models may be evicted by later requests; without locks the promise ends with the next request.
  if (m.locks_hold && m.locks[i] == 0) m.full[i] = false;
}
void Unlock::run(const CacheModel& m, CacheSut& sut) const {
  sut.policy->finish(*sut.context, {&stage_of(sut, model), 0, 0});
  check_cache_invariants(nextState(m), sut);
}
void Unlock::show(std::ostream& os) const { os << "Unlock(" << static_cast<char>('a' + model) << ")"; }

Request::Request(const CacheModel& m) : model(*rc::gen::inRange(0, static_cast<int>(m.locks.size()))) {}
void Request::apply(CacheModel& m) const {
  m.on_request(model);
  --m.locks[static_cast<std::size_t>(model)];
  if (m.locks_hold && m.locks[static_cast<std::size_t>(model)] == 0) m.full[static_cast<std::size_t>(model)] = false;
}
void Request::run(const CacheModel& m, CacheSut& sut) const {
  CacheModel during = m;
  during.on_request(model);
  prepare(sut, model);
  check_cache_invariants(during, sut);
  sut.policy->finish(*sut.context, {&stage_of(sut, model), 0, 0});
  check_cache_invariants(nextState(m), sut);
}
void Request::show(std::ostream& os) const { os << "Request(" << static_cast<char>('a' + model) << ")"; }

void RepeatCall::checkPreconditions(const CacheModel& m) const {
  // A pipeline call runs between requests, not inside one.
  RC_PRE(std::accumulate(m.locks.begin(), m.locks.end(), 0) == 0);
}
void RepeatCall::apply(CacheModel& m) const {
  for (std::size_t i = 0; i < m.locks.size(); ++i) {
    m.on_request(static_cast<int>(i));
    --m.locks[i];
    if (m.locks_hold) m.full[i] = false;
  }
}
void RepeatCall::run(const CacheModel& m, CacheSut& sut) const {
  CacheModel during = m;
  for (std::size_t i = 0; i < m.locks.size(); ++i) {
    during.on_request(static_cast<int>(i));
    prepare(sut, static_cast<int>(i));
    check_cache_invariants(during, sut);
    sut.policy->finish(*sut.context, {&stage_of(sut, static_cast<int>(i)), 0, 0});
    --during.locks[i];
    if (during.locks_hold) during.full[i] = false;
  }
  sut.policy->end_call(*sut.context, 0);
  check_cache_invariants(nextState(m), sut);
}

void EmptyCache::run(const CacheModel& m, CacheSut& sut) const {
  sut.backend->empty_cache();
  check_cache_invariants(m, sut);
}

void check_cache_sequence(const std::string& policy_id, bool locks_hold, std::uint64_t working_memory) {
  auto sut = make_cache_sut(policy_id, locks_hold, working_memory);
  rc::state::check(initial_model(*sut), *sut,
                   rc::state::gen::execOneOfWithArgs<Lock, Unlock, Request, RepeatCall, EmptyCache>());
}

}  // namespace offsim::check
