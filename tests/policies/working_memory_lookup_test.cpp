// A workload's working memory from offsim's strongest trace: published before CPU-recorded, the recorded
// kernels chosen by backend, nothing for what no trace records.
#include <gtest/gtest.h>

#include "offsim/policies/working_memory_lookup.hpp"

namespace offsim::policies {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

VaeWorkload workload(VaeFamily family, int height, int width, Backend backend) {
  VaeWorkload w;
  w.family = family;
  w.op = VaeOp::decode;
  w.pixel_height = height;
  w.pixel_width = width;
  w.dtype = DType::bf16;
  w.backend = backend;
  return w;
}

TEST(WorkingMemoryLookup, APublishedMeasurementComesFirst) {
  const auto m = find_working_memory(kRoot, workload(VaeFamily::qwen_image, 832, 1248, Backend::rocm));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->provenance(), sim::ProvenanceKind::kPublishedMeasurement);
  EXPECT_NE(m->label().find("9305"), std::string::npos) << m->label();
}

TEST(WorkingMemoryLookup, ACpuRecordedTraceHasTheBackendsKernels) {
  const auto cuda = find_working_memory(kRoot, workload(VaeFamily::sd15, 512, 512, Backend::cuda));
  const auto rocm = find_working_memory(kRoot, workload(VaeFamily::sd15, 512, 512, Backend::rocm));
  ASSERT_TRUE(cuda && rocm);
  EXPECT_EQ(cuda->source, "traces/cpu/sd15-vae_decode_512x512_bf16_efficient_implicit.otrace");
  EXPECT_EQ(rocm->source, "traces/cpu/sd15-vae_decode_512x512_bf16_math_column-buffer.otrace");
  EXPECT_EQ(cuda->provenance(), sim::ProvenanceKind::kCpuRecordedSimulated);
}

TEST(WorkingMemoryLookup, NothingMatchesSaysWhatWasLookedFor) {
  std::string why;
  EXPECT_FALSE(find_working_memory(kRoot, workload(VaeFamily::flux2, 512, 512, Backend::cuda), &why));
  EXPECT_NE(why.find("flux2 decode 512x512 bf16 on cuda"), std::string::npos) << why;
  VaeWorkload tiled = workload(VaeFamily::qwen_image, 832, 1248, Backend::rocm);
  tiled.tile_size = 512;
  EXPECT_FALSE(find_working_memory(kRoot, tiled, &why));
  EXPECT_NE(why.find("tiled"), std::string::npos) << why;
}

}  // namespace
}  // namespace offsim::policies
