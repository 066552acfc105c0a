// DType sizes: torch element sizes and GGUF block sizes (ggml-org/llama.cpp gguf-py/gguf/constants.py
// GGML_QUANT_SIZES @0024aa7417).
#include "offsim/policies/dtype.hpp"

#include <gtest/gtest.h>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

TEST(DType, TorchElementSizes) {
  EXPECT_EQ(element_size(DType::fp32), 4u);
  EXPECT_EQ(element_size(DType::fp16), 2u);
  EXPECT_EQ(element_size(DType::bf16), 2u);
  EXPECT_EQ(element_size(DType::fp8_e4m3fn), 1u);
  EXPECT_EQ(element_size(DType::fp8_e5m2), 1u);
  EXPECT_EQ(element_size(DType::int8), 1u);
  EXPECT_FALSE(is_block_quantized(DType::bf16));
}

TEST(DType, GgufBlockSizes) {
  struct Case {
    DType dtype;
    std::uint32_t block_elements;
    std::uint32_t block_bytes;
  };
  // (block size, type size) as GGML_QUANT_SIZES writes them, QK_K = 256.
  const Case cases[] = {
      {DType::q8_0, 32, 34},  {DType::q4_0, 32, 18},  {DType::q6_k, 256, 210}, {DType::q5_k, 256, 176},
      {DType::q4_k, 256, 144}, {DType::q3_k, 256, 110}, {DType::q2_k, 256, 84},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.dtype)));
    EXPECT_TRUE(is_block_quantized(c.dtype));
    EXPECT_EQ(dtype_info(c.dtype).block_elements, c.block_elements);
    EXPECT_EQ(dtype_info(c.dtype).block_bytes, c.block_bytes);
    EXPECT_FALSE(element_size(c.dtype).has_value());
  }
}

TEST(DType, StorageBytes) {
  // A 3072 x 3072 Q8_0 weight: 9,437,184 values = 294,912 blocks of 34 bytes.
  EXPECT_EQ(storage_bytes(DType::q8_0, 3072ull * 3072ull), 294912ull * 34ull);
  EXPECT_EQ(storage_bytes(DType::bf16, 1000), 2000u);
  EXPECT_EQ(storage_bytes(DType::q4_k, 256), 144u);
  EXPECT_THROW(storage_bytes(DType::q8_0, 33), ConfigError);
}

TEST(DType, ParsesOwnAndTorchSpellings) {
  for (const auto& info : all_dtypes()) EXPECT_EQ(parse_dtype(info.name), info.dtype);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_EQ(parse_dtype("torch.float16"), DType::fp16);
  EXPECT_EQ(parse_dtype("float8_e4m3fn"), DType::fp8_e4m3fn);
}

TEST(DType, UnknownNameListsKnownOnes) {
  try {
    (void)parse_dtype("fp12");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fp12"), std::string::npos);
    EXPECT_NE(msg.find("q8_0"), std::string::npos);
    EXPECT_NE(msg.find("bf16"), std::string::npos);
  }
}

TEST(DType, BlockQuantizedHasNoElementSizeForActivations) {
  EXPECT_THROW((void)require_element_size(DType::q8_0, "test"), ConfigError);
  EXPECT_EQ(require_element_size(DType::fp32, "test"), 4u);
}

}  // namespace
}  // namespace offsim::policies
