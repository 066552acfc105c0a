// Built only against a CUDA libtorch (real/CMakeLists.txt). The calls are the ones PyTorch's own Python
// API makes: torch.cuda.caching_allocator_alloc/delete (raw_alloc_with_stream / raw_delete),
// torch.cuda.memory_stats (getDeviceStats), torch.cuda.empty_cache, reset_peak_memory_stats, and
// torch.cuda.mem_get_info (cudaMemGetInfo). They exist with these names from libtorch 1.13 to 2.11; types
// that changed between them (DeviceStats moved to c10::CachingDeviceAllocator) are only used through auto.
#include "offsim/real/cuda_backend.hpp"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {

namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;

constexpr std::size_t kAggregate = 0;  // StatType::AGGREGATE in every version

std::uint64_t u64(std::int64_t v) { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }

}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  C10_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) {
    throw ConfigError("CudaBackend: device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                      " CUDA devices)");
  }
}

CudaBackend::~CudaBackend() {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_));
  for (std::uint64_t address : live_) alloc::raw_delete(reinterpret_cast<void*>(address));
}

std::optional<std::uint64_t> CudaBackend::allocate(std::uint64_t bytes, policies::StreamId stream) {
  const auto index = static_cast<c10::DeviceIndex>(device_);
  const c10::cuda::CUDAGuard guard(index);
  auto it = streams_.find(stream);
  if (it == streams_.end()) {
    // Stream 0 is the default stream, as in the simulator; each other id gets its own pool stream.
    const c10::cuda::CUDAStream s =
        stream == 0 ? c10::cuda::getDefaultCUDAStream(index) : c10::cuda::getStreamFromPool(false, index);
    it = streams_.emplace(stream, static_cast<void*>(s.stream())).first;
  }
  try {
    void* p = alloc::raw_alloc_with_stream(bytes, static_cast<cudaStream_t>(it->second));
    const auto address = reinterpret_cast<std::uint64_t>(p);
    live_.insert(address);
    return address;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // c10::OutOfMemoryError (CUDAOutOfMemoryError before 2.1) derives from c10::Error; anything else is
    // not an OOM and goes to the caller.
    if (what.find("out of memory") == std::string::npos) throw;
    const policies::MemoryStats s = stats();
    last_oom_ = policies::OomReport{};
    last_oom_.requested = bytes;
    last_oom_.message = what.substr(0, what.find('\n'));
    last_oom_.device_free = mem_get_info().free;
    last_oom_.reserved = s.reserved;
    last_oom_.allocated = s.allocated;
    // stranded / largest_free_cached_block stay 0: the segment snapshot's C++ shape differs between
    // versions, and diagnosis uses the simulator's segment map.
    return std::nullopt;
  }
}

void CudaBackend::free(std::uint64_t address) {
  if (live_.erase(address) == 0) {
    throw AllocatorUsageError("CudaBackend::free: address " + std::to_string(address) +
                              " was not allocated through this backend (or was freed already)");
  }
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_));
  alloc::raw_delete(reinterpret_cast<void*>(address));
}

policies::MemInfo CudaBackend::mem_get_info() const {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_));
  std::size_t free = 0, total = 0;
  C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return {free, total};
}

policies::MemoryStats CudaBackend::stats() const {
  const auto s = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device_));
  policies::MemoryStats out;
  out.allocated = u64(s.allocated_bytes[kAggregate].current);
  out.reserved = u64(s.reserved_bytes[kAggregate].current);
  out.active = u64(s.active_bytes[kAggregate].current);
  out.peak_allocated = u64(s.allocated_bytes[kAggregate].peak);
  out.peak_reserved = u64(s.reserved_bytes[kAggregate].peak);
  out.num_ooms = u64(s.num_ooms);
  return out;
}

void CudaBackend::empty_cache() {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_));
  alloc::emptyCache();
}

void CudaBackend::reset_peak_stats() { alloc::resetPeakStats(static_cast<c10::DeviceIndex>(device_)); }

const policies::OomReport& CudaBackend::last_oom() const { return last_oom_; }

std::string CudaBackend::name() const {
  cudaDeviceProp prop{};
  C10_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  return std::string("cuda:") + prop.name + " (libtorch " + TORCH_VERSION + ", " +
         format_bytes(mem_get_info().total) + ")";
}

}  // namespace offsim::real
