// PyTorch's OutOfMemoryError text, whole (c10/cuda/CUDACachingAllocator.cpp, DeviceCachingAllocator::malloc):
// the process line that NVML gives on CUDA, the memory-fraction clause, and the closing hint whose link moved
// in PR #172327 (2.11).
#include <gtest/gtest.h>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"

namespace offsim::sim {
namespace {

std::string oom_text(Platform platform, const char* profile, std::uint64_t other_processes = 0,
                     std::uint64_t context = 0, const char* conf = "") {
  DeviceSpec spec{"d", platform, 8 * GiB};
  spec.other_process_bytes = other_processes;
  spec.context_bytes = context;
  Device device(spec);
  const VersionProfile& p = VersionProfile::by_name(profile);
  CachingAllocator a(device, AllocatorConfig::parse(conf, p), p);
  EXPECT_TRUE(a.malloc(5 * GiB));
  EXPECT_FALSE(a.malloc(3 * GiB));
  return a.last_oom().message(platform);
}

TEST(OomMessage, CudaHasThisProcessesMemoryAndTheEnvironmentVariablesLinkBefore2_11) {
  EXPECT_EQ(oom_text(Platform::kCuda, "2.9", 512 * MiB, 300 * MiB),
            "CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity of 8.00 GiB of which 2.21 GiB "
            "is free. Including non-PyTorch memory, this process has 5.29 GiB memory in use. Of the allocated memory "
            "5.00 GiB is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated. If reserved but "
            "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
            "fragmentation.  See documentation for Memory Management  "
            "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)");
}

TEST(OomMessage, RocmHasNoProcessLineAnd2_11LinksTheAllocConfSection) {
  const std::string text = oom_text(Platform::kRocm, "2.11", 512 * MiB);
  EXPECT_EQ(text.find("this process"), std::string::npos) << text;
  EXPECT_NE(text.find("GPU 0 has a total capacity of 8.00 GiB of which 2.50 GiB is free. Of the allocated memory"),
            std::string::npos)
      << text;
  EXPECT_TRUE(text.ends_with(
      "(https://docs.pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)"))
      << text;
}

TEST(OomMessage, AMemoryFractionIsNamedAfterTheProcessLine) {
  const std::string text = oom_text(Platform::kCuda, "2.11", 0, 0, "per_process_memory_fraction:0.75");
  EXPECT_NE(text.find("this process has 5.00 GiB memory in use. 6.00 GiB allowed; Of the allocated memory"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace offsim::sim
