// ComfyUI memory_used_decode / memory_used_encode against hand-computed vectors (the lambdas of comfy/sd.py
// evaluated by hand; the spec's worked vectors from offload_policies.md 3.6 and 9 where it has them).
#include <gtest/gtest.h>

#include "offsim/policies/comfyui_vae_estimators.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies::comfyui {
namespace {

VaeWorkload vae(VaeFamily family, VaeOp op, int width, int height, int frames = 1, DType dtype = DType::bf16,
                Backend backend = Backend::cuda) {
  VaeWorkload w;
  w.family = family;
  w.op = op;
  w.pixel_width = width;
  w.pixel_height = height;
  w.frames = frames;
  w.dtype = dtype;
  w.backend = backend;
  return w;
}

std::uint64_t at(VaeWorkload w, Profile p = Profile::a125cd84) {
  return memory_used(detect_vae_type(w.family, p), w, p);
}

TEST(ComfyUiVae, AutoencoderKl) {
  // 2178 * 128 * 128 * 64 * 2 (spec 3.6 / 9: SDXL and FLUX 1024^2 4,567,597,056)
  EXPECT_EQ(at(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), 4'567'597'056u);
  EXPECT_EQ(at(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), 4'567'597'056u);
  // 2178 * 64 * 64 * 64 * 2 (spec 9: SD1.5 512^2 1,141,899,264)
  EXPECT_EQ(at(vae(VaeFamily::sd15, VaeOp::decode, 512, 512, 1, DType::fp16)), 1'141'899'264u);
  EXPECT_EQ(at(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, 1, DType::fp32)), 9'135'194'112u);
  // encode 1767 * 1024 * 1024 * 2; the input is cropped to a multiple of 8 first.
  EXPECT_EQ(at(vae(VaeFamily::sd3, VaeOp::encode, 1024, 1024)), 3'705'667'584u);
  EXPECT_EQ(at(vae(VaeFamily::sd3, VaeOp::encode, 1030, 1031)), 3'705'667'584u);
}

TEST(ComfyUiVae, Wan21PathServesQwenImageWithTheVideoFactor) {
  // 7000 * 128 * 128 * 64 * 2 (spec 9: ComfyUI pre-#11199 14,680,064,000); 1328^2 24,690,176,000.
  EXPECT_EQ(at(vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024)), 14'680'064'000u);
  EXPECT_EQ(at(vae(VaeFamily::qwen_image, VaeOp::decode, 1328, 1328)), 24'690'176'000u);
  // 7000 * 60 * 104 * 64 * 2 (spec 9: Wan2.1 832x480x81 5,591,040,000): no frame term.
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::decode, 832, 480, 81)), 5'591'040'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::decode, 832, 480, 1)), 5'591'040'000u);
  EXPECT_EQ(at(vae(VaeFamily::anima, VaeOp::encode, 832, 480)), 4'792'320'000u);  // 6000 * H * W * 2
}

TEST(ComfyUiVae, Wan22) {
  // decode 8000 * 44 * 80 * 256 * 2, encode 3300 * 704 * 1280 * 2
  EXPECT_EQ(at(vae(VaeFamily::wan22, VaeOp::decode, 1280, 704, 121)), 14'417'920'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan22, VaeOp::encode, 1280, 704)), 5'947'392'000u);
}

TEST(ComfyUiVae, VideoVaesCountLatentFrames) {
  // HunyuanVideo 1280x720x129: t = 33, h = 90, w = 160: 1500 * t * h * w * 256 * 2; encode 900 * max(T, 2).
  EXPECT_EQ(at(vae(VaeFamily::hunyuan_video, VaeOp::decode, 1280, 720, 129)), 364'953'600'000u);
  EXPECT_EQ(at(vae(VaeFamily::hunyuan_video, VaeOp::encode, 1280, 720, 129)), 213'995'520'000u);
  EXPECT_EQ(at(vae(VaeFamily::hunyuan_video, VaeOp::encode, 1280, 720, 1)), 3'317'760'000u);
  // LTXV 768x512x97: t = 13, 32x spatial: 900 * t * h * w * 512 * 2; encode 70 * max(T, 7).
  EXPECT_EQ(at(vae(VaeFamily::ltxv, VaeOp::decode, 768, 512, 97)), 4'600'627'200u);
  EXPECT_EQ(at(vae(VaeFamily::ltxv, VaeOp::encode, 768, 512, 97)), 5'339'873'280u);
  EXPECT_EQ(at(vae(VaeFamily::ltxv, VaeOp::encode, 768, 512, 1)), 385'351'680u);
  // Mochi 848x480x163: t = 28: 1000 * t * h * w * 384 * 2; encode 1.5 * max(T, 7) * H * W * 384 * 2.
  EXPECT_EQ(at(vae(VaeFamily::mochi, VaeOp::decode, 848, 480, 163)), 136'765'440'000u);
  EXPECT_EQ(at(vae(VaeFamily::mochi, VaeOp::encode, 848, 480, 1)), 3'282'370'560u);
  EXPECT_EQ(at(vae(VaeFamily::mochi, VaeOp::encode, 848, 480, 163)), 76'432'343'040u);
  // Cosmos 1280x704x121: t = 16: 50 * t * h * w * 512 * 2.
  EXPECT_EQ(at(vae(VaeFamily::cosmos, VaeOp::decode, 1280, 704, 121)), 11'534'336'000u);
}

TEST(ComfyUiVae, CosmosEncodeRoundsFramesLikePython) {
  // 50 * (round((T + 7) / 8) * 8) * H * W * 2, Python's round() taking halves to even.
  auto enc = [](int frames) { return at(vae(VaeFamily::cosmos, VaeOp::encode, 1280, 704, frames)); };
  EXPECT_EQ(enc(1), 720'896'000u);     // round(1.0) = 1
  EXPECT_EQ(enc(5), 1'441'792'000u);   // round(1.5) = 2
  EXPECT_EQ(enc(13), 1'441'792'000u);  // round(2.5) = 2, not 3
  EXPECT_EQ(enc(21), 2'883'584'000u);  // round(3.5) = 4
  EXPECT_EQ(enc(121), 11'534'336'000u);
}

TEST(ComfyUiVae, Later033046ccAppliesTheAmdRatioToAutoencoderKl) {
  const auto p = Profile::c033046cc;
  EXPECT_EQ(at(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024), p), 4'567'597'056u);
  // 4,567,597,056 * 2.73 = 12,469,539,962.88 -> 12,469,539,963
  EXPECT_EQ(at(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, 1, DType::bf16, Backend::rocm), p), 12'469'539'963u);
  // 3,705,667,584 * 2.73 = 10,116,472,504.32 -> 10,116,472,505
  EXPECT_EQ(at(vae(VaeFamily::sdxl, VaeOp::encode, 1024, 1024, 1, DType::bf16, Backend::rocm), p), 10'116'472'505u);
}

TEST(ComfyUiVae, Later033046ccFlux2DecodeIsFourTimesTheKlFigureAt16x) {
  const auto p = Profile::c033046cc;
  EXPECT_EQ(detect_vae_type(VaeFamily::flux2, p), VaeType::flux2_kl);
  // 2178 * 64 * 64 * 64 * 2 * 4.0: the same bytes per output pixel as the 8x KL VAE.
  EXPECT_EQ(at(vae(VaeFamily::flux2, VaeOp::decode, 1024, 1024), p), 4'567'597'056u);
  EXPECT_EQ(at(vae(VaeFamily::flux2, VaeOp::decode, 1024, 1024, 1, DType::bf16, Backend::rocm), p), 12'469'539'963u);
  EXPECT_EQ(at(vae(VaeFamily::flux2, VaeOp::encode, 1032, 1024), p), 3'705'667'584u);  // cropped to 16
  EXPECT_THROW((void)detect_vae_type(VaeFamily::flux2, Profile::a125cd84), ConfigError);
}

TEST(ComfyUiVae, Later033046ccWan21FactorsDropForFourFramesOrFewer) {
  const auto p = Profile::c033046cc;
  // Qwen-Image 1024^2: 2200 * 128 * 128 * 64 * 2 instead of 7000 (issue #9771).
  EXPECT_EQ(at(vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024), p), 4'613'734'400u);
  EXPECT_EQ(at(vae(VaeFamily::qwen_image, VaeOp::encode, 1024, 1024), p), 3'145'728'000u);
  // 13 pixel frames = 4 latent frames: still 2200; 17 = 5: 7000.
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::decode, 832, 480, 13), p), 1'757'184'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::decode, 832, 480, 17), p), 5'591'040'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::decode, 832, 480, 81), p), 5'591'040'000u);
  // encode counts pixel frames: 4 -> 1500, 5 -> 6000.
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::encode, 832, 480, 4), p), 1'198'080'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan21, VaeOp::encode, 832, 480, 5), p), 4'792'320'000u);
  EXPECT_EQ(at(vae(VaeFamily::wan22, VaeOp::encode, 1280, 704), p), 5'947'392'000u);
}

TEST(ComfyUiVae, TilingAndBatchDoNotChangeTheFigure) {
  auto w = vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024);
  w.tile_size = 512;
  w.batch = 4;
  EXPECT_EQ(at(w), 4'567'597'056u);
}

TEST(ComfyUiVae, DetectionAndMisuse) {
  EXPECT_EQ(detect_vae_type(VaeFamily::z_image, Profile::a125cd84), VaeType::autoencoder_kl);
  EXPECT_EQ(detect_vae_type(VaeFamily::anima, Profile::a125cd84), VaeType::wan21);
  EXPECT_THROW((void)detect_vae_type(VaeFamily::cogview4, Profile::a125cd84), ConfigError);
  EXPECT_THROW((void)memory_used(VaeType::wan21, vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024), Profile::a125cd84),
               ConfigError);
  // Not transcribed for the later version.
  EXPECT_THROW((void)memory_used(VaeType::ltxv, vae(VaeFamily::ltxv, VaeOp::decode, 768, 512, 97), Profile::c033046cc),
               ConfigError);
}

}  // namespace
}  // namespace offsim::policies::comfyui
