// MemoryBackend over the real c10 CUDA caching allocator (the second implementation beside SimBackend),
// so the same C++ policies run on a GPU. Built only against a CUDA libtorch (OFFSIM_HAVE_TORCH_CUDA); no
// CUDA header leaks into this one, so callers stay torch-free. HIP-clean: it uses the c10 allocator API
// that libtorch's ROCm build maps onto HIP, nothing CUDA-specific beyond cudaMemGetInfo.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "offsim/policies/memory_backend.hpp"

namespace offsim::real {

class CudaBackend final : public policies::MemoryBackend {
 public:
  /// Uses `device`'s caching allocator as the process has it (whatever PYTORCH_CUDA_ALLOC_CONF said).
  explicit CudaBackend(int device = 0);
  /// Frees every block still held through this backend.
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::optional<std::uint64_t> allocate(std::uint64_t bytes, policies::StreamId stream = 0) override;
  void free(std::uint64_t address) override;
  policies::MemInfo mem_get_info() const override;
  policies::MemoryStats stats() const override;
  void empty_cache() override;
  void reset_peak_stats() override;
  const policies::OomReport& last_oom() const override;
  std::string name() const override;

 private:
  int device_;
  std::set<std::uint64_t> live_;
  std::map<policies::StreamId, void*> streams_;  // offsim stream id -> cudaStream_t from c10's pool
  policies::OomReport last_oom_;
};

}  // namespace offsim::real
