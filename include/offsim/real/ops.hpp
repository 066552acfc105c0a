// The kernels whose CPU and CUDA allocations differ, each wrapped in a KernelScope that records the
// shapes the CUDA rewrite needs (cuda_rewrite.hpp), plus the attention implementations the switches select.
// Modules call these instead of the torch functions; everything else they call directly.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "offsim/real/switches.hpp"

namespace offsim::real::ops {

/// F.conv2d / F.conv3d (chosen by the input's rank) with the convolution's own stride and padding.
torch::Tensor convolution(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                          torch::IntArrayRef stride, torch::IntArrayRef padding);

/// nn.Conv2d.forward (zero padding mode, no dilation, groups 1: the only kind the VAEs use).
torch::Tensor conv2d(const torch::Tensor& input, const torch::nn::Conv2d& conv);

/// nn.Linear.forward.
torch::Tensor linear(const torch::Tensor& input, const torch::nn::Linear& linear);

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor bmm(const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor baddbmm(const torch::Tensor& self, const torch::Tensor& a, const torch::Tensor& b, double beta,
                      double alpha);

/// F.interpolate(x, scale_factor=2, mode="nearest") or mode="nearest-exact" on (N, C, H, W).
torch::Tensor upsample_nearest2x(const torch::Tensor& input, bool exact);

/// F.scaled_dot_product_attention(q, k, v) for (B, heads, N, d) inputs, no mask, no dropout, default scale,
/// as the chosen implementation allocates it on CUDA:
///  * kMath: PyTorch's `_scaled_dot_product_attention_math` (attention.cpp) op for op: fp16/bf16 q, k, v
///    upcast to fp32, q * sqrt(scale), k^T * sqrt(scale), N x N matmul, `_safe_softmax` (softmax, == -inf
///    mask, all(), where), matmul with v, cast back, and the discarded N x N attention weights cast back.
///  * kEfficient: one fused-attention kernel scope whose output is allocated as the CUTLASS kernel does
///    ((B, N, heads, d), returned transposed); computed on CPU in query chunks of `chunk` rows.
/// kLegacyFp32Softmax is not an SDPA implementation (see KlAttention) and is rejected here.
torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           AttentionImpl impl, std::int64_t chunk);

}  // namespace offsim::real::ops
