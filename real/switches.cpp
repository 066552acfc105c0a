#include "offsim/real/switches.hpp"

#include <array>
#include <utility>

namespace offsim::real {
namespace {

template <typename Enum, std::size_t N>
std::optional<Enum> lookup(const std::array<std::pair<std::string_view, Enum>, N>& table, std::string_view text) {
  for (const auto& [name, value] : table) {
    if (name == text) return value;
  }
  return std::nullopt;
}

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, Enum>, N>& table, Enum value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "?";
}

constexpr std::array<std::pair<std::string_view, AttentionImpl>, 3> kAttention{{
    {"math", AttentionImpl::kMath},
    {"efficient", AttentionImpl::kEfficient},
    {"legacy-fp32-softmax", AttentionImpl::kLegacyFp32Softmax},
}};
constexpr std::array<std::pair<std::string_view, ConvWorkspace>, 2> kConv{{
    {"implicit", ConvWorkspace::kImplicitGemm},
    {"column-buffer", ConvWorkspace::kColumnBuffer},
}};
constexpr std::array<std::pair<std::string_view, FeatureCache>, 2> kCache{{
    {"diffusers-clones", FeatureCache::kDiffusersClones},
    {"none", FeatureCache::kNone},
}};
constexpr std::array<std::pair<std::string_view, CausalPad>, 2> kPad{{
    {"materialised", CausalPad::kMaterialised},
    {"last-tap", CausalPad::kLastTapOnly},
}};

}  // namespace

std::string_view to_string(AttentionImpl value) { return name_of(kAttention, value); }
std::string_view to_string(ConvWorkspace value) { return name_of(kConv, value); }
std::string_view to_string(FeatureCache value) { return name_of(kCache, value); }
std::string_view to_string(CausalPad value) { return name_of(kPad, value); }
std::optional<AttentionImpl> parse_attention_impl(std::string_view text) { return lookup(kAttention, text); }
std::optional<ConvWorkspace> parse_conv_workspace(std::string_view text) { return lookup(kConv, text); }
std::optional<FeatureCache> parse_feature_cache(std::string_view text) { return lookup(kCache, text); }
std::optional<CausalPad> parse_causal_pad(std::string_view text) { return lookup(kPad, text); }

std::string describe(const RealSwitches& s) {
  std::string out;
  out += "attention=";
  out += to_string(s.attention);
  out += " conv-workspace=";
  out += to_string(s.conv_workspace);
  out += " feature-cache=";
  out += to_string(s.feature_cache);
  out += " causal-pad=";
  out += to_string(s.causal_pad);
  out += " rms-norm-fp32=";
  out += s.rms_norm_fp32 ? "on" : "off";
  out += " upsample-fp32=";
  out += s.upsample_fp32 ? "on" : "off";
  out += " efficient-attention-chunk=";
  out += std::to_string(s.efficient_attention_chunk);
  return out;
}

}  // namespace offsim::real
