// A model's weights on one device as a Python cache moves them: the ResidentModel (which tensors are on the
// device) bound to the backend they live on, with moves that raise OutOfMemory where the device would, as
// `module.to(device)` raises torch.cuda.OutOfMemoryError. The Python stand-in models of the `offsim` module
// are this and nothing else, whether they run on a SimulatedDevice or inside a run of the runner.
#pragma once

#include <cstdint>
#include <string>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/policies/resident_model.hpp"

namespace offsim::policies {

class ModelWeights {
 public:
  /// Both must outlive this object.
  ModelWeights(std::string id, ResidentModel& model, MemoryBackend& backend)
      : id_(std::move(id)), model_(&model), backend_(&backend) {}

  const std::string& id() const { return id_; }
  const ModelManifest& manifest() const { return model_->manifest(); }
  std::uint64_t total_bytes() const { return model_->total_bytes(); }
  std::uint64_t device_bytes() const { return model_->device_bytes(); }
  bool on_device(std::size_t tensor) const;

  /// Every tensor not yet on the device, one allocation each in state-dict order. Throws OutOfMemory at the
  /// first that does not fit; the ones before it stay on the device (as after a failed `.to(device)`).
  std::uint64_t load_all();
  /// Every tensor on the device back to the host. `copy`: the bytes cross PCIe (false when a host copy
  /// was kept and unloading is a pointer swap). Returns the bytes freed.
  std::uint64_t unload_all(bool copy = true);
  /// ResidentModel::load_up_to, throwing OutOfMemory; a negative budget loads nothing.
  std::uint64_t load_up_to(std::int64_t budget);
  /// ResidentModel::unload_at_least.
  std::uint64_t unload_at_least(std::int64_t bytes, bool copy = true);
  /// One tensor (an index into the manifest's tensors). Throws OutOfMemory, or AllocatorUsageError naming
  /// the call for an index out of range. Returns the bytes moved (0 when it was there already).
  std::uint64_t load_tensor(std::size_t tensor);
  std::uint64_t unload_tensor(std::size_t tensor, bool copy = true);

 private:
  void check_index(const char* call, std::size_t tensor) const;
  [[noreturn]] void throw_oom() const;

  std::string id_;
  ResidentModel* model_;
  MemoryBackend* backend_;
};

}  // namespace offsim::policies
