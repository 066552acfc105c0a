#include "offsim/real/qwen_image_vae.hpp"

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

using Mode = QwenResampleImpl::Mode;
constexpr std::array<std::int64_t, 3> kK3{3, 3, 3};
constexpr std::array<std::int64_t, 3> kOnes{1, 1, 1};
constexpr std::array<std::int64_t, 3> kZeros{0, 0, 0};

std::vector<std::int64_t> scaled(std::int64_t base, const std::vector<std::int64_t>& multipliers) {
  std::vector<std::int64_t> out;
  for (const std::int64_t m : multipliers) out.push_back(base * m);
  return out;
}

}  // namespace

QwenEncoder3dImpl::QwenEncoder3dImpl(const QwenImageVaeConfig& config, const RealSwitches* switches) {
  std::vector<std::int64_t> multipliers{1};
  multipliers.insert(multipliers.end(), config.dim_mult.begin(), config.dim_mult.end());
  const std::vector<std::int64_t> dims = scaled(config.base_dim, multipliers);
  const std::int64_t out_channels = 2 * config.z_dim;
  conv_in_ = register_module("conv_in", QwenCausalConv3d(3, dims[0], kK3, kOnes, kOnes, switches));
  torch::nn::ModuleList down_blocks;
  std::int64_t out_dim = dims[0];
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    std::int64_t in_dim = dims[i];
    out_dim = dims[i + 1];
    for (std::int64_t r = 0; r < config.num_res_blocks; ++r) {
      Layer layer;
      layer.residual = QwenResidualBlock(in_dim, out_dim, switches);
      down_blocks->push_back(layer.residual);
      down_blocks_.push_back(layer);
      in_dim = out_dim;
    }
    if (i + 1 != config.dim_mult.size()) {
      Layer layer;
      layer.resample = QwenResample(out_dim, config.temperal_downsample[i] ? Mode::kDownsample3d : Mode::kDownsample2d,
                                    switches);
      down_blocks->push_back(layer.resample);
      down_blocks_.push_back(layer);
    }
  }
  register_module("down_blocks", down_blocks);
  mid_block_ = register_module("mid_block", QwenMidBlock(out_dim, switches));
  norm_out_ = register_module("norm_out", QwenRmsNorm(out_dim, /*images=*/false, switches));
  conv_out_ = register_module("conv_out", QwenCausalConv3d(out_dim, out_channels, kK3, kOnes, kOnes, switches));
}

torch::Tensor QwenEncoder3dImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  torch::Tensor h = cached_causal_conv(*conv_in_, x, cache);
  for (auto& layer : down_blocks_) {
    if (layer.residual) {
      h = layer.residual->forward(h, cache);
    } else {
      h = layer.resample->forward(h, cache);
    }
  }
  h = mid_block_->forward(h, cache);
  h = norm_out_->forward(h);
  h = torch::silu(h);
  h = cached_causal_conv(*conv_out_, h, cache);
  return h;
}

QwenDecoder3dImpl::QwenDecoder3dImpl(const QwenImageVaeConfig& config, const RealSwitches* switches) {
  // dims = [dim * u for u in [dim_mult[-1]] + dim_mult[::-1]]
  std::vector<std::int64_t> multipliers{config.dim_mult.back()};
  multipliers.insert(multipliers.end(), config.dim_mult.rbegin(), config.dim_mult.rend());
  const std::vector<std::int64_t> dims = scaled(config.base_dim, multipliers);
  const std::vector<bool> temperal_upsample(config.temperal_downsample.rbegin(), config.temperal_downsample.rend());
  conv_in_ = register_module("conv_in", QwenCausalConv3d(config.z_dim, dims[0], kK3, kOnes, kOnes, switches));
  mid_block_ = register_module("mid_block", QwenMidBlock(dims[0], switches));
  torch::nn::ModuleList up_blocks;
  std::int64_t out_dim = dims[0];
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    std::int64_t in_dim = dims[i];
    out_dim = dims[i + 1];
    if (i > 0) in_dim = in_dim / 2;  // the previous upsampler's conv halved the channels
    std::optional<Mode> mode;
    if (i + 1 != config.dim_mult.size()) mode = temperal_upsample[i] ? Mode::kUpsample3d : Mode::kUpsample2d;
    up_blocks_.emplace_back(in_dim, out_dim, config.num_res_blocks, mode, switches);
    up_blocks->push_back(up_blocks_.back());
  }
  register_module("up_blocks", up_blocks);
  norm_out_ = register_module("norm_out", QwenRmsNorm(out_dim, /*images=*/false, switches));
  conv_out_ = register_module("conv_out", QwenCausalConv3d(out_dim, 3, kK3, kOnes, kOnes, switches));
}

