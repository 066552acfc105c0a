#include "offsim/real/kl_blocks.hpp"

#include <cmath>
#include <string>

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/real/ops.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

namespace F = torch::nn::functional;

// GroupNorm eps is 1e-6 everywhere in the VAE (vae.py passes resnet_eps=1e-6, Attention eps=1e-6).
constexpr double kGroupNormEps = 1e-6;

torch::nn::GroupNorm make_group_norm(std::int64_t groups, std::int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kGroupNormEps).affine(true));
}

torch::nn::Conv2d make_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                       std::int64_t padding) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(true));
}

}  // namespace

KlResnetBlock2DImpl::KlResnetBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t groups) {
  norm1 = register_module("norm1", make_group_norm(groups, in_channels));
  conv1 = register_module("conv1", make_conv(in_channels, out_channels, 3, 1, 1));
  norm2 = register_module("norm2", make_group_norm(groups, out_channels));
  conv2 = register_module("conv2", make_conv(out_channels, out_channels, 3, 1, 1));
  if (in_channels != out_channels) {
    conv_shortcut = register_module("conv_shortcut", make_conv(in_channels, out_channels, 1, 1, 0));
  }
}

torch::Tensor KlResnetBlock2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor h = norm1->forward(x);
  h = torch::silu(h);
  h = ops::conv2d(h, conv1);
  h = norm2->forward(h);
  h = torch::silu(h);
  // Dropout(p=0) in eval allocates nothing.
  h = ops::conv2d(h, conv2);
  torch::Tensor input = x;
  if (conv_shortcut) input = ops::conv2d(x.contiguous(), conv_shortcut);
  torch::Tensor out = input + h;
  out = out / 1.0;  // output_scale_factor
  return out;
}

KlAttentionImpl::KlAttentionImpl(std::int64_t channels, std::int64_t groups, const RealSwitches* switches)
    : switches_(switches) {
  group_norm = register_module("group_norm", make_group_norm(groups, channels));
  to_q = register_module("to_q", torch::nn::Linear(torch::nn::LinearOptions(channels, channels).bias(true)));
  to_k = register_module("to_k", torch::nn::Linear(torch::nn::LinearOptions(channels, channels).bias(true)));
  to_v = register_module("to_v", torch::nn::Linear(torch::nn::LinearOptions(channels, channels).bias(true)));
  out_proj_ = torch::nn::Linear(torch::nn::LinearOptions(channels, channels).bias(true));
  to_out = register_module("to_out", torch::nn::ModuleList(out_proj_, torch::nn::Dropout(0.0)));
}

// AttnProcessor2_0.__call__ (and AttnProcessor.__call__ for the legacy switch) for a 4-D input.
torch::Tensor KlAttentionImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  const torch::Tensor& residual = x;
  const std::int64_t batch = x.size(0);
  const std::int64_t channels = x.size(1);
  const std::int64_t height = x.size(2);
  const std::int64_t width = x.size(3);
  torch::Tensor hidden_states = x.view({batch, channels, height * width}).transpose(1, 2);
  hidden_states = group_norm->forward(hidden_states.transpose(1, 2)).transpose(1, 2);
  if (switches_->attention == AttentionImpl::kLegacyFp32Softmax) {
    // The processor rebinds hidden_states, so the GroupNorm output must not outlive that rebinding here.
    return legacy_attention(std::move(hidden_states), residual, x.sizes());
  }
  torch::Tensor query = ops::linear(hidden_states, to_q);
  torch::Tensor key = ops::linear(hidden_states, to_k);
  torch::Tensor value = ops::linear(hidden_states, to_v);
  const std::int64_t head_dim = key.size(-1) / heads_;
  query = query.view({batch, -1, heads_, head_dim}).transpose(1, 2);
  key = key.view({batch, -1, heads_, head_dim}).transpose(1, 2);
  value = value.view({batch, -1, heads_, head_dim}).transpose(1, 2);
  hidden_states = ops::scaled_dot_product_attention(query, key, value, switches_->attention,
                                                    switches_->efficient_attention_chunk);
  hidden_states = hidden_states.transpose(1, 2).reshape({batch, -1, heads_ * head_dim});
  hidden_states = hidden_states.to(query.scalar_type());
  hidden_states = ops::linear(hidden_states, out_proj_);
  hidden_states = hidden_states.transpose(-1, -2).reshape({batch, channels, height, width});
  hidden_states = hidden_states + residual;
  hidden_states = hidden_states / 1.0;  // rescale_output_factor
  return hidden_states;
}

