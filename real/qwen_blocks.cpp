#include "offsim/real/qwen_blocks.hpp"

#include <cmath>
#include <string>

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/real/ops.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

namespace F = torch::nn::functional;

constexpr std::int64_t kCacheT = 2;  // CACHE_T

bool reduced_precision(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16;
}

}  // namespace

std::size_t QwenFeatureCache::next_slot() const {
  if (index >= slots.size()) {
    throw Error("Qwen-Image feature cache: more cached convolutions than the model has (" +
                std::to_string(slots.size()) + ")");
  }
  return index;
}

QwenCausalConv3dImpl::QwenCausalConv3dImpl(std::int64_t in_channels, std::int64_t out_channels,
                                           std::array<std::int64_t, 3> kernel, std::array<std::int64_t, 3> stride,
                                           std::array<std::int64_t, 3> padding, const RealSwitches* switches)
    : kernel_(kernel), stride_(stride), padding_(padding), switches_(switches) {
  weight = register_parameter("weight", torch::empty({out_channels, in_channels, kernel[0], kernel[1], kernel[2]}));
  bias = register_parameter("bias", torch::empty({out_channels}));
  // nn.Conv3d.reset_parameters: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * kernel[0] * kernel[1] * kernel[2]));
  torch::nn::init::uniform_(bias, -bound, bound);
}

torch::Tensor QwenCausalConv3dImpl::forward(const torch::Tensor& x, const torch::Tensor& cache_x) {
  ModuleScope scope(scope_path());
  const std::int64_t pt = padding_[0];
  const std::int64_t ph = padding_[1];
  const std::int64_t pw = padding_[2];
  if (switches_->causal_pad == CausalPad::kLastTapOnly && !cache_x.defined() && pt > 0 && x.size(2) == 1 &&
      stride_[0] == 1 && kernel_[0] == 2 * pt + 1) {
    // The 2*pt leading zero frames meet the first kernel_t - 1 taps; the frame itself meets the last one.
    const torch::Tensor last_tap = weight.narrow(2, kernel_[0] - 1, 1);
    return ops::convolution(x, last_tap, bias, {stride_[0], stride_[1], stride_[2]}, {0, ph, pw});
  }
  std::vector<std::int64_t> pad{pw, pw, ph, ph, 2 * pt, 0};
  torch::Tensor h = x;
  if (cache_x.defined() && pad[4] > 0) {
    h = torch::cat({cache_x, x}, 2);
    pad[4] -= cache_x.size(2);
  }
  // F.pad materialises the padded input (a copy even when every pad is 0: constant_pad_nd clones).
  h = F::pad(h, F::PadFuncOptions(pad).mode(torch::kConstant).value(0));
  return ops::convolution(h, weight, bias, {stride_[0], stride_[1], stride_[2]}, {0, 0, 0});
}

QwenRmsNormImpl::QwenRmsNormImpl(std::int64_t dim, bool images, const RealSwitches* switches)
    : scale_(std::sqrt(static_cast<double>(dim))), switches_(switches) {
  gamma = register_parameter("gamma", images ? torch::ones({dim, 1, 1}) : torch::ones({dim, 1, 1, 1}));
}

torch::Tensor QwenRmsNormImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  const bool upcast = switches_->rms_norm_fp32 && reduced_precision(x);
  torch::Tensor normalized;
  {
    // `F.normalize(x.float(), dim=1)`: the fp32 copy dies when normalize returns.
    const torch::Tensor input = upcast ? x.to(torch::kFloat) : x;
    normalized = F::normalize(input, F::NormalizeFuncOptions().p(2.0).dim(1).eps(1e-12));
  }
  normalized = normalized.to(x.scalar_type());
  torch::Tensor out = normalized * scale_;
  out = out * gamma;
  out = out + 0.0;  // self.bias is the Python float 0.0: the add still allocates
  return out;
}

QwenResampleImpl::QwenResampleImpl(std::int64_t dim, Mode mode, const RealSwitches* switches)
    : mode_(mode), switches_(switches) {
  const bool up = mode == Mode::kUpsample2d || mode == Mode::kUpsample3d;
  conv_ = up ? torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim / 2, 3).padding(1))
             : torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).stride(2).padding(0));
  // nn.Sequential(QwenImageUpsample | nn.ZeroPad2d, nn.Conv2d): the conv is "resample.1".
  register_module("resample", torch::nn::ModuleList(torch::nn::Identity(), conv_));
  if (mode == Mode::kUpsample3d) {
    time_conv_ = register_module("time_conv", QwenCausalConv3d(dim, dim * 2, std::array<std::int64_t, 3>{3, 1, 1},
                                                               std::array<std::int64_t, 3>{1, 1, 1},
                                                               std::array<std::int64_t, 3>{1, 0, 0}, switches));
  } else if (mode == Mode::kDownsample3d) {
    time_conv_ = register_module("time_conv", QwenCausalConv3d(dim, dim, std::array<std::int64_t, 3>{3, 1, 1},
                                                               std::array<std::int64_t, 3>{2, 1, 1},
                                                               std::array<std::int64_t, 3>{0, 0, 0}, switches));
  }
}

