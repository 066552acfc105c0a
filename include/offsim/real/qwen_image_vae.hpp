// diffusers' AutoencoderKLQwenImage with its default (= Qwen-Image checkpoint) config: base_dim 96,
// dim_mult [1, 2, 4, 4], num_res_blocks 2, z_dim 16, attn_scales [], temperal_downsample
// [False, True, True] (huggingface/diffusers src/diffusers/models/autoencoders/autoencoder_kl_qwenimage.py),
// plus the latent (de)normalisation of pipelines/qwenimage (latents_mean / latents_std from the config).
#pragma once

#include <cstdint>
#include <vector>

#include "offsim/real/qwen_blocks.hpp"
#include "offsim/real/vae_module.hpp"

namespace offsim::real {

struct QwenImageVaeConfig {
  std::int64_t base_dim = 96;
  std::int64_t z_dim = 16;
  std::vector<std::int64_t> dim_mult{1, 2, 4, 4};
  std::int64_t num_res_blocks = 2;
  std::vector<bool> temperal_downsample{false, true, true};
  std::vector<double> latents_mean{-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                   0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503, -0.2921};
  std::vector<double> latents_std{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};
};

/// QwenImageEncoder3d (first chunk): conv_in, down_blocks (residual blocks and resamples in one list),
/// mid_block, norm_out, SiLU, conv_out to 2 * z_dim.
class QwenEncoder3dImpl : public ScopedModule {
 public:
  QwenEncoder3dImpl(const QwenImageVaeConfig& config, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  struct Layer {
    QwenResidualBlock residual{nullptr};
    QwenResample resample{nullptr};
  };
  QwenCausalConv3d conv_in_{nullptr};
  std::vector<Layer> down_blocks_;
  QwenMidBlock mid_block_{nullptr};
  QwenRmsNorm norm_out_{nullptr};
  QwenCausalConv3d conv_out_{nullptr};
};
TORCH_MODULE(QwenEncoder3d);

/// QwenImageDecoder3d (one latent frame): conv_in, mid_block, 4 up blocks, norm_out, SiLU, conv_out.
class QwenDecoder3dImpl : public ScopedModule {
 public:
  QwenDecoder3dImpl(const QwenImageVaeConfig& config, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  QwenCausalConv3d conv_in_{nullptr};
  QwenMidBlock mid_block_{nullptr};
  std::vector<QwenUpBlock> up_blocks_;
  QwenRmsNorm norm_out_{nullptr};
  QwenCausalConv3d conv_out_{nullptr};
};
TORCH_MODULE(QwenDecoder3d);

class AutoencoderKLQwenImage : public VaeModule {
 public:
  AutoencoderKLQwenImage(const QwenImageVaeConfig& config, const RealSwitches& switches);

  /// Pipeline decode of (1, 16, 1, h, w) latents: latents / (1 / std) + mean, then `_decode`:
  /// clear_cache, post_quant_conv, the decoder on frame 0 with the feature cache, clamp(-1, 1), clear_cache.
  /// Returns (1, 3, 1, H, W).
  torch::Tensor decode(const torch::Tensor& latents) override;
  /// Pipeline encode of a (1, 3, 1, H, W) image: `_encode` (clear_cache, encoder on frame 0, quant_conv,
  /// clear_cache), DiagonalGaussian, mode() (sample_mode="argmax"), (latents - mean) / std.
  torch::Tensor encode(const torch::Tensor& image) override;
  std::vector<std::int64_t> latent_shape(std::int64_t height, std::int64_t width) const override;
  std::vector<std::int64_t> image_shape(std::int64_t height, std::int64_t width) const override;

  std::size_t decoder_cache_slots() const noexcept { return decoder_cache_slots_; }
  std::size_t encoder_cache_slots() const noexcept { return encoder_cache_slots_; }

 private:
  torch::Tensor config_tensor(const std::vector<double>& values, const torch::Tensor& like) const;

  QwenImageVaeConfig config_;
  QwenEncoder3d encoder_{nullptr};
  QwenCausalConv3d quant_conv_{nullptr};
  QwenCausalConv3d post_quant_conv_{nullptr};
  QwenDecoder3d decoder_{nullptr};
  std::size_t decoder_cache_slots_ = 0;
  std::size_t encoder_cache_slots_ = 0;
};

}  // namespace offsim::real
