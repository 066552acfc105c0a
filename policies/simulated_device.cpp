#include "offsim/policies/simulated_device.hpp"

#include <sstream>

#include "offsim/policies/out_of_memory.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/snapshot_json.hpp"

namespace offsim::policies {

namespace {

constexpr std::int64_t kMaxRequest = std::int64_t{1} << 60;  // PyTorch refuses 1 EiB and more

std::string hex(std::uint64_t address) {
  std::ostringstream out;
  out << "0x" << std::hex << address;
  return out.str();
}

}  // namespace

SimulatedDevice::SimulatedDevice(sim::DeviceSpec spec, std::string alloc_conf, const sim::VersionProfile& torch)
    : alloc_conf_(std::move(alloc_conf)),
      torch_(&torch),
      backend_(std::move(spec), sim::AllocatorConfig::parse(alloc_conf_, torch), torch) {}

SimulatedDevice::SimulatedDevice(std::shared_ptr<const Scenario> scenario)
    : SimulatedDevice(scenario->device, scenario->alloc_conf, *scenario->torch) {
  scenario_ = std::move(scenario);
  for (const ScenarioModel& m : scenario_->models) add_model(m.id, m.manifest);
  if (!apply_prior_history(backend_, *scenario_, prior_live_)) {
    throw ConfigError("scenario " + scenario_->name + ": the prior history does not fit on the device: " +
                      backend_.last_oom().message);
  }
  for (const std::string& id : scenario_->initially_resident) {
    if (!models_.at(id).load_all(backend_)) {
      throw ConfigError("scenario " + scenario_->name + ": the initially resident models do not fit on the device (" +
                        id + "): " + backend_.last_oom().message);
    }
  }
  // Weights already on the device when the run starts were not moved by anyone.
  for (auto& [id, model] : models_) model.reset_traffic();
}

std::uint64_t SimulatedDevice::malloc(std::int64_t size, sim::StreamId stream) {
  if (size < 0) throw InvalidSizeError("malloc(size=" + std::to_string(size) + "): a size cannot be negative");
  if (size >= kMaxRequest) {
    throw InvalidSizeError("malloc(size=" + std::to_string(size) + "): Tried to allocate more than 1EB memory");
  }
  if (size == 0) return 0;
  tick();
  const auto ptr = backend_.allocate(static_cast<std::uint64_t>(size), stream);
  if (!ptr) throw OutOfMemory(backend_.last_oom());
  live_.insert(*ptr);
  freed_.erase(*ptr);
  return *ptr;
}

void SimulatedDevice::free(std::uint64_t address) {
  if (address == 0) return;  // caching_allocator_delete(0) / raw_delete(nullptr) is a no-op
  if (live_.erase(address) == 0) {
    if (freed_.count(address) != 0) {
      throw DoubleFreeError("free(" + hex(address) + "): double free: this block was freed already");
    }
    throw AllocatorUsageError("free(" + hex(address) +
                              "): not an address malloc returned on this device (model weights are freed by "
                              "unloading their model)");
  }
  tick();
  backend_.free(address);
  freed_.insert(address);
}

void SimulatedDevice::empty_cache() {
  tick();
  backend_.empty_cache();
}

void SimulatedDevice::reset_peak_memory_stats() { backend_.reset_peak_stats(); }

void SimulatedDevice::reset_accumulated_memory_stats() {
  if (backend_.approximate()) {
    throw ConfigError("reset_accumulated_memory_stats(): not modelled under backend:cudaMallocAsync");
  }
  backend_.allocator().reset_accumulated_stats();
}

void SimulatedDevice::set_memory_fraction(double fraction) {
  if (backend_.approximate()) {
    throw ConfigError("set_per_process_memory_fraction(" + std::to_string(fraction) +
                      "): not modelled under backend:cudaMallocAsync");
  }
  backend_.allocator().set_memory_fraction(fraction);
}

std::string SimulatedDevice::snapshot_json() const {
  sim::Trace trace;
  sim::TraceMetadata& m = trace.metadata;
  m.label = spec().name;
  m.alloc_conf = alloc_conf_;
  m.device_total_bytes = spec().total_bytes;
  m.provenance.kind = sim::ProvenanceKind::kSynthetic;
  m.provenance.source = scenario_ ? scenario_->source : "offsim.Device";
  m.provenance.torch_version = torch_->name + " (allocator profile)";
  m.provenance.gpu = spec().name;
  m.provenance.notes = "simulated by offsim (" + backend_.name() + "); time_us is the device call index, not wall time";
  trace.events = backend_.trace();
  trace.final_segments = backend_.segments();
  return sim::snapshot_json_bytes(trace);
}

void SimulatedDevice::allocate_outside(const std::string& label, std::int64_t bytes) {
  if (bytes < 0) {
    throw InvalidSizeError("allocate_outside(\"" + label + "\", " + std::to_string(bytes) + "): a size cannot be negative");
  }
  if (outside_.count(label) != 0) {
    throw AllocatorUsageError("allocate_outside(\"" + label + "\"): this label holds memory already");
  }
  if (!backend_.device().allocate_external(label, static_cast<std::uint64_t>(bytes))) {
    throw OutOfMemory(outside_allocator_oom(label, static_cast<std::uint64_t>(bytes), backend_));
  }
  outside_[label] = static_cast<std::uint64_t>(bytes);
}

void SimulatedDevice::free_outside(const std::string& label) {
  if (outside_.erase(label) == 0) {
    throw AllocatorUsageError("free_outside(\"" + label + "\"): no memory is held under this label");
  }
  backend_.device().free_external(label);
}

ModelWeights SimulatedDevice::add_model(const std::string& id, std::shared_ptr<const ModelManifest> manifest) {
  if (models_.count(id) != 0) throw AllocatorUsageError("add_model(\"" + id + "\"): a model with this id exists already");
  manifests_[id] = manifest;
  auto [it, inserted] = models_.emplace(id, ResidentModel(*manifest));
  return ModelWeights(id, it->second, backend_);
}

ModelWeights SimulatedDevice::model(const std::string& id) {
  auto it = models_.find(id);
  if (it == models_.end()) {
    std::string known;
    for (const auto& [name, m] : models_) known += (known.empty() ? "" : ", ") + name;
    throw AllocatorUsageError("model(\"" + id + "\"): no such model (known: " + (known.empty() ? "none" : known) + ")");
  }
  return ModelWeights(id, it->second, backend_);
}

std::vector<std::string> SimulatedDevice::model_ids() const {
  std::vector<std::string> out;
  for (const auto& [id, m] : models_) out.push_back(id);
  return out;
}

WorkingMemoryOutcome SimulatedDevice::run_working_memory(const sim::Trace& trace, std::uint64_t extra) {
  tick();
  WorkingMemoryOutcome out = policies::run_working_memory(backend_, trace, extra);
  if (out.oom) throw OutOfMemory(*out.oom);
  return out;
}

WorkingMemoryOutcome SimulatedDevice::run_stage(const std::string& name) {
  if (!scenario_) throw ConfigError("run_stage(\"" + name + "\"): this device was not made from a scenario");
  const Stage* stage = nullptr;
  std::string known;
  for (const Stage& s : scenario_->stages) {
    if (s.name == name) stage = &s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  if (stage == nullptr) {
    throw ConfigError("run_stage(\"" + name + "\"): scenario " + scenario_->name + " has no such stage (stages: " + known + ")");
  }
  // As runner.cpp: the driver hands out the first run's outside memory when the stage's kernels first
  // need it, after the policy decided, and the process keeps it.
  const bool first_run = stages_run_.insert(name).second;
  if (stage->first_run_outside_allocator && first_run) {
    const Stage::OutsideAllocator& outside = *stage->first_run_outside_allocator;
    if (!backend_.device().allocate_external(outside.label, outside.bytes)) {
      throw OutOfMemory(outside_allocator_oom(outside.label, outside.bytes, backend_));
    }
  }
  if (!stage->working_memory) return {};
  return run_working_memory(*stage->working_memory->trace);
}

}  // namespace offsim::policies