// QwenImageUpsample: `super().forward(x.float()).type_as(x)` with mode "nearest-exact".
torch::Tensor QwenResampleImpl::upsample(const torch::Tensor& x) {
  if (!switches_->upsample_fp32) return ops::upsample_nearest2x(x, /*exact=*/true);
  torch::Tensor up;
  {
    const torch::Tensor input = x.to(torch::kFloat);
    up = ops::upsample_nearest2x(input, /*exact=*/true);
  }
  torch::Tensor out = up.to(x.scalar_type());
  up.reset();
  return out;
}

torch::Tensor QwenResampleImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  const std::int64_t b = x.size(0);
  const std::int64_t t = x.size(2);
  if (mode_ == Mode::kUpsample3d && cache != nullptr) {
    const std::size_t idx = cache->next_slot();
    if (cache->slots[idx].defined() || cache->rep[idx]) {
      throw Error("Qwen-Image upsample3d: only the first chunk (one frame) is supported");
    }
    // First chunk: the slot becomes "Rep" and time_conv is skipped.
    cache->rep[idx] = true;
    ++cache->index;
  }
  torch::Tensor h = x.permute({0, 2, 1, 3, 4}).reshape({b * t, x.size(1), x.size(3), x.size(4)});
  if (mode_ == Mode::kUpsample2d || mode_ == Mode::kUpsample3d) {
    h = upsample(h);
  } else {
    h = F::pad(h, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0));  // nn.ZeroPad2d
  }
  h = ops::conv2d(h, conv_);
  h = h.view({b, t, h.size(1), h.size(2), h.size(3)}).permute({0, 2, 1, 3, 4});
  if (mode_ == Mode::kDownsample3d && cache != nullptr) {
    const std::size_t idx = cache->next_slot();
    if (cache->slots[idx].defined()) {
      throw Error("Qwen-Image downsample3d: only the first chunk (one frame) is supported");
    }
    cache->slots[idx] = h.clone();  // first chunk: cache a clone of the output, no time_conv
    ++cache->index;
  }
  return h;
}

torch::Tensor cached_causal_conv(QwenCausalConv3dImpl& conv, const torch::Tensor& x, QwenFeatureCache* cache) {
  if (cache == nullptr) return conv.forward(x);
  const std::size_t idx = cache->next_slot();
  const std::int64_t frames = std::min<std::int64_t>(kCacheT, x.size(2));
  torch::Tensor cache_x = x.narrow(2, x.size(2) - frames, frames).clone();
  if (cache_x.size(2) < 2 && cache->slots[idx].defined()) {
    // "cache last frame of last two chunk"
    const torch::Tensor& previous = cache->slots[idx];
    cache_x = torch::cat({previous.narrow(2, previous.size(2) - 1, 1), cache_x}, 2);
  }
  torch::Tensor out = conv.forward(x, cache->slots[idx]);
  cache->slots[idx] = cache_x;
  ++cache->index;
  return out;
}

QwenResidualBlockImpl::QwenResidualBlockImpl(std::int64_t in_dim, std::int64_t out_dim, const RealSwitches* switches) {
  const std::array<std::int64_t, 3> k3{3, 3, 3};
  const std::array<std::int64_t, 3> one{1, 1, 1};
  const std::array<std::int64_t, 3> zero{0, 0, 0};
  norm1_ = register_module("norm1", QwenRmsNorm(in_dim, /*images=*/false, switches));
  conv1_ = register_module("conv1", QwenCausalConv3d(in_dim, out_dim, k3, one, one, switches));
  norm2_ = register_module("norm2", QwenRmsNorm(out_dim, /*images=*/false, switches));
  conv2_ = register_module("conv2", QwenCausalConv3d(out_dim, out_dim, k3, one, one, switches));
  if (in_dim != out_dim) {
    conv_shortcut_ = register_module("conv_shortcut", QwenCausalConv3d(in_dim, out_dim, one, one, zero, switches));
  }
}

