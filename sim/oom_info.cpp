#include <string>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"

namespace offsim::sim {

std::string OomInfo::message(Platform platform) const {
  // Wording of the OutOfMemoryError raised in DeviceCachingAllocator::malloc. Like upstream it prints
  // alloc_size (the segment it tried to obtain), not the caller's request. ROCm builds print "CUDA out
  // of memory" too (the W7900 message quoted in InvokeAI PR #9305); only the NVML process list is absent.
  (void)platform;
  std::string out = "CUDA out of memory. ";
  out += "Tried to allocate " + format_bytes(alloc_size) + ". GPU 0 has a total capacity of " +
         format_bytes(device.total) + " of which " + format_bytes(device.free) + " is free. ";
  if (limit) out += format_bytes(*limit) + " allowed; ";
  out += "Of the allocated memory " + format_bytes(allocated) + " is allocated by PyTorch, and " +
         format_bytes(reserved - allocated) + " is reserved by PyTorch but unallocated.";
  return out;
}

}  // namespace offsim::sim