torch::Tensor QwenDecoder3dImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  torch::Tensor h = cached_causal_conv(*conv_in_, x, cache);
  h = mid_block_->forward(h, cache);
  for (auto& block : up_blocks_) h = block->forward(h, cache);
  h = norm_out_->forward(h);
  h = torch::silu(h);
  h = cached_causal_conv(*conv_out_, h, cache);
  return h;
}

AutoencoderKLQwenImage::AutoencoderKLQwenImage(const QwenImageVaeConfig& config, const RealSwitches& switches)
    : VaeModule(switches), config_(config) {
  const RealSwitches* s = &this->switches();
  encoder_ = register_module("encoder", QwenEncoder3d(config, s));
  quant_conv_ = register_module("quant_conv",
                                QwenCausalConv3d(2 * config.z_dim, 2 * config.z_dim, kOnes, kOnes, kZeros, s));
  post_quant_conv_ = register_module("post_quant_conv", QwenCausalConv3d(config.z_dim, config.z_dim, kOnes, kOnes, kZeros, s));
  decoder_ = register_module("decoder", QwenDecoder3d(config, s));
  decoder_cache_slots_ = count_causal_convs(*decoder_);
  encoder_cache_slots_ = count_causal_convs(*encoder_);
}

// torch.tensor(config values).view(1, z_dim, 1, 1, 1).to(device, dtype): an fp32 tensor, then its cast.
torch::Tensor AutoencoderKLQwenImage::config_tensor(const std::vector<double>& values, const torch::Tensor& like) const {
  std::vector<float> as_float(values.begin(), values.end());
  const torch::Tensor t = torch::tensor(as_float).view({1, config_.z_dim, 1, 1, 1});
  return t.to(like.options());
}

torch::Tensor AutoencoderKLQwenImage::decode(const torch::Tensor& latents) {
  torch::Tensor z;
  {
    ModuleScope scope("pipeline.latents_to_vae_input");
    const torch::Tensor latents_mean = config_tensor(config_.latents_mean, latents);
    torch::Tensor latents_std_inv;
    {
      const torch::Tensor latents_std = config_tensor(config_.latents_std, latents);
      latents_std_inv = 1.0 / latents_std;
    }
    z = latents / latents_std_inv;
    z = z + latents_mean;
  }
  ModuleScope scope("vae.decode");
  std::optional<QwenFeatureCache> cache;
  {
    ModuleScope clear("vae.clear_cache");
    cache.emplace(decoder_cache_slots_);
  }
  QwenFeatureCache* feat_cache = switches().feature_cache == FeatureCache::kDiffusersClones ? &*cache : nullptr;
  const torch::Tensor x = post_quant_conv_->forward(z);
  if (x.size(2) != 1) throw Error("Qwen-Image decode: only one latent frame (an image) is supported");
  cache->index = 0;
  torch::Tensor out = decoder_->forward(x.narrow(2, 0, 1), feat_cache);
  out = torch::clamp(out, -1.0, 1.0);
  {
    ModuleScope clear("vae.clear_cache");
    cache.reset();
  }
  return out;
}

torch::Tensor AutoencoderKLQwenImage::encode(const torch::Tensor& image) {
  torch::Tensor image_latents;
  {
    ModuleScope scope("vae.encode");
    std::optional<QwenFeatureCache> cache;
    {
      ModuleScope clear("vae.clear_cache");
      cache.emplace(encoder_cache_slots_);
    }
    QwenFeatureCache* feat_cache = switches().feature_cache == FeatureCache::kDiffusersClones ? &*cache : nullptr;
    torch::Tensor enc;
    {
      torch::Tensor out = encoder_->forward(image.narrow(2, 0, 1), feat_cache);
      enc = quant_conv_->forward(out);
      ModuleScope clear("vae.clear_cache");
      cache.reset();
    }
    // DiagonalGaussianDistribution(enc) computes logvar, std and var although mode() only returns mean.
    ModuleScope posterior_scope("vae.posterior");
    const auto chunks = torch::chunk(enc, 2, 1);
    const torch::Tensor logvar = torch::clamp(chunks[1], -30.0, 20.0);
    torch::Tensor std_dev = 0.5 * logvar;
    std_dev = torch::exp(std_dev);
    const torch::Tensor var = torch::exp(logvar);
    image_latents = chunks[0];
  }
  ModuleScope scope("pipeline.vae_output_to_latents");
  const torch::Tensor latents_mean = config_tensor(config_.latents_mean, image_latents);
  const torch::Tensor latents_std = config_tensor(config_.latents_std, image_latents);
  torch::Tensor centred = image_latents - latents_mean;
  image_latents = centred / latents_std;
  return image_latents;
}

std::vector<std::int64_t> AutoencoderKLQwenImage::latent_shape(std::int64_t height, std::int64_t width) const {
  return {1, config_.z_dim, 1, height / 8, width / 8};
}

std::vector<std::int64_t> AutoencoderKLQwenImage::image_shape(std::int64_t height, std::int64_t width) const {
  return {1, 3, 1, height, width};
}

}  // namespace offsim::real
