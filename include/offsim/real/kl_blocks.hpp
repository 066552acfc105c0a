// The building blocks of diffusers' AutoencoderKL (SD1.5, SDXL, FLUX.1), written from
// huggingface/diffusers src/diffusers/models/resnet.py (ResnetBlock2D), attention_processor.py (Attention
// with AttnProcessor2_0 and the legacy AttnProcessor), upsampling.py (Upsample2D), downsampling.py
// (Downsample2D) and unets/unet_2d_blocks.py (UNetMidBlock2D, UpDecoderBlock2D, DownEncoderBlock2D).
//
// Liveness follows the Python code: a block's input is held by the caller for the whole call; rebinding a
// variable frees the old tensor after the new one exists; a temporary of a Python expression dies once the
// next op consumed it, so each allocating op gets its own C++ statement (C++ temporaries would live until
// the end of the full expression and overstate the peak). Parameter names match the diffusers state dict.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "offsim/real/scoped_module.hpp"
#include "offsim/real/switches.hpp"

namespace offsim::real {

/// ResnetBlock2D without time embedding: GroupNorm-SiLU-conv3x3 twice, 1x1 conv_shortcut when the channel
/// count changes, (shortcut + h) / output_scale_factor (1.0: the division still allocates).
class KlResnetBlock2DImpl : public ScopedModule {
 public:
  KlResnetBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::GroupNorm norm1{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::GroupNorm norm2{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::Conv2d conv_shortcut{nullptr};  // only when in != out
};
TORCH_MODULE(KlResnetBlock2D);

/// The mid-block Attention: one head of dim C (attention_head_dim = C), GroupNorm on the input, Linear
/// q/k/v/out with bias, residual connection, rescale_output_factor 1.
class KlAttentionImpl : public ScopedModule {
 public:
  KlAttentionImpl(std::int64_t channels, std::int64_t groups, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr};
  torch::nn::Linear to_k{nullptr};
  torch::nn::Linear to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear, Dropout] in diffusers; the Dropout has no parameters

 private:
  torch::Tensor legacy_attention(torch::Tensor hidden_states, const torch::Tensor& residual,
                                 torch::IntArrayRef input_shape);
  torch::nn::Linear out_proj_{nullptr};
  const RealSwitches* switches_;
  std::int64_t heads_ = 1;
};
TORCH_MODULE(KlAttention);

/// Upsample2D(use_conv=True): nearest x2 (in fp32 for bf16 inputs when switches.upsample_fp32), conv 3x3.
class KlUpsample2DImpl : public ScopedModule {
 public:
  KlUpsample2DImpl(std::int64_t channels, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};

 private:
  const RealSwitches* switches_;
};
TORCH_MODULE(KlUpsample2D);

/// Downsample2D(use_conv=True, padding=0): F.pad (0, 1, 0, 1) then conv 3x3 stride 2.
class KlDownsample2DImpl : public ScopedModule {
 public:
  explicit KlDownsample2DImpl(std::int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(KlDownsample2D);

/// UNetMidBlock2D(temb_channels=None, add_attention=True, num_layers=1): resnet, attention, resnet.
class KlMidBlock2DImpl : public ScopedModule {
 public:
  KlMidBlock2DImpl(std::int64_t channels, std::int64_t groups, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<KlResnetBlock2D> resnets_;
  KlAttention attention_{nullptr};
};
TORCH_MODULE(KlMidBlock2D);

/// UpDecoderBlock2D: `layers` resnets then an optional Upsample2D.
class KlUpDecoderBlock2DImpl : public ScopedModule {
 public:
  KlUpDecoderBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t layers,
                         bool add_upsample, std::int64_t groups, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<KlResnetBlock2D> resnets_;
  KlUpsample2D upsampler_{nullptr};
};
TORCH_MODULE(KlUpDecoderBlock2D);

/// DownEncoderBlock2D: `layers` resnets then an optional Downsample2D.
class KlDownEncoderBlock2DImpl : public ScopedModule {
 public:
  KlDownEncoderBlock2DImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t layers,
                           bool add_downsample, std::int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<KlResnetBlock2D> resnets_;
  KlDownsample2D downsampler_{nullptr};
};
TORCH_MODULE(KlDownEncoderBlock2D);

}  // namespace offsim::real
