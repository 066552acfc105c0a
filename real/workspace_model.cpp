#include "offsim/real/workspace_model.hpp"

#include <algorithm>

#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

std::uint64_t product(const std::vector<std::int64_t>& values, const char* what) {
  std::uint64_t result = 1;
  for (const std::int64_t v : values) {
    if (v <= 0) throw Error(std::string("workspace model: non-positive ") + what + " size");
    result *= static_cast<std::uint64_t>(v);
  }
  return result;
}

}  // namespace

std::uint64_t column_buffer_bytes(const ConvolutionCall& call) {
  const bool pointwise = std::all_of(call.kernel.begin(), call.kernel.end(), [](std::int64_t k) { return k == 1; });
  const bool unit_stride = std::all_of(call.stride.begin(), call.stride.end(), [](std::int64_t s) { return s == 1; });
  const bool unpadded = std::all_of(call.padding.begin(), call.padding.end(), [](std::int64_t p) { return p == 0; });
  if (pointwise && unit_stride && unpadded) return 0;
  if (call.in_channels_per_group <= 0 || call.groups <= 0 || call.element_size == 0) {
    throw Error("workspace model: convolution call without channels, groups or element size");
  }
  return static_cast<std::uint64_t>(call.in_channels_per_group) * product(call.kernel, "kernel") *
         product(call.output, "output") * call.element_size * static_cast<std::uint64_t>(call.groups);
}

std::uint64_t efficient_attention_workspace_bytes(const FusedAttentionCall& call) {
  if (!call.reduced_precision) return 0;
  if (call.value_head_dim <= kMemEfficientMaxSingleIterationHeadDim) return 0;
  constexpr std::uint64_t kAccumulatorBytes = 4;  // float
  return static_cast<std::uint64_t>(call.batch_heads) * static_cast<std::uint64_t>(call.queries) *
         static_cast<std::uint64_t>(call.value_head_dim) * kAccumulatorBytes;
}

}  // namespace offsim::real
