// Which of a model's tensors are on the device, and the traffic it took to put them there. Moving a
// tensor to the GPU is one allocation of its bytes (as `param.data = param.to(device)` is); moving it
// back frees that allocation.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/policies/model_manifest.hpp"

namespace offsim::policies {

class ResidentModel {
 public:
  explicit ResidentModel(const ModelManifest& manifest);

  const ModelManifest& manifest() const { return *manifest_; }
  std::uint64_t total_bytes() const { return manifest_->total_bytes; }
  std::uint64_t device_bytes() const { return device_bytes_; }
  bool fully_resident() const { return device_bytes_ == manifest_->total_bytes; }
  bool on_device(std::size_t tensor) const { return addresses_[tensor] != 0; }

  /// Moves one tensor to the device. Returns false (and leaves it on the host) when the backend runs
  /// out of memory; the OOM stays in backend.last_oom().
  bool load(MemoryBackend& backend, std::size_t tensor);
  /// Moves one tensor back to the host. `copy` says whether bytes cross PCIe (false when the host copy
  /// was kept and unloading is a pointer swap, as with InvokeAI's keep_ram_copy and LightX2V #476).
  void unload(MemoryBackend& backend, std::size_t tensor, bool copy);

  /// Loads every tensor `select` accepts, in state-dict order. Returns the bytes loaded, or nullopt at
  /// the first OOM (tensors loaded before it stay loaded, as after a failed `.to(device)`).
  std::optional<std::uint64_t> load_where(MemoryBackend& backend, const std::function<bool(const TensorSpec&)>& select);
  std::uint64_t unload_where(MemoryBackend& backend, const std::function<bool(const TensorSpec&)>& select, bool copy);
  std::optional<std::uint64_t> load_all(MemoryBackend& backend);
  std::uint64_t unload_all(MemoryBackend& backend, bool copy);

  /// Partial load by tensor, in state-dict order, within `budget` bytes: a tensor that would exceed it is
  /// skipped and later, smaller ones are still tried (InvokeAI's CachedModelWithPartialLoad
  /// .partial_load_to_vram). Returns the bytes loaded, or nullopt at the first OOM (tensors loaded before
  /// it stay loaded).
  std::optional<std::uint64_t> load_up_to(MemoryBackend& backend, std::int64_t budget);
  /// Partial unload in state-dict order until at least `bytes` are freed, or the whole model
  /// (.partial_unload_from_vram). Returns the bytes freed.
  std::uint64_t unload_at_least(MemoryBackend& backend, std::int64_t bytes, bool copy);

  /// Forget the traffic so far (weights that were on the device before the run started).
  void reset_traffic() { h2d_ = d2h_ = unloaded_ = 0; }
  /// Bytes moved off the device, copied or not (evictions and scheduled offloads).
  std::uint64_t bytes_unloaded() const { return unloaded_; }
  std::uint64_t bytes_to_device() const { return h2d_; }
  std::uint64_t bytes_to_host() const { return d2h_; }

 private:
  const ModelManifest* manifest_;
  std::vector<std::uint64_t> addresses_;  // 0 = on the host
  std::uint64_t device_bytes_ = 0;
  std::uint64_t h2d_ = 0;
  std::uint64_t d2h_ = 0;
  std::uint64_t unloaded_ = 0;
};

}  // namespace offsim::policies