torch::Tensor QwenResidualBlockImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  const torch::Tensor h = conv_shortcut_ ? conv_shortcut_->forward(x) : x;
  torch::Tensor y = norm1_->forward(x);
  y = torch::silu(y);
  y = cached_causal_conv(*conv1_, y, cache);
  y = norm2_->forward(y);
  y = torch::silu(y);
  // Dropout(0.0) allocates nothing.
  y = cached_causal_conv(*conv2_, y, cache);
  return y + h;
}

QwenAttentionBlockImpl::QwenAttentionBlockImpl(std::int64_t dim, const RealSwitches* switches) : switches_(switches) {
  norm_ = register_module("norm", QwenRmsNorm(dim, /*images=*/true, switches));
  to_qkv_ = register_module("to_qkv", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim * 3, 1)));
  proj_ = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 1)));
}

torch::Tensor QwenAttentionBlockImpl::forward(const torch::Tensor& x) {
  ModuleScope scope(scope_path());
  if (switches_->attention == AttentionImpl::kLegacyFp32Softmax) {
    throw Error("Qwen-Image attention always calls F.scaled_dot_product_attention: choose math or efficient");
  }
  const torch::Tensor& identity = x;
  const std::int64_t b = x.size(0);
  const std::int64_t c = x.size(1);
  const std::int64_t t = x.size(2);
  const std::int64_t height = x.size(3);
  const std::int64_t width = x.size(4);
  torch::Tensor y = x.permute({0, 2, 1, 3, 4}).reshape({b * t, c, height, width});
  y = norm_->forward(y);
  torch::Tensor qkv = ops::conv2d(y, to_qkv_);
  qkv = qkv.reshape({b * t, 1, c * 3, -1});
  qkv = qkv.permute({0, 1, 3, 2}).contiguous();
  const auto chunks = qkv.chunk(3, -1);
  y = ops::scaled_dot_product_attention(chunks[0], chunks[1], chunks[2], switches_->attention,
                                        switches_->efficient_attention_chunk);
  y = y.squeeze(1).permute({0, 2, 1}).reshape({b * t, c, height, width});
  y = ops::conv2d(y, proj_);
  y = y.view({b, t, c, height, width});
  y = y.permute({0, 2, 1, 3, 4});
  return y + identity;
}

QwenMidBlockImpl::QwenMidBlockImpl(std::int64_t dim, const RealSwitches* switches) {
  torch::nn::ModuleList resnets;
  for (int i = 0; i < 2; ++i) {
    resnets_.emplace_back(dim, dim, switches);
    resnets->push_back(resnets_.back());
  }
  register_module("resnets", resnets);
  attention_ = QwenAttentionBlock(dim, switches);
  register_module("attentions", torch::nn::ModuleList(attention_));
}

torch::Tensor QwenMidBlockImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  torch::Tensor h = resnets_[0]->forward(x, cache);
  h = attention_->forward(h);
  h = resnets_[1]->forward(h, cache);
  return h;
}

QwenUpBlockImpl::QwenUpBlockImpl(std::int64_t in_dim, std::int64_t out_dim, std::int64_t num_res_blocks,
                                 std::optional<QwenResampleImpl::Mode> upsample_mode, const RealSwitches* switches) {
  torch::nn::ModuleList resnets;
  std::int64_t current = in_dim;
  for (std::int64_t i = 0; i < num_res_blocks + 1; ++i) {
    resnets_.emplace_back(current, out_dim, switches);
    resnets->push_back(resnets_.back());
    current = out_dim;
  }
  register_module("resnets", resnets);
  if (upsample_mode) {
    upsampler_ = QwenResample(out_dim, *upsample_mode, switches);
    register_module("upsamplers", torch::nn::ModuleList(upsampler_));
  }
}

torch::Tensor QwenUpBlockImpl::forward(const torch::Tensor& x, QwenFeatureCache* cache) {
  ModuleScope scope(scope_path());
  torch::Tensor h = x;
  for (auto& resnet : resnets_) h = resnet->forward(h, cache);
  if (upsampler_) h = upsampler_->forward(h, cache);
  return h;
}

std::size_t count_causal_convs(const torch::nn::Module& module) {
  std::size_t count = 0;
  for (const auto& child : module.modules(/*include_self=*/false)) {
    if (dynamic_cast<const QwenCausalConv3dImpl*>(child.get()) != nullptr) ++count;
  }
  return count;
}

}  // namespace offsim::real
