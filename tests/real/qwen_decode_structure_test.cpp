// A Qwen-Image decode at a small size has the structure shared/specs/vae_architectures.md section 3.4
// describes: the feature cache keeps a clone of every cached conv input until the decode ends
// (16 hw + 10*384 hw + (192 + 5*384) 4hw + 6*192 16hw + 7*96 64hw elements, h x w the latent), every
// 3x3x3 conv gets a 3-frame zero-padded input, the up_blocks[2] upsampler runs in fp32, and the decode peak
// sits in up_blocks[3].
#include <gtest/gtest.h>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/trace_stats.hpp"
#include "offsim/real/vae_module.hpp"
#include "real/test_support.hpp"

namespace offsim::real {
namespace {

constexpr std::int64_t kWidth = 96;   // latent 12
constexpr std::int64_t kHeight = 64;  // latent 8
constexpr std::uint64_t kBf16 = 2;

// One bf16 model per test process (building 127 M random parameters costs seconds).
VaeModule& qwen() {
  static const std::shared_ptr<VaeModule> vae = [] {
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    auto built = make_vae(VaeModel::kQwenImage, {});
    built->to(torch::kBFloat16);
    return built;
  }();
  return *vae;
}

Recording record_decode(const RealSwitches& switches) {
  torch::NoGradGuard no_grad;
  VaeModule& vae = qwen();
  vae.switches() = switches;
  const torch::Tensor z = torch::randn(vae.latent_shape(kHeight, kWidth)).to(torch::kBFloat16);
  return testing::record([&] { (void)vae.decode(z); });
}

// Bytes allocated inside the decoder and freed by the final clear_cache.
std::uint64_t bytes_released_by_clear_cache(const Recording& r) {
  const auto decoder = r.find_scope("decoder");
  std::uint64_t bytes = 0;
  for (const RecordedEvent& e : r.events) {
    if (!e.is_alloc || !r.is_within(e.scope, *decoder) || e.partner == RecordedEvent::kNever) continue;
    if (r.scopes[r.events[e.partner].scope].name == "vae.clear_cache") bytes += e.size;
  }
  return bytes;
}

TEST(QwenDecodeStructure, FeatureCacheRetainsEveryCachedConvInput) {
  const Recording r = record_decode({});
  const std::uint64_t hw = (kHeight / 8) * (kWidth / 8);
  const std::uint64_t elements = 16 * hw + 10 * 384 * hw + (192 + 5 * 384) * 4 * hw + 6 * 192 * 16 * hw + 7 * 96 * 64 * hw;
  EXPECT_EQ(bytes_released_by_clear_cache(r), elements * kBf16);
}

TEST(QwenDecodeStructure, NoCacheRetainsNothing) {
  RealSwitches switches;
  switches.feature_cache = FeatureCache::kNone;
  EXPECT_EQ(bytes_released_by_clear_cache(record_decode(switches)), 0u);
}

TEST(QwenDecodeStructure, CausalConvInputsArePaddedToThreeFrames) {
  const Recording r = record_decode({});
  // The last 3x3x3 conv of up_blocks[3]: (96, 3, H + 2, W + 2).
  EXPECT_TRUE(testing::contains(testing::allocations_in(r, "decoder.up_blocks.3.resnets.2.conv2"),
                                96ull * 3 * (kHeight + 2) * (kWidth + 2) * kBf16));
  // conv_in at latent size: (16, 3, h + 2, w + 2).
  EXPECT_TRUE(testing::contains(testing::allocations_in(r, "decoder.conv_in"),
                                16ull * 3 * (kHeight / 8 + 2) * (kWidth / 8 + 2) * kBf16));
}

TEST(QwenDecodeStructure, UpBlock2UpsamplesInFp32) {
  const Recording r = record_decode({});
  const auto sizes = testing::allocations_in(r, "decoder.up_blocks.2.upsamplers.0");
  constexpr std::uint64_t kFp32 = 4;
  EXPECT_TRUE(testing::contains(sizes, 192ull * (kHeight / 2) * (kWidth / 2) * kFp32)) << "x.float()";
  EXPECT_TRUE(testing::contains(sizes, 192ull * kHeight * kWidth * kFp32)) << "fp32 nearest-exact output";
  EXPECT_TRUE(testing::contains(sizes, 192ull * kHeight * kWidth * kBf16)) << "type_as(x)";
  EXPECT_TRUE(testing::contains(sizes, 96ull * kHeight * kWidth * kBf16)) << "conv 192 -> 96";
}

TEST(QwenDecodeStructure, PeakIsInTheLastUpBlock) {
  const Recording r = record_decode({});
  const RewrittenTrace cuda = rewrite_cuda_like(r, {}, {});
  const LiveBytes stats = live_bytes(cuda.annotated.trace);
  const std::uint32_t scope = cuda.annotated.event_scopes[stats.peak_event];
  EXPECT_TRUE(r.is_within(scope, *r.find_scope("decoder.up_blocks.3"))) << r.scope_path(scope);
  // Without the cache and the padded copies the peak is far lower (ComfyUI's reason for 2200 vs 2900).
  RealSwitches lean;
  lean.feature_cache = FeatureCache::kNone;
  lean.causal_pad = CausalPad::kLastTapOnly;
  const LiveBytes lean_stats = live_bytes(rewrite_cuda_like(record_decode(lean), {}, {}).annotated.trace);
  EXPECT_LT(lean_stats.peak * 2, stats.peak);
}

}  // namespace
}  // namespace offsim::real
