// GPU workspace of the kernels a CPU recording cannot show, as functions of the recorded shapes.
// Each formula is read from the code that allocates it; nothing here is fitted.
#pragma once

#include <cstdint>

#include "offsim/real/recording.hpp"

namespace offsim::real {

/// Column buffer of an im2col/vol2col + GEMM convolution: C_in/groups * prod(kernel) * prod(output spatial)
/// * element size * groups bytes, reused across the batch. This is MIOpen's GemmFwdRest::GetWorkspaceSize
/// (ROCm/MIOpen src/solver/gemm*.cpp: wei_c * prod(wei_spatial) * prod(out_spatial) * type size * groups),
/// and the per-image `columns` buffer of PyTorch's native slow_conv2d/slow_conv3d. 0 for a 1x1, stride-1,
/// unpadded convolution: MIOpen's GemmFwd1x1_0_1 multiplies the input directly (workspace 0).
/// Example: the last Qwen-Image 3x3x3 conv at 1248x832 bf16 needs 96*27*1248*832*2 = 5,382,733,824 bytes,
/// the 5.01 GiB request of InvokeAI PR 9305.
std::uint64_t column_buffer_bytes(const ConvolutionCall& call);

/// fp32 output accumulator of PyTorch's CUTLASS memory-efficient attention forward
/// (aten/src/ATen/native/transformers/cuda/attention.cu `_efficient_attention_forward`: `output_accum`
/// of B x M x heads x Kv in the accumulator type when `Kernel::kNeedsOutputAccumulatorBuffer`).
/// kernel_forward.h: kNeedsOutputAccumulatorBuffer = !kKeepOutputInRF && output_accum_t != output_t, and
/// kKeepOutputInRF = kSingleValueIteration = (kMaxK <= kKeysPerBlock); PyTorch instantiates kMaxK = 64
/// and 128 (single iteration) and 65536 (for head dims above 128). So the buffer exists for fp16/bf16
/// outputs with Kv > 128 (the VAEs' 384 and 512) and never for fp32. Under no_grad the logsumexp tensor
/// has 0 elements and allocates nothing.
std::uint64_t efficient_attention_workspace_bytes(const FusedAttentionCall& call);

/// Head dims above this use PyTorch's kMaxK = 65536 memory-efficient kernel (no single value iteration).
inline constexpr std::int64_t kMemEfficientMaxSingleIterationHeadDim = 128;

}  // namespace offsim::real
