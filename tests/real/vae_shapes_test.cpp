// Output shapes of decode and encode at small, non-square sizes (a swapped height and width would show), in
// fp32 and bf16 on the CPU. Qwen-Image's decode/encode case runs in bf16: at small sizes libtorch 1.13 sends
// fp32 Conv3d to its slow vol2col path instead of oneDNN (use_mkldnn wants N*C*T*H > 20480), seconds per conv.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "offsim/real/qwen_blocks.hpp"

#include "offsim/real/vae_module.hpp"

namespace offsim::real {
namespace {

using Shape = std::vector<std::int64_t>;
struct Case {
  VaeModel model;
  torch::ScalarType dtype;
  std::int64_t width;
  std::int64_t height;
  Shape latent;
  Shape image;
};

class VaeShapes : public ::testing::TestWithParam<Case> {};

TEST_P(VaeShapes, DecodeAndEncode) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const Case& c = GetParam();
  const auto vae = make_vae(c.model, {});
  vae->to(c.dtype);
  ASSERT_EQ(vae->latent_shape(c.height, c.width), c.latent);
  ASSERT_EQ(vae->image_shape(c.height, c.width), c.image);
  const torch::Tensor image = vae->decode(torch::randn(c.latent).to(c.dtype));
  EXPECT_EQ(image.sizes().vec(), c.image);
  EXPECT_EQ(image.scalar_type(), c.dtype);
  EXPECT_TRUE(torch::isfinite(image).all().item<bool>());
  const torch::Tensor latents = vae->encode((torch::rand(c.image) * 2 - 1).to(c.dtype));
  EXPECT_EQ(latents.sizes().vec(), c.latent);
  EXPECT_EQ(latents.scalar_type(), c.dtype);
  EXPECT_TRUE(torch::isfinite(latents).all().item<bool>());
}

TEST_P(VaeShapes, DecodeBf16WithMathAttention) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const Case& c = GetParam();
  RealSwitches switches;
  switches.attention = AttentionImpl::kMath;
  const auto vae = make_vae(c.model, switches);
  vae->to(torch::kBFloat16);
  const torch::Tensor image = vae->decode(torch::randn(c.latent).to(torch::kBFloat16));
  EXPECT_EQ(image.sizes().vec(), c.image);
  EXPECT_EQ(image.scalar_type(), torch::kBFloat16);
}

INSTANTIATE_TEST_SUITE_P(
    AllVaes, VaeShapes,
    ::testing::Values(Case{VaeModel::kSd15, torch::kFloat, 64, 48, {1, 4, 6, 8}, {1, 3, 48, 64}},
                      Case{VaeModel::kSdxl, torch::kFloat, 64, 48, {1, 4, 6, 8}, {1, 3, 48, 64}},
                      Case{VaeModel::kFlux1, torch::kFloat, 64, 48, {1, 16, 6, 8}, {1, 3, 48, 64}},
                      Case{VaeModel::kQwenImage, torch::kBFloat16, 64, 48, {1, 16, 1, 6, 8}, {1, 3, 1, 48, 64}}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      std::string name(to_string(param_info.param.model));
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

TEST(VaeAttentionImpls, AgreeNumericallyOnAklDecode) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const auto vae = make_vae(VaeModel::kSd15, {});
  const torch::Tensor z = torch::randn({1, 4, 6, 8});
  std::vector<torch::Tensor> outputs;
  for (AttentionImpl impl : {AttentionImpl::kEfficient, AttentionImpl::kMath, AttentionImpl::kLegacyFp32Softmax}) {
    vae->switches().attention = impl;
    vae->switches().efficient_attention_chunk = 5;  // several chunks over the 48 tokens
    outputs.push_back(vae->decode(z));
  }
  EXPECT_TRUE(torch::allclose(outputs[0], outputs[1], 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(outputs[0], outputs[2], 1e-4, 1e-4));
}

// The two zero frames only meet the first two temporal taps: convolving with the last tap is the same
// convolution (what CausalPad::kLastTapOnly records).
TEST(VaeCausalPad, LastTapEqualsMaterialisedPad) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  RealSwitches padded;
  RealSwitches last_tap;
  last_tap.causal_pad = CausalPad::kLastTapOnly;
  using Dims = std::array<std::int64_t, 3>;
  QwenCausalConv3d conv(16, 8, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}, &padded);
  QwenCausalConv3d same(16, 8, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}, &last_tap);
  same->weight.copy_(conv->weight);
  same->bias.copy_(conv->bias);
  const torch::Tensor x = torch::randn({1, 16, 1, 6, 10});
  EXPECT_TRUE(torch::allclose(conv->forward(x), same->forward(x), 1e-5, 1e-5));
}

// For one frame the diffusers cache only keeps copies: the decoded image is bit-identical without it.
TEST(VaeFeatureCache, DoesNotChangeASingleFrameDecode) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const auto vae = make_vae(VaeModel::kQwenImage, {});
  vae->to(torch::kBFloat16);
  const torch::Tensor z = torch::randn({1, 16, 1, 6, 8}).to(torch::kBFloat16);
  const torch::Tensor cached = vae->decode(z);
  vae->switches().feature_cache = FeatureCache::kNone;
  EXPECT_TRUE(torch::equal(cached, vae->decode(z)));
}

}  // namespace
}  // namespace offsim::real
