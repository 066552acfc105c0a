#include "offsim/real/ops.hpp"

#include <cmath>
#include <limits>
#include <variant>

#include <torch/version.h>

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real::ops {
namespace {

std::vector<std::int64_t> to_vector(torch::IntArrayRef values) { return {values.begin(), values.end()}; }

// `_safe_softmax` (attention.cpp): softmax, then rows that were all -inf become 0.
torch::Tensor safe_softmax(const torch::Tensor& self, std::int64_t dim) {
  const torch::Tensor out = torch::softmax(self, dim);
  const torch::Tensor neg_inf = torch::scalar_tensor(-std::numeric_limits<float>::infinity(), out.options());
  const torch::Tensor masked = self.eq(neg_inf);
  const torch::Tensor masked_rows = torch::all(masked, dim, /*keepdim=*/true);
  const torch::Tensor zero = torch::scalar_tensor(0.0, out.options());
  return torch::where(masked_rows, zero, out);
}

torch::Tensor sdpa_math(const torch::Tensor& query_, const torch::Tensor& key, const torch::Tensor& value) {
  const auto origin = query_.scalar_type();
  const bool reduced = origin == torch::kHalf || origin == torch::kBFloat16;
  // "Keep query, key, value in high precision for accuracy" (allowFP16BF16ReductionMathSDP is off by default).
  const torch::Tensor query_acc = reduced ? query_.to(torch::kFloat) : query_;
  const torch::Tensor key_acc = reduced ? key.to(torch::kFloat) : key;
  const torch::Tensor value_acc = reduced ? value.to(torch::kFloat) : value;
  const double scaling_factor = std::sqrt(1.0 / std::sqrt(static_cast<double>(query_.size(-1))));
  const torch::Tensor query = query_acc * scaling_factor;
  torch::Tensor attn;
  {
    // The scaled k^T is a temporary of the matmul statement.
    const torch::Tensor key_scaled = key_acc.transpose(-2, -1) * scaling_factor;
    attn = ops::matmul(query, key_scaled);
  }
  attn = safe_softmax(attn, -1);
  // `std::make_tuple(at::matmul(attn, value).to(origin), attn.to(origin))`: both temporaries and both casts
  // are alive together at the end of that statement; the second is discarded by the caller.
  [[maybe_unused]] const torch::Tensor attn_origin = attn.to(origin);
  const torch::Tensor out_acc = ops::matmul(attn, value_acc);
  return out_acc.to(origin);
}

torch::Tensor sdpa_efficient(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             std::int64_t chunk) {
  if (chunk <= 0) throw Error("efficient attention: chunk must be positive");
  KernelScope scope(KernelKind::kFusedAttention, "efficient_attention");
  const std::int64_t batch = q.size(0);
  const std::int64_t heads = q.size(1);
  const std::int64_t queries = q.size(2);
  const std::int64_t value_dim = v.size(3);
  // `_efficient_attention_forward`: res = at::empty({B, M, num_heads, Kv}, query.options()).
  const torch::Tensor res = torch::empty({batch, queries, heads, value_dim}, q.options());
  const torch::Tensor out = res.transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  for (std::int64_t start = 0; start < queries; start += chunk) {
    const std::int64_t rows = std::min(chunk, queries - start);
    torch::Tensor scores = torch::matmul(q.narrow(2, start, rows), k.transpose(-2, -1));
    scores.mul_(scale);
    const torch::Tensor probs = torch::softmax(scores, -1);
    out.narrow(2, start, rows).copy_(torch::matmul(probs, v));
  }
  FusedAttentionCall call;
  call.batch_heads = batch * heads;
  call.queries = queries;
  call.keys = k.size(2);
  call.value_head_dim = value_dim;
  call.element_size = static_cast<std::uint64_t>(q.element_size());
  call.reduced_precision = q.scalar_type() == torch::kHalf || q.scalar_type() == torch::kBFloat16;
  scope.set_attention(call);
  return out;
}

}  // namespace

torch::Tensor convolution(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                          torch::IntArrayRef stride, torch::IntArrayRef padding) {
  const bool three_d = input.dim() == 5;
  KernelScope scope(KernelKind::kConvolution, three_d ? "conv3d" : "conv2d");
  torch::Tensor out = three_d ? torch::conv3d(input, weight, bias, stride, padding)
                              : torch::conv2d(input, weight, bias, stride, padding);
  ConvolutionCall call;
  call.batch = input.size(0);
  call.in_channels_per_group = weight.size(1);
  call.groups = input.size(1) / weight.size(1);
  call.kernel = to_vector(weight.sizes().slice(2));
  call.stride = to_vector(stride);
  call.padding = to_vector(padding);
  call.output = to_vector(out.sizes().slice(2));
  call.element_size = static_cast<std::uint64_t>(input.element_size());
  scope.set_convolution(std::move(call));
  return out;
}

torch::Tensor conv2d(const torch::Tensor& input, const torch::nn::Conv2d& conv) {
  const auto& options = conv->options;
  // Conv2dOptions::padding_t is a c10::variant in libtorch 1.x and a std::variant from 2.x on.
#if TORCH_VERSION_MAJOR >= 2
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&options.padding());
#else
  const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&options.padding());
#endif
  if (padding == nullptr) throw Error("conv2d: only explicit integer padding is supported");
  return convolution(input, conv->weight, conv->bias, *options.stride(), **padding);
}

torch::Tensor linear(const torch::Tensor& input, const torch::nn::Linear& linear) {
  KernelScope scope(KernelKind::kGemm, "linear");
  return torch::nn::functional::linear(input, linear->weight, linear->bias);
}

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b) {
  KernelScope scope(KernelKind::kGemm, "matmul");
  return torch::matmul(a, b);
}

torch::Tensor bmm(const torch::Tensor& a, const torch::Tensor& b) {
  KernelScope scope(KernelKind::kGemm, "bmm");
  return torch::bmm(a, b);
}

torch::Tensor baddbmm(const torch::Tensor& self, const torch::Tensor& a, const torch::Tensor& b, double beta,
                      double alpha) {
  KernelScope scope(KernelKind::kGemm, "baddbmm");
  return torch::baddbmm(self, a, b, beta, alpha);
}

torch::Tensor upsample_nearest2x(const torch::Tensor& input, bool exact) {
  // F.interpolate(scale_factor=2.0) calls these ops with output_size=None and scale_factors=[2, 2]; called
  // directly (libtorch 1.13's F::interpolate warns about align_corners for nearest-exact).
  KernelScope scope(KernelKind::kInterpolate, exact ? "upsample_nearest_exact2d" : "upsample_nearest2d");
  const std::vector<double> scales{2.0, 2.0};
  return exact ? torch::_upsample_nearest_exact2d(input, c10::nullopt, scales)
               : torch::upsample_nearest2d(input, c10::nullopt, scales);
}

torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                           AttentionImpl impl, std::int64_t chunk) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) throw Error("scaled_dot_product_attention: expected 4-D q, k, v");
  switch (impl) {
    case AttentionImpl::kMath: return sdpa_math(q, k, v);
    case AttentionImpl::kEfficient: return sdpa_efficient(q, k, v, chunk);
    case AttentionImpl::kLegacyFp32Softmax: break;
  }
  throw Error("scaled_dot_product_attention: the legacy fp32-softmax processor is not an SDPA implementation");
}

}  // namespace offsim::real::ops
