// The column-buffer switch adds exactly C_in * prod(k) * prod(out) * element size bytes to one real
// convolution's CUDA-like trace, and nothing else.
#include <gtest/gtest.h>

#include <array>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/ops.hpp"
#include "offsim/real/qwen_blocks.hpp"
#include "offsim/real/trace_stats.hpp"
#include "real/test_support.hpp"

namespace offsim::real {
namespace {

using Dims = std::array<std::int64_t, 3>;

struct Compared {
  LiveBytes implicit;
  LiveBytes column;
};

Compared compare(const Recording& recording) {
  return {live_bytes(rewrite_cuda_like(recording, {ConvWorkspace::kImplicitGemm}, {}).annotated.trace),
          live_bytes(rewrite_cuda_like(recording, {ConvWorkspace::kColumnBuffer}, {}).annotated.trace)};
}

TEST(ColumnBufferSwitch, CausalConv3dAddsItsVol2colBuffer) {
  torch::NoGradGuard no_grad;
  const RealSwitches switches;
  QwenCausalConv3d conv(96, 96, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}, &switches);
  conv->to(torch::kBFloat16);
  conv->set_scope_path("conv");
  const std::int64_t h = 12;
  const std::int64_t w = 20;
  const torch::Tensor x = torch::randn({1, 96, 1, h, w}).to(torch::kBFloat16);
  torch::Tensor y;
  const Recording r = testing::record([&] { y = conv->forward(x); });
  ASSERT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{1, 96, 1, h, w}));
  const std::uint64_t expected = 96ull * 27 * 1 * h * w * 2;  // C_in * k^3 * D * H * W * es
  const Compared c = compare(r);
  EXPECT_EQ(c.column.total_allocated - c.implicit.total_allocated, expected);
  EXPECT_EQ(c.column.peak - c.implicit.peak, expected);
  // The materialised causal pad is a real allocation in both: (96, 3, H + 2, W + 2) bf16.
  EXPECT_TRUE(testing::contains(testing::allocations_in(r, "conv"), 96ull * 3 * (h + 2) * (w + 2) * 2));
}

TEST(ColumnBufferSwitch, Conv2dAddsItsIm2colBuffer) {
  torch::NoGradGuard no_grad;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(64, 32, 3).padding(1));
  const torch::Tensor x = torch::randn({1, 64, 10, 14});
  const Recording r = testing::record([&] { (void)ops::conv2d(x, conv); });
  const Compared c = compare(r);
  EXPECT_EQ(c.column.total_allocated - c.implicit.total_allocated, 64ull * 9 * 10 * 14 * 4);
}

TEST(ColumnBufferSwitch, PointwiseConvAddsNothing) {
  torch::NoGradGuard no_grad;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(64, 32, 1));
  const torch::Tensor x = torch::randn({1, 64, 10, 14});
  const Recording r = testing::record([&] { (void)ops::conv2d(x, conv); });
  const Compared c = compare(r);
  EXPECT_EQ(c.column.total_allocated, c.implicit.total_allocated);
}

TEST(ColumnBufferSwitch, LastTapConvNeedsANineTapBuffer) {
  torch::NoGradGuard no_grad;
  RealSwitches switches;
  switches.causal_pad = CausalPad::kLastTapOnly;
  QwenCausalConv3d conv(16, 8, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}, &switches);
  const torch::Tensor x = torch::randn({1, 16, 1, 6, 10});
  const Recording r = testing::record([&] { (void)conv->forward(x); });
  const Compared c = compare(r);
  EXPECT_EQ(c.column.total_allocated - c.implicit.total_allocated, 16ull * 9 * 6 * 10 * 4);
  // No padded copy of the input: the only surviving allocation is the output.
  EXPECT_EQ(c.implicit.total_allocated, 8ull * 6 * 10 * 4);
}

}  // namespace
}  // namespace offsim::real
