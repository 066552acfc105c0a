// diffusers' AutoencoderKL with the SD1.5 / SDXL / FLUX.1 configs (huggingface/diffusers
// src/diffusers/models/autoencoders/autoencoder_kl.py and vae.py: Encoder, Decoder,
// DiagonalGaussianDistribution). The FLUX.1 config is scripts/convert_flux_to_diffusers.py's: 16 latent
// channels, use_quant_conv = use_post_quant_conv = False, scaling 0.3611, shift 0.1159.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offsim/real/kl_blocks.hpp"
#include "offsim/real/vae_module.hpp"

namespace offsim::real {

struct AutoencoderKLConfig {
  std::vector<std::int64_t> block_out_channels{128, 256, 512, 512};
  std::int64_t layers_per_block = 2;
  std::int64_t latent_channels = 4;
  std::int64_t norm_num_groups = 32;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;  // FLUX.1 only
  bool has_shift_factor = false;
};
AutoencoderKLConfig autoencoder_kl_config(VaeModel model);

/// vae.py Encoder (double_z, mid-block attention).
class KlEncoderImpl : public ScopedModule {
 public:
  KlEncoderImpl(const AutoencoderKLConfig& config, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_in_{nullptr};
  std::vector<KlDownEncoderBlock2D> down_blocks_;
  KlMidBlock2D mid_block_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  torch::nn::Conv2d conv_out_{nullptr};
};
TORCH_MODULE(KlEncoder);

/// vae.py Decoder (norm_type "group").
class KlDecoderImpl : public ScopedModule {
 public:
  KlDecoderImpl(const AutoencoderKLConfig& config, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& z);

 private:
  torch::nn::Conv2d conv_in_{nullptr};
  KlMidBlock2D mid_block_{nullptr};
  std::vector<KlUpDecoderBlock2D> up_blocks_;
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  torch::nn::Conv2d conv_out_{nullptr};
};
TORCH_MODULE(KlDecoder);

class AutoencoderKL : public VaeModule {
 public:
  AutoencoderKL(const AutoencoderKLConfig& config, const RealSwitches& switches);

  /// Pipeline decode: z = latents / scaling_factor (+ shift_factor), then `vae.decode(z).sample`
  /// (post_quant_conv when configured, Decoder).
  torch::Tensor decode(const torch::Tensor& latents) override;
  /// Pipeline encode: `vae.encode(image).latent_dist.sample()` (Encoder, quant_conv, DiagonalGaussian:
  /// clamp(logvar), std = exp(0.5 logvar), var = exp(logvar), mean + std * randn), then
  /// (latents - shift_factor) * scaling_factor.
  torch::Tensor encode(const torch::Tensor& image) override;
  std::vector<std::int64_t> latent_shape(std::int64_t height, std::int64_t width) const override;
  std::vector<std::int64_t> image_shape(std::int64_t height, std::int64_t width) const override;
  const AutoencoderKLConfig& config() const noexcept { return config_; }

 private:
  AutoencoderKLConfig config_;
  KlEncoder encoder_{nullptr};
  KlDecoder decoder_{nullptr};
  torch::nn::Conv2d quant_conv_{nullptr};
  torch::nn::Conv2d post_quant_conv_{nullptr};
};

}  // namespace offsim::real
