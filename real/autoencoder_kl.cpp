#include "offsim/real/autoencoder_kl.hpp"

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/real/ops.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

torch::nn::Conv2d make_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t padding) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).padding(padding).bias(true));
}

torch::nn::GroupNorm make_group_norm(std::int64_t groups, std::int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(1e-6).affine(true));
}

}  // namespace

AutoencoderKLConfig autoencoder_kl_config(VaeModel model) {
  AutoencoderKLConfig config;
  switch (model) {
    case VaeModel::kSd15:
      config.scaling_factor = 0.18215;
      return config;
    case VaeModel::kSdxl:
      config.scaling_factor = 0.13025;
      return config;
    case VaeModel::kFlux1:
      config.latent_channels = 16;
      config.use_quant_conv = false;
      config.use_post_quant_conv = false;
      config.scaling_factor = 0.3611;
      config.shift_factor = 0.1159;
      config.has_shift_factor = true;
      return config;
    case VaeModel::kQwenImage:
      break;
  }
  throw Error("autoencoder_kl_config: " + std::string(to_string(model)) + " is not an AutoencoderKL");
}

KlEncoderImpl::KlEncoderImpl(const AutoencoderKLConfig& config, const RealSwitches* switches) {
  const auto& channels = config.block_out_channels;
  const std::int64_t groups = config.norm_num_groups;
  conv_in_ = register_module("conv_in", make_conv(3, channels.front(), 3, 1));
  torch::nn::ModuleList down_blocks;
  std::int64_t output_channel = channels.front();
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const std::int64_t input_channel = output_channel;
    output_channel = channels[i];
    const bool is_final = i + 1 == channels.size();
    down_blocks_.emplace_back(input_channel, output_channel, config.layers_per_block, !is_final, groups);
    down_blocks->push_back(down_blocks_.back());
  }
  register_module("down_blocks", down_blocks);
  mid_block_ = register_module("mid_block", KlMidBlock2D(channels.back(), groups, switches));
  conv_norm_out_ = register_module("conv_norm_out", make_group_norm(groups, channels.back()));
  conv_out_ = register_module("conv_out", make_conv(channels.back(), 2 * config.latent_channels, 3, 1));
}

torch::Tensor KlEncoderImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor sample = ops::conv2d(x, conv_in_);
  for (auto& block : down_blocks_) sample = block->forward(sample);
  sample = mid_block_->forward(sample);
  sample = conv_norm_out_->forward(sample);
  sample = torch::silu(sample);
  sample = ops::conv2d(sample, conv_out_);
  return sample;
}

KlDecoderImpl::KlDecoderImpl(const AutoencoderKLConfig& config, const RealSwitches* switches) {
  const auto& channels = config.block_out_channels;
  const std::int64_t groups = config.norm_num_groups;
  conv_in_ = register_module("conv_in", make_conv(config.latent_channels, channels.back(), 3, 1));
  mid_block_ = register_module("mid_block", KlMidBlock2D(channels.back(), groups, switches));
  torch::nn::ModuleList up_blocks;
  const std::vector<std::int64_t> reversed(channels.rbegin(), channels.rend());
  std::int64_t output_channel = reversed.front();
  for (std::size_t i = 0; i < reversed.size(); ++i) {
    const std::int64_t prev_output_channel = output_channel;
    output_channel = reversed[i];
    const bool is_final = i + 1 == reversed.size();
    up_blocks_.emplace_back(prev_output_channel, output_channel, config.layers_per_block + 1, !is_final, groups,
                            switches);
    up_blocks->push_back(up_blocks_.back());
  }
  register_module("up_blocks", up_blocks);
  conv_norm_out_ = register_module("conv_norm_out", make_group_norm(groups, channels.front()));
  conv_out_ = register_module("conv_out", make_conv(channels.front(), 3, 3, 1));
}

torch::Tensor KlDecoderImpl::forward(const torch::Tensor& z) {
  ModuleScope scope(scope_path());
  torch::Tensor sample = ops::conv2d(z, conv_in_);
  sample = mid_block_->forward(sample);
  // `sample.to(upscale_dtype)`: the up blocks have the mid block's dtype here, so no copy.
  for (auto& block : up_blocks_) sample = block->forward(sample);
  sample = conv_norm_out_->forward(sample);
  sample = torch::silu(sample);
  sample = ops::conv2d(sample, conv_out_);
  return sample;
}

AutoencoderKL::AutoencoderKL(const AutoencoderKLConfig& config, const RealSwitches& switches)
    : VaeModule(switches), config_(config) {
  encoder_ = register_module("encoder", KlEncoder(config, &this->switches()));
  decoder_ = register_module("decoder", KlDecoder(config, &this->switches()));
  const std::int64_t latent = config.latent_channels;
  if (config.use_quant_conv) quant_conv_ = register_module("quant_conv", make_conv(2 * latent, 2 * latent, 1, 0));
  if (config.use_post_quant_conv) {
    post_quant_conv_ = register_module("post_quant_conv", make_conv(latent, latent, 1, 0));
  }
}

torch::Tensor AutoencoderKL::decode(const torch::Tensor& latents) {
  torch::Tensor z;
  {
    ModuleScope scope("pipeline.latents_to_vae_input");
    z = latents / config_.scaling_factor;
    if (config_.has_shift_factor) z = z + config_.shift_factor;
  }
  ModuleScope scope("vae.decode");
  // AutoencoderKL._decode: `z = self.post_quant_conv(z)` rebinds the local; the caller keeps its z.
  torch::Tensor h = z;
  if (post_quant_conv_) h = ops::conv2d(h, post_quant_conv_);
  torch::Tensor dec = decoder_->forward(h);
  return dec;
}

torch::Tensor AutoencoderKL::encode(const torch::Tensor& image) {
  torch::Tensor latents;
  {
    ModuleScope scope("vae.encode");
    torch::Tensor h = encoder_->forward(image);
    if (quant_conv_) h = ops::conv2d(h, quant_conv_);
    // DiagonalGaussianDistribution(h): the posterior keeps parameters, logvar, std and var alive.
    ModuleScope posterior_scope("vae.posterior");
    const auto chunks = torch::chunk(h, 2, 1);
    const torch::Tensor& mean = chunks[0];
    torch::Tensor logvar = torch::clamp(chunks[1], -30.0, 20.0);
    torch::Tensor std_dev = 0.5 * logvar;
    std_dev = torch::exp(std_dev);
    const torch::Tensor var = torch::exp(logvar);
    // sample(): randn_tensor(mean.shape, dtype=parameters.dtype); x = mean + std * sample.
    const torch::Tensor noise = torch::randn(mean.sizes(), h.options());
    torch::Tensor scaled_noise = std_dev * noise;
    latents = mean + scaled_noise;
  }
  ModuleScope scope("pipeline.vae_output_to_latents");
  if (config_.has_shift_factor) latents = latents - config_.shift_factor;
  latents = latents * config_.scaling_factor;
  return latents;
}

std::vector<std::int64_t> AutoencoderKL::latent_shape(std::int64_t height, std::int64_t width) const {
  return {1, config_.latent_channels, height / 8, width / 8};
}

std::vector<std::int64_t> AutoencoderKL::image_shape(std::int64_t height, std::int64_t width) const {
  return {1, 3, height, width};
}

}  // namespace offsim::real
