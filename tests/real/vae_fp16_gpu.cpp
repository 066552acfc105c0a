// The VAE modules on a CUDA device in fp16 (the dtype the CPU cannot run). Skipped, with the reason, where
// libtorch has no CUDA device (Debian's libtorch is CPU-only).
#include <gtest/gtest.h>

#include <ostream>

#include <torch/cuda.h>

#include "offsim/real/vae_module.hpp"

namespace offsim::real {

// Readable parameter names in gtest output.
inline void PrintTo(VaeModel model, std::ostream* os) { *os << to_string(model); }

namespace {

class GpuVae : public ::testing::TestWithParam<VaeModel> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) {
      GTEST_SKIP() << "torch::cuda::is_available() is false: this libtorch has no CUDA device (Debian's libtorch "
                      "is CPU-only); run on the GPU machine's libtorch";
    }
  }
};

TEST_P(GpuVae, DecodesAndEncodesInFp16) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const auto vae = make_vae(GetParam(), {});
  vae->to(torch::kCUDA, torch::kHalf);
  const auto options = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kHalf);
  const torch::Tensor image = vae->decode(torch::randn(vae->latent_shape(64, 96), options));
  EXPECT_EQ(image.sizes().vec(), vae->image_shape(64, 96));
  EXPECT_EQ(image.scalar_type(), torch::kHalf);
  EXPECT_TRUE(image.is_cuda());
  const torch::Tensor latents = vae->encode(torch::rand(vae->image_shape(64, 96), options) * 2 - 1);
  EXPECT_EQ(latents.sizes().vec(), vae->latent_shape(64, 96));
}

INSTANTIATE_TEST_SUITE_P(AllVaes, GpuVae,
                         ::testing::Values(VaeModel::kSd15, VaeModel::kFlux1, VaeModel::kQwenImage),
                         [](const ::testing::TestParamInfo<VaeModel>& param_info) {
                           std::string name(to_string(param_info.param));
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace offsim::real
