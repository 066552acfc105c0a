#include "offsim/policies/dtype.hpp"

#include <array>
#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

// Torch dtypes: element size = sizeof(ctype) (pytorch/pytorch c10/core/ScalarType.h elementSize): float 4,
// c10::Half and c10::BFloat16 2, c10::Float8_e4m3fn / Float8_e5m2 and int8_t 1.
// GGUF types: (block size, type size) from GGML_QUANT_SIZES in
// ggml-org/llama.cpp:gguf-py/gguf/constants.py@0024aa7417efd50a7c2a79e049dfbbbceb0beaaf, with QK_K = 256:
//   Q8_0 (32, 2 + 32)            Q4_0 (32, 2 + 16)
//   Q6_K (256, 2 + QK_K/2 + QK_K/4 + QK_K/16) = (256, 210)
//   Q5_K (256, 2 + 2 + QK_K/2 + QK_K/8 + 12)  = (256, 176)
//   Q4_K (256, 2 + 2 + QK_K/2 + 12)           = (256, 144)
//   Q3_K (256, 2 + QK_K/4 + QK_K/8 + 12)      = (256, 110)
//   Q2_K (256, 2 + 2 + QK_K/16 + QK_K/4)      = (256, 84)
constexpr std::uint32_t kQK_K = 256;
constexpr std::array<DTypeInfo, 13> kDTypes{{
    {DType::fp32, "fp32", 1, 4},
    {DType::fp16, "fp16", 1, 2},
    {DType::bf16, "bf16", 1, 2},
    {DType::fp8_e4m3fn, "fp8_e4m3fn", 1, 1},
    {DType::fp8_e5m2, "fp8_e5m2", 1, 1},
    {DType::int8, "int8", 1, 1},
    {DType::q8_0, "q8_0", 32, 2 + 32},
    {DType::q6_k, "q6_k", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16},
    {DType::q5_k, "q5_k", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12},
    {DType::q4_k, "q4_k", kQK_K, 2 + 2 + kQK_K / 2 + 12},
    {DType::q4_0, "q4_0", 32, 2 + 16},
    {DType::q3_k, "q3_k", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12},
    {DType::q2_k, "q2_k", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4},
}};

struct Alias {
  std::string_view name;
  DType dtype;
};
// PyTorch's own spellings (str(torch.bfloat16) == "torch.bfloat16"), so traces and manifests can be read as is.
constexpr std::array<Alias, 5> kTorchAliases{{
    {"float32", DType::fp32},
    {"float16", DType::fp16},
    {"bfloat16", DType::bf16},
    {"float8_e4m3fn", DType::fp8_e4m3fn},
    {"float8_e5m2", DType::fp8_e5m2},
}};

std::string known_names() {
  std::string out;
  for (const auto& info : kDTypes) {
    if (!out.empty()) out += ", ";
    out += info.name;
  }
  return out;
}

}  // namespace

std::span<const DTypeInfo> all_dtypes() { return kDTypes; }

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  throw ConfigError("unknown DType value " + std::to_string(static_cast<int>(dtype)));
}

std::string_view to_string(DType dtype) { return dtype_info(dtype).name; }

DType parse_dtype(std::string_view name) {
  std::string_view bare = name;
  if (bare.starts_with("torch.")) bare.remove_prefix(6);
  for (const auto& info : kDTypes) {
    if (info.name == bare) return info.dtype;
  }
  for (const auto& alias : kTorchAliases) {
    if (alias.name == bare) return alias.dtype;
  }
  throw ConfigError("unknown dtype \"" + std::string(name) + "\"; known: " + known_names() +
                    " (PyTorch spellings float32, float16, bfloat16, float8_e4m3fn, float8_e5m2 are accepted too)");
}

bool is_block_quantized(DType dtype) { return dtype_info(dtype).block_elements > 1; }

std::optional<std::uint32_t> element_size(DType dtype) {
  const auto& info = dtype_info(dtype);
  if (info.block_elements != 1) return std::nullopt;
  return info.block_bytes;
}

std::uint32_t require_element_size(DType dtype, std::string_view what) {
  if (auto size = element_size(dtype)) return *size;
  throw ConfigError(std::string(what) + ": dtype " + std::string(to_string(dtype)) +
                    " is block-quantized (GGUF) and has no per-element size; activations are never stored in it");
}

std::uint64_t storage_bytes(DType dtype, std::uint64_t elements) {
  const auto& info = dtype_info(dtype);
  if (elements % info.block_elements != 0) {
    throw ConfigError(std::to_string(elements) + " elements is not a whole number of " + std::string(info.name) +
                      " blocks of " + std::to_string(info.block_elements));
  }
  return elements / info.block_elements * info.block_bytes;
}

}  // namespace offsim::policies
