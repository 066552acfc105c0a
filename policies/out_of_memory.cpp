#include "offsim/policies/out_of_memory.hpp"

#include "offsim/sim/bytes.hpp"

namespace offsim::policies {

OomReport outside_allocator_oom(const std::string& label, std::uint64_t bytes, const MemoryBackend& backend) {
  // cudaMalloc outside the caching allocator fails with cudaErrorMemoryAllocation, which C10_CUDA_CHECK
  // reports as "CUDA error: out of memory"; what was being allocated is offsim's addition.
  OomReport oom;
  oom.requested = bytes;
  oom.device_free = backend.mem_get_info().free;
  const MemoryStats s = backend.stats();
  oom.reserved = s.reserved;
  oom.allocated = s.allocated;
  oom.message = "CUDA error: out of memory (" + label + ": " + format_bytes(bytes) +
                " outside PyTorch's allocator, on the stage's first run; the driver had " + format_bytes(oom.device_free) +
                " free)";
  return oom;
}

}  // namespace offsim::policies
