#include <string>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"

namespace offsim::sim {

std::string OomInfo::message(Platform platform) const {
  // The OutOfMemoryError raised in DeviceCachingAllocator::malloc (c10/cuda/CUDACachingAllocator.cpp), piece
  // by piece. Like upstream it prints alloc_size (the segment it tried to obtain), not the caller's request.
  // ROCm builds print "CUDA out of memory" here too (the W7900 message quoted in InvokeAI PR #9305; hipified
  // builds such as ROCm/TheRock's print "HIP"), and no process line: reportProcessMemoryInfo reads NVML,
  // which is compiled out under USE_ROCM. NVML lists compute processes only; offsim prints this process's
  // line (context + allocator + memory outside it) and none for other processes, whose ids it does not know
  // (the LightX2V #1051 message shows the same shape with a desktop's memory on the card).
  std::string out = "CUDA out of memory. ";
  out += "Tried to allocate " + format_bytes(alloc_size) + ". GPU 0 has a total capacity of " +
         format_bytes(device.total) + " of which " + format_bytes(device.free) + " is free. ";
  if (platform == Platform::kCuda && process_bytes > 0) {
    out += "Including non-PyTorch memory, this process has " + format_bytes(process_bytes) + " memory in use. ";
  }
  if (limit) out += format_bytes(*limit) + " allowed; ";
  out += "Of the allocated memory " + format_bytes(allocated) + " is allocated by PyTorch, and " +
         format_bytes(reserved - allocated) + " is reserved by PyTorch but unallocated.";
  // The closing hint is one sentence in every release since 2.1; its link moved in January 2026 (PR #172327).
  out += " If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
         " to avoid fragmentation.  See documentation for Memory Management  (";
  out += hint_links_alloc_conf_section
             ? "https://docs.pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf"
             : "https://pytorch.org/docs/stable/notes/cuda.html#environment-variables";
  out += ")";
  return out;
}

}  // namespace offsim::sim