// The legacy AttnProcessor: head_to_batch_dim, get_attention_scores (baddbmm into torch.empty, scores
// upcast to fp32 because upcast_softmax=True, softmax, cast back), bmm, batch_to_head_dim. `query`, `key`,
// `value` and `attention_probs` stay bound until the processor returns.
torch::Tensor KlAttentionImpl::legacy_attention(torch::Tensor hidden_states, const torch::Tensor& residual,
                                                torch::IntArrayRef input_shape) {
  const std::int64_t batch = hidden_states.size(0);
  const std::int64_t tokens = hidden_states.size(1);
  torch::Tensor query = ops::linear(hidden_states, to_q);
  torch::Tensor key = ops::linear(hidden_states, to_k);
  torch::Tensor value = ops::linear(hidden_states, to_v);
  const std::int64_t dim = query.size(-1);
  const std::int64_t head_dim = dim / heads_;
  auto head_to_batch_dim = [&](const torch::Tensor& t) {
    return t.reshape({batch, tokens, heads_, head_dim}).permute({0, 2, 1, 3}).reshape({batch * heads_, tokens, head_dim});
  };
  query = head_to_batch_dim(query);
  key = head_to_batch_dim(key);
  value = head_to_batch_dim(value);

  const auto dtype = query.scalar_type();
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  torch::Tensor attention_probs;
  {
    torch::Tensor baddbmm_input = torch::empty({query.size(0), query.size(1), key.size(1)}, query.options());
    torch::Tensor attention_scores = ops::baddbmm(baddbmm_input, query, key.transpose(-1, -2), 0.0, scale);
    baddbmm_input.reset();
    attention_scores = attention_scores.to(torch::kFloat);  // upcast_softmax
    attention_probs = attention_scores.softmax(-1);
    attention_scores.reset();
    attention_probs = attention_probs.to(dtype);
  }
  hidden_states = ops::bmm(attention_probs, value);
  hidden_states = hidden_states.reshape({batch, heads_, tokens, head_dim}).permute({0, 2, 1, 3}).reshape({batch, tokens, dim});
  hidden_states = ops::linear(hidden_states, out_proj_);
  hidden_states = hidden_states.transpose(-1, -2).reshape(input_shape);
  hidden_states = hidden_states + residual;
  hidden_states = hidden_states / 1.0;
  return hidden_states;
}

KlUpsample2DImpl::KlUpsample2DImpl(std::int64_t channels, const RealSwitches* switches) : switches_(switches) {
  conv = register_module("conv", make_conv(channels, channels, 3, 1, 1));
}

torch::Tensor KlUpsample2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  const auto dtype = x.scalar_type();
  // "Cast to float32 to as 'upsample_nearest2d_out_frame' op does not support bfloat16".
  const bool upcast = dtype == torch::kBFloat16 && switches_->upsample_fp32;
  torch::Tensor h = x;
  if (upcast) h = h.to(torch::kFloat);
  h = ops::upsample_nearest2x(h, /*exact=*/false);
  if (upcast) h = h.to(dtype);
  h = ops::conv2d(h, conv);
  return h;
}

KlDownsample2DImpl::KlDownsample2DImpl(std::int64_t channels) {
  conv = register_module("conv", make_conv(channels, channels, 3, 2, 0));
}

torch::Tensor KlDownsample2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor h = F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0));
  h = ops::conv2d(h, conv);
  return h;
}

KlMidBlock2DImpl::KlMidBlock2DImpl(std::int64_t channels, std::int64_t groups, const RealSwitches* switches) {
  torch::nn::ModuleList resnets;
  for (int i = 0; i < 2; ++i) {
    resnets_.emplace_back(channels, channels, groups);
    resnets->push_back(resnets_.back());
  }
  register_module("resnets", resnets);
  attention_ = KlAttention(channels, groups, switches);
  register_module("attentions", torch::nn::ModuleList(attention_));
}

torch::Tensor KlMidBlock2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor h = resnets_[0]->forward(x);
  h = attention_->forward(h);
  h = resnets_[1]->forward(h);
  return h;
}

KlUpDecoderBlock2DImpl::KlUpDecoderBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels,
                                               std::int64_t layers, bool add_upsample, std::int64_t groups,
                                               const RealSwitches* switches) {
  torch::nn::ModuleList resnets;
  for (std::int64_t i = 0; i < layers; ++i) {
    resnets_.emplace_back(i == 0 ? in_channels : out_channels, out_channels, groups);
    resnets->push_back(resnets_.back());
  }
  register_module("resnets", resnets);
  if (add_upsample) {
    upsampler_ = KlUpsample2D(out_channels, switches);
    register_module("upsamplers", torch::nn::ModuleList(upsampler_));
  }
}

torch::Tensor KlUpDecoderBlock2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor h = x;
  for (auto& resnet : resnets_) h = resnet->forward(h);
  if (upsampler_) h = upsampler_->forward(h);
  return h;
}

KlDownEncoderBlock2DImpl::KlDownEncoderBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels,
                                                   std::int64_t layers, bool add_downsample, std::int64_t groups) {
  torch::nn::ModuleList resnets;
  for (std::int64_t i = 0; i < layers; ++i) {
    resnets_.emplace_back(i == 0 ? in_channels : out_channels, out_channels, groups);
    resnets->push_back(resnets_.back());
  }
  register_module("resnets", resnets);
  if (add_downsample) {
    downsampler_ = KlDownsample2D(out_channels);
    register_module("downsamplers", torch::nn::ModuleList(downsampler_));
  }
}

torch::Tensor KlDownEncoderBlock2DImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  torch::Tensor h = x;
  for (auto& resnet : resnets_) h = resnet->forward(h);
  if (downsampler_) h = downsampler_->forward(h);
  return h;
}

}  // namespace offsim::real
