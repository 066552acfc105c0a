// The implementation choices that change a VAE's working memory by 2-4x without changing its maths:
// which attention kernel runs, which convolution algorithm (and so which workspace) runs, and the
// diffusers-specific liveness drivers named in shared/specs/vae_architectures.md (Qwen-Image feature
// cache, materialised causal padding, fp32 upcasts). A plain struct: every field has the diffusers
// default, so `RealSwitches{}` is "what diffusers does on CUDA with SDPA".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offsim::real {

/// Attention implementation of the single-head mid-block attention (SD/FLUX: d = 512; Qwen: d = 384).
enum class AttentionImpl : std::uint8_t {
  /// PyTorch's math SDPA fallback (aten/src/ATen/native/transformers/attention.cpp,
  /// `_scaled_dot_product_attention_math`): fp16/bf16 q, k, v upcast to fp32, N x N scores and an N x N
  /// `_safe_softmax` in fp32. What ROCm builds without a fused kernel run.
  kMath,
  /// A fused O(N) kernel: on CUDA PyTorch picks the CUTLASS memory-efficient kernel for these head dims
  /// (flash requires d <= 256). Recorded on CPU as a query-chunked loop whose chunks the CUDA rewrite
  /// replaces with the kernel's own allocations (see cuda_rewrite.hpp).
  kEfficient,
  /// diffusers' legacy `AttnProcessor` (AutoencoderKL only): `baddbmm` into an N x N buffer in the
  /// working dtype, scores upcast to fp32 (`upcast_softmax=True`), fp32 softmax, cast back.
  kLegacyFp32Softmax,
};

/// What a convolution allocates besides its output on the GPU.
enum class ConvWorkspace : std::uint8_t {
  /// Implicit GEMM / direct kernels: no workspace (a lower bound for cuDNN and MIOpen).
  kImplicitGemm,
  /// im2col/vol2col + GEMM: a column buffer of C_in/groups * prod(kernel) * prod(output spatial) * groups
  /// elements per convolution (MIOpen GemmFwdRest::GetWorkspaceSize; PyTorch's native slow_conv path).
  /// 1x1, stride-1, unpadded convolutions need none (MIOpen GemmFwd1x1_0_1).
  kColumnBuffer,
};

/// The Qwen-Image feature cache (diffusers autoencoder_kl_qwenimage.py, CACHE_T = 2).
enum class FeatureCache : std::uint8_t {
  /// diffusers: every causal 3x3x3 conv clones its (last two frames of) input into the cache, kept until
  /// `clear_cache()` after the whole decode. For one image that is a full copy of every conv input.
  kDiffusersClones,
  /// No cache (what ComfyUI does for a single chunk, comfy/ldm/wan/vae.py).
  kNone,
};

/// How a causal Conv3d sees its two leading zero frames when it has no cached frames.
enum class CausalPad : std::uint8_t {
  /// diffusers: `F.pad` materialises (C, T + 2, H + 2, W + 2) before an unpadded Conv3d.
  kMaterialised,
  /// The zero frames contribute nothing, so convolve with the kernel's last temporal tap and let the
  /// convolution pad H and W itself (ComfyUI's "causal_zero" fast path for T = 1 without cache).
  /// Only differs from kMaterialised where no cached frames exist.
  kLastTapOnly,
};

struct RealSwitches {
  AttentionImpl attention = AttentionImpl::kEfficient;
  ConvWorkspace conv_workspace = ConvWorkspace::kImplicitGemm;
  FeatureCache feature_cache = FeatureCache::kDiffusersClones;
  CausalPad causal_pad = CausalPad::kMaterialised;
  /// Qwen RMS norm normalises fp16/bf16 inputs in fp32 (diffusers PR #13316): two full fp32 transients.
  bool rms_norm_fp32 = true;
  /// Nearest upsampling in fp32: AutoencoderKL's Upsample2D casts bf16 to fp32 around interpolate
  /// (diffusers upsampling.py, pytorch/pytorch#86679); QwenImageUpsample always runs on `x.float()`.
  bool upsample_fp32 = true;
  /// Query rows per chunk of the CPU stand-in for the fused attention kernel (CPU memory only; the CUDA
  /// rewrite drops the chunks).
  std::int64_t efficient_attention_chunk = 1024;

  friend bool operator==(const RealSwitches&, const RealSwitches&) = default;
};

std::string_view to_string(AttentionImpl value);    // "math", "efficient", "legacy-fp32-softmax"
std::string_view to_string(ConvWorkspace value);    // "implicit", "column-buffer"
std::string_view to_string(FeatureCache value);     // "diffusers-clones", "none"
std::string_view to_string(CausalPad value);        // "materialised", "last-tap"
std::optional<AttentionImpl> parse_attention_impl(std::string_view text);
std::optional<ConvWorkspace> parse_conv_workspace(std::string_view text);
std::optional<FeatureCache> parse_feature_cache(std::string_view text);
std::optional<CausalPad> parse_causal_pad(std::string_view text);

/// One line naming every switch, e.g. "attention=efficient conv-workspace=implicit feature-cache=...".
std::string describe(const RealSwitches& switches);

}  // namespace offsim::real
