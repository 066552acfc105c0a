// ComfyUI's BaseModel.memory_required with each model's memory_usage_factor (comfy/model_base.py,
// comfy/supported_models.py, comfy/sampler_helpers.py @a125cd84), against hand-computed vectors (spec 3.5, 9).
#include <gtest/gtest.h>

#include "offsim/policies/comfyui_model_memory.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies::comfyui {
namespace {

DenoiseWorkload denoise(DiffusionModel model, std::vector<std::int64_t> shape, DType dtype = DType::bf16) {
  DenoiseWorkload w;
  w.model = model;
  w.noise_shape = std::move(shape);
  w.dtype = dtype;
  return w;
}

TEST(ComfyUiMemoryUsageFactor, PerModel) {
  auto f = [](DiffusionModel m) { return memory_usage_factor(denoise(m, {1, 4, 64, 64})); };
  EXPECT_DOUBLE_EQ(f(DiffusionModel::sd15), 1.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::sd20), 1.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::sdxl_refiner), 1.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::sdxl), 0.8);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::sd3), 1.2);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::flux), 3.1);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::chroma), 3.2);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::hunyuan_dit), 1.3);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::pixart), 0.5);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::genmo_mochi), 2.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::ltxv), 5.5);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::hunyuan_video), 1.8);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::cosmos), 1.6);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::lumina2), 1.2);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::wan21), 2000.0 / 2222.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::wan21_vace), 1.2 * (2000.0 / 2222.0));
  EXPECT_DOUBLE_EQ(f(DiffusionModel::hidream), 2.0);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::qwen_image), 1.8);
  EXPECT_DOUBLE_EQ(f(DiffusionModel::hunyuan_image21), 7.7);
}

TEST(ComfyUiMemoryUsageFactor, ScalesWithModelDim) {
  auto wan = denoise(DiffusionModel::wan21, {1, 16, 21, 60, 104});
  wan.model_dim = 5120;  // Wan 2.1 14B
  EXPECT_DOUBLE_EQ(memory_usage_factor(wan), 5120.0 / 2222.0);
  auto ltxv = denoise(DiffusionModel::ltxv, {1, 128, 13, 16, 24});
  ltxv.model_dim = 4096;
  EXPECT_DOUBLE_EQ(memory_usage_factor(ltxv), 11.0);
}

TEST(ComfyUiMemoryRequired, FluxIsTheSpecVector) {
  // area 2 * 128 * 128 = 32768: 32768 * 2 * 0.01 * 3.1 * 2^20 = 2,130,303,778.8 (spec 3.5); minimum half.
  const auto m = estimate_memory(denoise(DiffusionModel::flux, {1, 16, 128, 128}));
  EXPECT_EQ(m.memory_required, 2'130'303'779u);
  EXPECT_EQ(m.minimum_memory_required, 1'065'151'890u);
}

TEST(ComfyUiMemoryRequired, ImageModels) {
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::sd15, {1, 4, 64, 64}, DType::fp16)).memory_required, 171'798'692u);
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::sdxl, {1, 4, 128, 128}, DType::fp16)).memory_required,
            549'755'814u);
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::sd3, {1, 16, 128, 128}, DType::fp16)).memory_required,
            824'633'721u);
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::hidream, {1, 16, 128, 128})).memory_required, 1'374'389'535u);
  // Qwen-Image 1328^2 (spec 9: "~2.08 GB")
  const auto q = estimate_memory(denoise(DiffusionModel::qwen_image, {1, 16, 166, 166}));
  EXPECT_EQ(q.memory_required, 2'080'408'339u);
  EXPECT_EQ(q.minimum_memory_required, 1'040'204'170u);
}

TEST(ComfyUiMemoryRequired, DtypeSizeEntersOnlyWithEfficientAttention) {
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::flux, {1, 16, 128, 128}, DType::fp32)).memory_required,
            4'260'607'558u);
  EXPECT_EQ(estimate_memory(denoise(DiffusionModel::flux, {1, 16, 128, 128}, DType::fp8_e4m3fn)).memory_required,
            1'065'151'890u);
  auto w = denoise(DiffusionModel::sd15, {1, 4, 64, 64}, DType::fp16);
  w.efficient_attention = false;  // area * 0.15 * factor * 2^20
  EXPECT_EQ(estimate_memory(w).memory_required, 1'288'490'189u);
}

TEST(ComfyUiMemoryRequired, WanVideo) {
  auto w = denoise(DiffusionModel::wan21, {1, 16, 21, 60, 104});
  EXPECT_EQ(estimate_memory(w).memory_required, 4'947'089'075u);  // default dim 2000
  w.model_dim = 5120;
  const auto m = estimate_memory(w);
  EXPECT_EQ(m.memory_required, 12'664'548'031u);
  EXPECT_EQ(m.minimum_memory_required, 6'332'274'016u);
  w.model = DiffusionModel::wan21_vace;
  EXPECT_EQ(estimate_memory(w).memory_required, 15'197'457'637u);
}

TEST(ComfyUiMemoryRequired, LtxvFactorFollowsCrossAttentionDim) {
  auto w = denoise(DiffusionModel::ltxv, {1, 128, 13, 16, 24});
  EXPECT_EQ(estimate_memory(w).memory_required, 1'151'588'107u);
  w.model_dim = 4096;
  EXPECT_EQ(estimate_memory(w).memory_required, 2'303'176'213u);
}

TEST(ComfyUiMemoryRequired, ReferenceLatentsCountForFluxAndQwenOnly) {
  // FLUX Kontext, one 1024^2 reference (16 x 128 x 128 = 262,144 elements) in both conds:
  // full area 32768 + 2 * 16384, minimum 16384 + the largest 16384.
  auto w = denoise(DiffusionModel::flux, {1, 16, 128, 128});
  w.ref_latent_elements = {262'144, 262'144};
  const auto m = estimate_memory(w);
  EXPECT_EQ(m.memory_required, 4'260'607'558u);
  EXPECT_EQ(m.minimum_memory_required, 2'130'303'779u);
  auto s = denoise(DiffusionModel::sdxl, {1, 4, 128, 128}, DType::fp16);
  s.ref_latent_elements = {262'144};
  EXPECT_EQ(estimate_memory(s).memory_required, 549'755'814u);  // SDXL has no ref_latents cond
}

TEST(ComfyUiMemoryRequired, RejectsBadShapes) {
  EXPECT_THROW((void)estimate_memory(denoise(DiffusionModel::flux, {1, 16, 128})), ConfigError);
  EXPECT_THROW((void)estimate_memory(denoise(DiffusionModel::flux, {1, 16, 0, 128})), ConfigError);
  EXPECT_THROW((void)estimate_memory(denoise(DiffusionModel::flux, {1, 16, 128, 128}, DType::q8_0)), ConfigError);
}

}  // namespace
}  // namespace offsim::policies::comfyui
