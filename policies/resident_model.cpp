#include "offsim/policies/resident_model.hpp"

namespace offsim::policies {

ResidentModel::ResidentModel(const ModelManifest& manifest)
    : manifest_(&manifest), addresses_(manifest.tensors.size(), 0) {}

bool ResidentModel::load(MemoryBackend& backend, std::size_t tensor) {
  if (addresses_[tensor] != 0) return true;
  const std::uint64_t bytes = manifest_->tensors[tensor].bytes;
  const std::optional<std::uint64_t> ptr = backend.allocate(bytes);
  if (!ptr) return false;
  addresses_[tensor] = *ptr;
  device_bytes_ += bytes;
  h2d_ += bytes;
  return true;
}

void ResidentModel::unload(MemoryBackend& backend, std::size_t tensor, bool copy) {
  if (addresses_[tensor] == 0) return;
  const std::uint64_t bytes = manifest_->tensors[tensor].bytes;
  backend.free(addresses_[tensor]);
  addresses_[tensor] = 0;
  device_bytes_ -= bytes;
  unloaded_ += bytes;
  if (copy) d2h_ += bytes;
}

std::optional<std::uint64_t> ResidentModel::load_where(MemoryBackend& backend,
                                                       const std::function<bool(const TensorSpec&)>& select) {
  std::uint64_t loaded = 0;
  for (std::size_t i = 0; i < addresses_.size(); ++i) {
    if (addresses_[i] != 0 || !select(manifest_->tensors[i])) continue;
    if (!load(backend, i)) return std::nullopt;
    loaded += manifest_->tensors[i].bytes;
  }
  return loaded;
}

std::uint64_t ResidentModel::unload_where(MemoryBackend& backend, const std::function<bool(const TensorSpec&)>& select,
                                          bool copy) {
  std::uint64_t freed = 0;
  for (std::size_t i = 0; i < addresses_.size(); ++i) {
    if (addresses_[i] == 0 || !select(manifest_->tensors[i])) continue;
    freed += manifest_->tensors[i].bytes;
    unload(backend, i, copy);
  }
  return freed;
}

std::optional<std::uint64_t> ResidentModel::load_all(MemoryBackend& backend) {
  return load_where(backend, [](const TensorSpec&) { return true; });
}

std::uint64_t ResidentModel::unload_all(MemoryBackend& backend, bool copy) {
  return unload_where(backend, [](const TensorSpec&) { return true; }, copy);
}

std::optional<std::uint64_t> ResidentModel::load_up_to(MemoryBackend& backend, std::int64_t budget) {
  std::uint64_t loaded = 0;
  for (std::size_t i = 0; i < addresses_.size(); ++i) {
    if (addresses_[i] != 0) continue;
    const std::uint64_t bytes = manifest_->tensors[i].bytes;
    if (static_cast<std::int64_t>(loaded + bytes) > budget) continue;  // smaller later tensors may fit
    if (!load(backend, i)) return std::nullopt;
    loaded += bytes;
  }
  return loaded;
}

std::uint64_t ResidentModel::unload_at_least(MemoryBackend& backend, std::int64_t bytes, bool copy) {
  std::uint64_t freed = 0;
  for (std::size_t i = 0; i < addresses_.size(); ++i) {
    if (static_cast<std::int64_t>(freed) >= bytes) break;
    if (addresses_[i] == 0) continue;
    freed += manifest_->tensors[i].bytes;
    unload(backend, i, copy);
  }
  return freed;
}

}  // namespace offsim::policies
