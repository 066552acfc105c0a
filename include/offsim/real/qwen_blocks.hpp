// The building blocks of diffusers' AutoencoderKLQwenImage (the Wan-2.1 causal 3D VAE), written from
// huggingface/diffusers src/diffusers/models/autoencoders/autoencoder_kl_qwenimage.py: QwenImageCausalConv3d,
// QwenImageRMS_norm, QwenImageUpsample, QwenImageResample, QwenImageResidualBlock, QwenImageAttentionBlock,
// QwenImageMidBlock, QwenImageUpBlock. Tensors are (B, C, T, H, W). Only the first chunk of the per-frame
// loop is supported (T = 1 in the decoder, the first frame in the encoder): that is an image.
//
// Liveness rules as in kl_blocks.hpp (one allocating op per statement, inputs held by the caller).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/torch.h>

#include "offsim/real/scoped_module.hpp"
#include "offsim/real/switches.hpp"

namespace offsim::real {

/// `_feat_map` / `feat_idx` of one encoder or decoder pass. A slot holds a cached tensor, the upsample3d
/// "Rep" marker, or nothing.
struct QwenFeatureCache {
  std::vector<torch::Tensor> slots;
  std::vector<bool> rep;
  std::size_t index = 0;

  explicit QwenFeatureCache(std::size_t size) : slots(size), rep(size, false) {}
  /// The slot the next cached conv uses; throws when the pass uses more slots than the model has.
  std::size_t next_slot() const;
};

/// QwenImageCausalConv3d: a Conv3d whose time padding (2 * p_t in front, none behind) and spatial padding
/// are applied by F.pad before an unpadded convolution; cached frames replace leading zero frames.
/// Parameters "weight" / "bias" as in nn.Conv3d.
class QwenCausalConv3dImpl : public ScopedModule {
 public:
  QwenCausalConv3dImpl(std::int64_t in_channels, std::int64_t out_channels, std::array<std::int64_t, 3> kernel,
                       std::array<std::int64_t, 3> stride, std::array<std::int64_t, 3> padding,
                       const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cache_x = {});

  torch::Tensor weight;
  torch::Tensor bias;

 private:
  std::array<std::int64_t, 3> kernel_;
  std::array<std::int64_t, 3> stride_;
  std::array<std::int64_t, 3> padding_;
  const RealSwitches* switches_;
};
TORCH_MODULE(QwenCausalConv3d);

/// QwenImageRMS_norm(dim, channel_first=True, images, bias=False): L2-normalise over channels (in fp32
/// for fp16/bf16 inputs when switches.rms_norm_fp32), * sqrt(dim) * gamma + 0.0.
class QwenRmsNormImpl : public ScopedModule {
 public:
  QwenRmsNormImpl(std::int64_t dim, bool images, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor gamma;

 private:
  double scale_;
  const RealSwitches* switches_;
};
TORCH_MODULE(QwenRmsNorm);

/// QwenImageResample for the four modes the VAE uses (first chunk only).
class QwenResampleImpl : public ScopedModule {
 public:
  enum class Mode { kUpsample2d, kUpsample3d, kDownsample2d, kDownsample3d };
  QwenResampleImpl(std::int64_t dim, Mode mode, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  torch::Tensor upsample(const torch::Tensor& x);
  Mode mode_;
  torch::nn::Conv2d conv_{nullptr};            // "resample.1"
  QwenCausalConv3d time_conv_{nullptr};        // 3-D modes; not run on the first chunk
  const RealSwitches* switches_;
};
TORCH_MODULE(QwenResample);

/// QwenImageResidualBlock: shortcut first, then RMS-SiLU-(cache)-conv3x3x3 twice, + shortcut.
class QwenResidualBlockImpl : public ScopedModule {
 public:
  QwenResidualBlockImpl(std::int64_t in_dim, std::int64_t out_dim, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  QwenRmsNorm norm1_{nullptr};
  QwenCausalConv3d conv1_{nullptr};
  QwenRmsNorm norm2_{nullptr};
  QwenCausalConv3d conv2_{nullptr};
  QwenCausalConv3d conv_shortcut_{nullptr};
};
TORCH_MODULE(QwenResidualBlock);

/// QwenImageAttentionBlock: single head of dim C per frame; 1x1 conv to_qkv, contiguous permuted qkv,
/// SDPA, 1x1 conv proj, + identity.
class QwenAttentionBlockImpl : public ScopedModule {
 public:
  QwenAttentionBlockImpl(std::int64_t dim, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  QwenRmsNorm norm_{nullptr};
  torch::nn::Conv2d to_qkv_{nullptr};
  torch::nn::Conv2d proj_{nullptr};
  const RealSwitches* switches_;
};
TORCH_MODULE(QwenAttentionBlock);

/// QwenImageMidBlock(num_layers=1): resnet, attention, resnet.
class QwenMidBlockImpl : public ScopedModule {
 public:
  QwenMidBlockImpl(std::int64_t dim, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  std::vector<QwenResidualBlock> resnets_;
  QwenAttentionBlock attention_{nullptr};
};
TORCH_MODULE(QwenMidBlock);

/// QwenImageUpBlock: num_res_blocks + 1 residual blocks, then an optional Resample.
class QwenUpBlockImpl : public ScopedModule {
 public:
  QwenUpBlockImpl(std::int64_t in_dim, std::int64_t out_dim, std::int64_t num_res_blocks,
                  std::optional<QwenResampleImpl::Mode> upsample_mode, const RealSwitches* switches);
  torch::Tensor forward(const torch::Tensor& x, QwenFeatureCache* cache);

 private:
  std::vector<QwenResidualBlock> resnets_;
  QwenResample upsampler_{nullptr};
};
TORCH_MODULE(QwenUpBlock);

/// Runs `conv` on `x` through the feature cache the way every cached conv call site in
/// autoencoder_kl_qwenimage.py does: clone the last min(CACHE_T, T) frames of x (prepending the previous
/// chunk's last cached frame when fewer than 2), convolve with the slot's old content, store the clone.
/// Without a cache it is a plain call.
torch::Tensor cached_causal_conv(QwenCausalConv3dImpl& conv, const torch::Tensor& x, QwenFeatureCache* cache);

/// Number of QwenCausalConv3d modules below `module` (the size of diffusers' `_feat_map`).
std::size_t count_causal_convs(const torch::nn::Module& module);

}  // namespace offsim::real
