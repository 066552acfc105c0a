// The simulated GPU a real Python cache runs against (the `offsim` module's Device, behind its virtual
// CUDA): the device as its driver reports it, PyTorch's caching allocator with a PYTORCH_CUDA_ALLOC_CONF and a
// torch version profile, memory outside the allocator, the models of a scenario, and the answers torch.cuda
// gives about all of it. Misuse that PyTorch would reject (a negative size, a double free, an address it
// never handed out) throws a typed error naming the call; an allocation that does not fit throws
// OutOfMemory with PyTorch's message. Nothing here aborts.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "offsim/policies/model_weights.hpp"
#include "offsim/policies/resident_model.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/policies/sim_backend.hpp"
#include "offsim/policies/working_memory_run.hpp"
#include "offsim/sim/device_stats.hpp"

namespace offsim::policies {

class SimulatedDevice {
 public:
  /// Throws ConfigError for a bad device (capacity 0, context larger than the card) or allocator settings.
  SimulatedDevice(sim::DeviceSpec spec, std::string alloc_conf = "",
                  const sim::VersionProfile& torch = sim::VersionProfile::newest());
  /// The scenario's device, settings and profile with its models, set up as the runner starts a run: the
  /// prior history first, then the initially resident models. Throws ConfigError when those do not fit.
  explicit SimulatedDevice(std::shared_ptr<const Scenario> scenario);
  SimulatedDevice(const SimulatedDevice&) = delete;
  SimulatedDevice& operator=(const SimulatedDevice&) = delete;

  const sim::DeviceSpec& spec() const { return backend_.device().spec(); }
  const std::string& alloc_conf() const { return alloc_conf_; }
  const sim::VersionProfile& torch() const { return *torch_; }
  const Scenario* scenario() const { return scenario_.get(); }
  MemoryBackend& backend() { return backend_; }

  /// torch.cuda.caching_allocator_alloc(size, stream): the block's address (0 for size 0). Throws
  /// InvalidSizeError for a negative size or one of 1 EiB and more, OutOfMemory when it does not fit.
  std::uint64_t malloc(std::int64_t size, sim::StreamId stream = 0);
  /// torch.cuda.caching_allocator_delete(address); 0 does nothing. Throws DoubleFreeError for a block freed
  /// already, AllocatorUsageError for an address malloc never returned (model weights are freed by
  /// unloading their model).
  void free(std::uint64_t address);
  /// torch.cuda.empty_cache()
  void empty_cache();
  /// torch.cuda.mem_get_info(): (free, total) as the driver reports them.
  sim::MemInfo mem_get_info() const { return backend_.mem_get_info(); }
  /// Every counter of torch.cuda.memory_stats() (memory_allocated() is allocated_bytes.all.current, ...).
  sim::DeviceStats stats() const { return *backend_.device_stats(); }
  void reset_peak_memory_stats();
  /// Throws ConfigError under backend:cudaMallocAsync, whose pool model keeps no accumulated counters.
  void reset_accumulated_memory_stats();
  /// torch.cuda.set_per_process_memory_fraction. Throws AllocatorUsageError outside [0, 1], ConfigError under
  /// backend:cudaMallocAsync.
  void set_memory_fraction(double fraction);
  /// torch.cuda.memory._snapshot() as the JSON text of the snapshot document (segments, device_traces with
  /// every allocator event since the device was made, allocator_settings): what memory_viz opens.
  std::string snapshot_json() const;

  /// Memory the process takes outside the allocator (a cuDNN workspace, kernel modules), under `label`.
  /// Throws OutOfMemory with CUDA's "out of memory" error when the driver has not that much free,
  /// InvalidSizeError for a negative size, AllocatorUsageError when the label is held already.
  void allocate_outside(const std::string& label, std::int64_t bytes);
  /// Throws AllocatorUsageError for a label that holds nothing.
  void free_outside(const std::string& label);
  std::uint64_t outside_bytes() const { return backend_.device().external_bytes(); }

  /// A model from its weight manifest, on the host. Throws AllocatorUsageError when the id is taken.
  ModelWeights add_model(const std::string& id, std::shared_ptr<const ModelManifest> manifest);
  /// Throws AllocatorUsageError listing the known ids.
  ModelWeights model(const std::string& id);
  std::vector<std::string> model_ids() const;

  /// A working-memory trace on this device (run_working_memory). Throws OutOfMemory at its unhandled OOM,
  /// after releasing what it allocated.
  WorkingMemoryOutcome run_working_memory(const sim::Trace& trace, std::uint64_t extra = 0);
  /// One step of the scenario's stage `name`, as the runner runs it after the policy decided: memory its
  /// first run takes outside the allocator, then its working memory (none: nothing). Throws OutOfMemory,
  /// ConfigError for an unknown stage or a device made without a scenario.
  WorkingMemoryOutcome run_stage(const std::string& name);

 private:
  void tick() { backend_.set_time_us(calls_++); }

  std::shared_ptr<const Scenario> scenario_;
  std::string alloc_conf_;
  const sim::VersionProfile* torch_;
  SimBackend backend_;
  std::map<std::string, std::shared_ptr<const ModelManifest>> manifests_;
  std::map<std::string, ResidentModel> models_;
  std::unordered_set<std::uint64_t> live_;   // addresses malloc handed out, not freed
  std::unordered_set<std::uint64_t> freed_;  // addresses freed and not handed out again
  std::unordered_map<std::uint64_t, std::uint64_t> prior_live_;
  std::set<std::string> stages_run_;
  std::map<std::string, std::uint64_t> outside_;
  std::int64_t calls_ = 0;
};

}  // namespace offsim::policies
