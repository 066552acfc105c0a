// Data types of weights and activations, with their storage sizes. Two kinds exist:
//  * torch dtypes (fp32, fp16, bf16, fp8, int8): every element has a fixed size, which is what
//    `tensor.element_size()` returns and what every working-memory estimator multiplies by;
//  * GGUF block-quantized types (Q8_0, Q4_K, ...): elements are stored in blocks of `block_elements`
//    taking `block_bytes` each, so there is no whole-byte element size (Q8_0 is 34 bytes per 32 weights).
//    They size weights (e.g. the Qwen Image Edit Q8_0 transformer of InvokeAI PR #9305), never
//    activations.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace offsim::policies {

enum class DType {
  fp32,
  fp16,
  bf16,
  fp8_e4m3fn,
  fp8_e5m2,
  int8,
  // GGUF block quantizations.
  q8_0,
  q6_k,
  q5_k,
  q4_k,
  q4_0,
  q3_k,
  q2_k,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;       // "bf16", "q8_0": the spelling scenarios use
  std::uint32_t block_elements;  // 1 for torch dtypes
  std::uint32_t block_bytes;     // bytes per block (= element size for torch dtypes)
};

/// Every known dtype, in enum order.
std::span<const DTypeInfo> all_dtypes();
const DTypeInfo& dtype_info(DType dtype);
std::string_view to_string(DType dtype);
/// Parses a name from all_dtypes() ("fp16", "bf16", "q8_0", ...). Also accepts PyTorch's spellings
/// "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2". Throws ConfigError listing the names.
DType parse_dtype(std::string_view name);

/// True for the GGUF block-quantized types.
bool is_block_quantized(DType dtype);
/// `torch.Tensor.element_size()`: bytes per element for torch dtypes; nullopt for block-quantized types.
std::optional<std::uint32_t> element_size(DType dtype);
/// Same as element_size() but throws ConfigError naming `what` for a block-quantized type (a working-memory
/// estimator asked for the element size of something that has none).
std::uint32_t require_element_size(DType dtype, std::string_view what);
/// Storage bytes of `elements` values. For block types `elements` must be a whole number of blocks
/// (ggml quantizes rows of whole blocks); otherwise throws ConfigError.
std::uint64_t storage_bytes(DType dtype, std::uint64_t elements);

}  // namespace offsim::policies
