// InvokeAI's VAE and PiD working-memory estimators against hand-computed vectors. Every expected value is
// the upstream expression evaluated by hand for that input (the spec's worked vectors where it has them:
// offload_policies.md sections 2, 6.2 and 9), so a wrong constant, factor or term fails here.
#include <gtest/gtest.h>

#include "offsim/policies/invokeai_pid_estimator.hpp"
#include "offsim/policies/invokeai_vae_estimators.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies::invokeai {
namespace {

VaeWorkload vae(VaeFamily family, VaeOp op, int width, int height, DType dtype = DType::fp16,
                Backend backend = Backend::cuda) {
  VaeWorkload w;
  w.family = family;
  w.op = op;
  w.pixel_width = width;
  w.pixel_height = height;
  w.dtype = dtype;
  w.backend = backend;
  return w;
}

VaeWorkload tiled(VaeWorkload w, int tile) {
  w.tile_size = tile;
  return w;
}

// ---- SD1.5 / SDXL ----

TEST(InvokeAiSd15Sdxl, SdxlFp16Decode1024IsTheSpecVector) {
  // 1024 * 1024 * 2 * 2200 (spec 2.1: 4.30 GiB); PR #7674's "4400 MB" estimate.
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), 4'613'734'400u);
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), 4400 * MiB);
}

TEST(InvokeAiSd15Sdxl, EncodeUsesHalfTheConstant) {
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sdxl, VaeOp::encode, 1024, 1024)), 2'306'867'200u);  // 1100
}

TEST(InvokeAiSd15Sdxl, Fp32DoublesElementSizeAndAdds250MiB) {
  // PR #7674 estimates: SD1 fp32 512^2 2450 MiB, SDXL fp32 1024^2 9050 MiB (spec 6.2).
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sd15, VaeOp::decode, 512, 512, DType::fp32)), 2450 * MiB);
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp32)), 9050 * MiB);
}

TEST(InvokeAiSd15Sdxl, ElementSizeComesFromTheFp32FlagNotTheWeights) {
  // bf16 is not fp32: element size 2, no 250 MiB.
  EXPECT_EQ(sd15_sdxl(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::bf16)), 4'613'734'400u);
}

TEST(InvokeAiSd15Sdxl, TiledIsOneTilePlus25PercentWhateverTheImage) {
  // 512 * 512 * 2 * 2200 * 1.25
  EXPECT_EQ(sd15_sdxl(tiled(vae(VaeFamily::sdxl, VaeOp::decode, 2048, 2048), 512)), 1'441'792'000u);
  EXPECT_EQ(sd15_sdxl(tiled(vae(VaeFamily::sdxl, VaeOp::decode, 4096, 4096), 512)), 1'441'792'000u);
  // fp32 tiled: 512 * 512 * 4 * 2200 * 1.25 + 250 MiB
  EXPECT_EQ(sd15_sdxl(tiled(vae(VaeFamily::sdxl, VaeOp::decode, 2048, 2048, DType::fp32), 512)),
            2'883'584'000u + 250 * MiB);
}

TEST(InvokeAiSd15Sdxl, TileZeroMeansTheVaesTileSampleMinSize) {
  auto w = tiled(vae(VaeFamily::sdxl, VaeOp::decode, 2048, 2048), 0);
  EXPECT_THROW((void)sd15_sdxl(w), ConfigError);  // offsim does not guess the VAE config
  w.vae_tile_sample_min_size = 1024;
  EXPECT_EQ(sd15_sdxl(w), 5'767'168'000u);  // 1024 * 1024 * 2 * 2200 * 1.25
}

// ---- Before PR #7674 (issue #7587; read at 7567ee2adf): fitted to allocated memory, x 1.2 ----

TEST(InvokeAiBeforePr7674, SdDecodeIs960TimesElementSizeThenTwentyPercent) {
  // 1024 * 1024 * 2 * 960 = 2'013'265'920, x 1.2 (spec 7 B5: below PR #7674's 3232 MiB reserved).
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), 2'415'919'104u);
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), 2304 * MiB);
  // bf16 is not the fp32 flag: element size 2, no 250 MiB.
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sd15, VaeOp::decode, 1024, 1024, DType::bf16)),
            2'415'919'104u);
}

TEST(InvokeAiBeforePr7674, Fp32Adds250MiBBeforeTheTwentyPercent) {
  // (512 * 512 * 4 * 960 + 250 MiB) * 1.2 = (1'006'632'960 + 262'144'000) * 1.2; PR #7674 measured 1696 MiB.
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sd15, VaeOp::decode, 512, 512, DType::fp32)),
            1'522'532'352u);
  // (1024 * 1024 * 4 * 960 + 250 MiB) * 1.2 = 4'288'675'840 * 1.2; PR #7674 measured 5568 MiB.
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp32)),
            5'146'411'008u);
  EXPECT_LT(sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024, DType::fp32)), 5568 * MiB);
}

TEST(InvokeAiBeforePr7674, TiledIsOneTilePlus25PercentThenTwentyPercent) {
  // 512 * 512 * 2 * 960 * 1.25 * 1.2, whatever the image.
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(tiled(vae(VaeFamily::sdxl, VaeOp::decode, 4096, 4096), 512)), 754'974'720u);
  // fp32: (512 * 512 * 4 * 960 * 1.25 + 250 MiB) * 1.2.
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(tiled(vae(VaeFamily::sdxl, VaeOp::decode, 2048, 2048, DType::fp32), 512)),
            1'824'522'240u);
  auto w = tiled(vae(VaeFamily::sdxl, VaeOp::decode, 2048, 2048), 0);
  EXPECT_THROW((void)sd15_sdxl_decode_before_pr7674(w), ConfigError);
  w.vae_tile_sample_min_size = 512;
  EXPECT_EQ(sd15_sdxl_decode_before_pr7674(w), 754'974'720u);
}

TEST(InvokeAiBeforePr7674, FluxAndSd3HaveTheirOwnTunedConstants) {
  // 1024 * 1024 * 2 * 1090 * 1.2 and 1024 * 1024 * 2 * 1230 * 1.2; es from the weights (fp32 = 4, no bump).
  EXPECT_EQ(flux_decode_before_pr7674(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024, DType::bf16)), 2'743'074'816u);
  EXPECT_EQ(flux_decode_before_pr7674(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024, DType::fp32)), 5'486'149'632u);
  EXPECT_EQ(sd3_decode_before_pr7674(vae(VaeFamily::sd3, VaeOp::decode, 1024, 1024, DType::fp16)), 3'095'396'352u);
}

TEST(InvokeAiBeforePr7674, DecodeOnlyAndOnlyItsFamilies) {
  // The encode nodes of that time pass no working memory: asking for an encode estimate is a caller error.
  EXPECT_THROW((void)sd15_sdxl_decode_before_pr7674(vae(VaeFamily::sdxl, VaeOp::encode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)flux_decode_before_pr7674(vae(VaeFamily::flux1, VaeOp::encode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)sd3_decode_before_pr7674(vae(VaeFamily::sd3, VaeOp::encode, 1024, 1024)), ConfigError);
  // Z-Image did not exist: the FLUX decode of that time serves FLUX.1 only.
  EXPECT_THROW((void)flux_decode_before_pr7674(vae(VaeFamily::z_image, VaeOp::decode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)sd15_sdxl_decode_before_pr7674(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), ConfigError);
}

// ---- CogView4, FLUX, SD3, Z-Image ----

TEST(InvokeAiHouseEstimators, TwentyTwoHundredAndElevenHundredTimesElementSize) {
  EXPECT_EQ(flux(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024, DType::bf16)), 4'613'734'400u);
  EXPECT_EQ(flux(vae(VaeFamily::flux1, VaeOp::encode, 1024, 1024, DType::bf16)), 2'306'867'200u);
  EXPECT_EQ(flux(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024, DType::fp32)), 9'227'468'800u);
  EXPECT_EQ(flux(vae(VaeFamily::z_image, VaeOp::decode, 1024, 1024, DType::bf16)), 4'613'734'400u);
  EXPECT_EQ(sd3(vae(VaeFamily::sd3, VaeOp::decode, 1024, 768, DType::fp16)), 3'460'300'800u);
  EXPECT_EQ(cogview4(vae(VaeFamily::cogview4, VaeOp::encode, 1024, 768, DType::bf16)), 1'730'150'400u);
}

TEST(InvokeAiHouseEstimators, RejectOtherFamilies) {
  EXPECT_THROW((void)flux(vae(VaeFamily::sdxl, VaeOp::decode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)sd3(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)sd15_sdxl(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), ConfigError);
}

// ---- Anima ----

TEST(InvokeAiAnima, TwentyNineHundredDecodeFourteenFiftyEncode) {
  EXPECT_EQ(anima(vae(VaeFamily::anima, VaeOp::decode, 1024, 1024)), 6'081'740'800u);
  EXPECT_EQ(anima(vae(VaeFamily::anima, VaeOp::encode, 1024, 1024)), 3'040'870'400u);
  EXPECT_EQ(anima(tiled(vae(VaeFamily::anima, VaeOp::decode, 1024, 1024), 512)), 1'900'544'000u);
  EXPECT_THROW((void)anima(tiled(vae(VaeFamily::anima, VaeOp::decode, 1024, 1024), 0)), ConfigError);
}

TEST(InvokeAiAnima, L2iTilesWhenTheFullDecodeExceedsSeventyPercentOfTheCard) {
  const std::uint64_t full = 6'081'740'800u;                          // 1024^2 fp16
  EXPECT_EQ(anima_l2i_tile_size(full, 8 * GiB, Backend::cuda), 512);  // 0.7 * 8 GiB = 6.01e9 < full
  EXPECT_EQ(anima_l2i_tile_size(full, 8 * GiB, Backend::xpu), 512);
  EXPECT_EQ(anima_l2i_tile_size(full, 9 * GiB, Backend::cuda), std::nullopt);  // 0.7 * 9 GiB = 6.76e9
  EXPECT_EQ(anima_l2i_tile_size(full, 8 * GiB, Backend::mps), std::nullopt);   // only cuda/xpu tile
}

// ---- Wan ----

VaeWorkload wan_video(VaeFamily family, VaeOp op, int frames) {
  auto w = vae(family, op, 832, 480);
  w.frames = frames;
  return w;
}

TEST(InvokeAiWan, Pr9462A14bVideoDecodeIsTheSpecVector) {
  // 480 * 832 * 2 * 6500 + 2 * 3 * 81 * 480 * 832 * 2 (spec 9)
  EXPECT_EQ(wan(wan_video(VaeFamily::wan21, VaeOp::decode, 81), WanProfile::pr9462), 5'579'857'920u);
}

TEST(InvokeAiWan, Pr9462Ti2vVideoDecodeUsesSeventyHundred) {
  EXPECT_EQ(wan(wan_video(VaeFamily::wan22, VaeOp::decode, 81), WanProfile::pr9462), 5'979'217'920u);
}

TEST(InvokeAiWan, Pr9462StreamingKeepsFourFramesOneCopy) {
  auto w = wan_video(VaeFamily::wan21, VaeOp::decode, 81);
  w.memory_optimization = true;
  // 5,191,680,000 + 1 * 3 * min(81, 4) * 480 * 832 * 2
  EXPECT_EQ(wan(w, WanProfile::pr9462), 5'201'264'640u);
  // The node never streams a tiled decode: 256^2 * 2 * 6500 * 1.25 + the full two-copy clip.
  EXPECT_EQ(wan(tiled(w, 256), WanProfile::pr9462), 1'453'137'920u);
}

TEST(InvokeAiWan, Pr9462SingleFrameKeepsTheWan21Calibration) {
  EXPECT_EQ(wan(vae(VaeFamily::wan21, VaeOp::decode, 1024, 1024), WanProfile::pr9462), 6'094'323'712u);
}

TEST(InvokeAiWan, EncodeIsFourteenFiftyPlusOneClip) {
  EXPECT_EQ(wan(wan_video(VaeFamily::wan21, VaeOp::encode, 81), WanProfile::pr9462), 1'352'232'960u);
  EXPECT_EQ(wan(wan_video(VaeFamily::wan21, VaeOp::encode, 81), WanProfile::pr9163), 1'352'232'960u);
}

TEST(InvokeAiWan, Pr9163UsesTwentyNineHundredForVideoAndNoStreaming) {
  auto w = wan_video(VaeFamily::wan21, VaeOp::decode, 81);
  EXPECT_EQ(wan(w, WanProfile::pr9163), 2'704'465'920u);
  w.memory_optimization = true;
  EXPECT_EQ(wan(w, WanProfile::pr9163), 2'704'465'920u);
  EXPECT_EQ(wan(wan_video(VaeFamily::wan22, VaeOp::decode, 81), WanProfile::pr9163), 2'704'465'920u);
}

TEST(InvokeAiWan, L2vTilesWhenTheEstimateExceedsNinetyPercentOfTheCard) {
  const std::uint64_t untiled = 5'579'857'920u;  // 832x480x81 A14B
  EXPECT_EQ(wan_l2v_tile_size(untiled, 5 * GiB, Backend::cuda), 256);           // 0.9 * 5 GiB = 4.83e9
  EXPECT_EQ(wan_l2v_tile_size(untiled, 6 * GiB, Backend::cuda), std::nullopt);  // 0.9 * 6 GiB = 5.80e9
  EXPECT_EQ(wan_l2v_tile_size(untiled, 5 * GiB, Backend::rocm), 256);
  EXPECT_EQ(wan_l2v_tile_size(untiled, 5 * GiB, Backend::xpu, 192), 192);
  EXPECT_EQ(wan_l2v_tile_size(untiled, 24 * GiB, Backend::cuda), std::nullopt);
  EXPECT_EQ(wan_l2v_tile_size(untiled, 5 * GiB, Backend::mps), std::nullopt);
}

// ---- Qwen-Image ----

TEST(InvokeAiQwenImage, Pr9305FirstCommitUses5500And2750OnEveryBackend) {
  // 1248 * 832 * 2 * 5500 (spec 9: "InvokeAI ROCm 11,421,696,000 (initial #9305 constant 5500)")
  for (auto backend : {Backend::rocm, Backend::cuda}) {
    EXPECT_EQ(qwen_image(vae(VaeFamily::qwen_image, VaeOp::decode, 1248, 832, DType::fp16, backend),
                         QwenImageProfile::pr9305_first),
              11'421'696'000u);
    EXPECT_EQ(qwen_image(vae(VaeFamily::qwen_image, VaeOp::encode, 1024, 1024, DType::fp16, backend),
                         QwenImageProfile::pr9305_first),
              5'767'168'000u);
  }
}

TEST(InvokeAiQwenImage, Pr9305RocmGridRaisesEncodeTo6300) {
  EXPECT_EQ(qwen_image(vae(VaeFamily::qwen_image, VaeOp::encode, 1024, 1024, DType::fp16, Backend::cuda),
                       QwenImageProfile::pr9305_rocm_grid),
            13'212'057'600u);
  EXPECT_EQ(qwen_image(vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024, DType::fp16, Backend::cuda),
                       QwenImageProfile::pr9305_rocm_grid),
            11'534'336'000u);
}

TEST(InvokeAiQwenImage, Pr9305MergedBranchesOnRocm) {
  const auto p = QwenImageProfile::pr9305_merged;
  auto q = [](VaeOp op, int w, int h, Backend b) { return vae(VaeFamily::qwen_image, op, w, h, DType::bf16, b); };
  EXPECT_EQ(qwen_image(q(VaeOp::decode, 1024, 1024, Backend::cuda), p), 6'081'740'800u);   // 2900
  EXPECT_EQ(qwen_image(q(VaeOp::decode, 1024, 1024, Backend::rocm), p), 11'534'336'000u);  // 5500
  EXPECT_EQ(qwen_image(q(VaeOp::encode, 1024, 1024, Backend::cuda), p), 3'355'443'200u);   // 1600
  EXPECT_EQ(qwen_image(q(VaeOp::encode, 1024, 1024, Backend::rocm), p), 13'212'057'600u);  // 6300
  EXPECT_EQ(qwen_image(q(VaeOp::decode, 1024, 1024, Backend::xpu), p), 6'081'740'800u);    // XPU: CUDA's
  EXPECT_EQ(qwen_image(q(VaeOp::decode, 1248, 832, Backend::cuda), p), 6'022'348'800u);
  EXPECT_EQ(qwen_image(q(VaeOp::decode, 1328, 1328, Backend::cuda), p), 10'228'787'200u);
}

TEST(InvokeAiQwenImage, Pr9305MergedIgnoresTiling) {
  // The 2560x1440 reservations PR #9427 quotes: 19.91 GiB decode, 10.99 GiB encode, tiled or not.
  auto d = vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440);
  EXPECT_EQ(qwen_image(d, QwenImageProfile::pr9305_merged), 21'381'120'000u);
  EXPECT_EQ(qwen_image(tiled(d, 256), QwenImageProfile::pr9305_merged), 21'381'120'000u);
  EXPECT_EQ(qwen_image(vae(VaeFamily::qwen_image, VaeOp::encode, 2560, 1440), QwenImageProfile::pr9305_merged),
            11'796'480'000u);
}

TEST(InvokeAiQwenImage, Pr9427TiledIsOneTilePlusResidentFrames) {
  const auto p = QwenImageProfile::pr9427;
  auto d = vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440);
  EXPECT_EQ(qwen_image(d, p), 21'381'120'000u);  // untiled unchanged (spec 9)
  // 256^2 * 2 * 2900 * 1.25 + 5 * 3 * 2560 * 1440 * 2 (spec 6.2: 0.55 GiB)
  EXPECT_EQ(qwen_image(tiled(d, 256), p), 585'728'000u);
  EXPECT_EQ(qwen_image(tiled(d, 0), p), 585'728'000u);   // 0 -> QWEN_IMAGE_VAE_DEFAULT_TILE_SIZE 256
  EXPECT_EQ(qwen_image(tiled(d, 32), p), 140'288'000u);  // clamped to 64: 64^2 * 2 * 2900 * 1.25 + frames
  auto e = vae(VaeFamily::qwen_image, VaeOp::encode, 2560, 1440);
  // 256^2 * 2 * 1600 * 1.25 + 1 * 3 * 2560 * 1440 * 2 (PR #9427: 10.99 -> 0.26 GiB)
  EXPECT_EQ(qwen_image(tiled(e, 256), p), 284'262'400u);
  auto r = vae(VaeFamily::qwen_image, VaeOp::decode, 2560, 1440, DType::fp16, Backend::rocm);
  EXPECT_EQ(qwen_image(tiled(r, 256), p), 1'011'712'000u);  // 5500 per tile on ROCm
}

TEST(InvokeAiQwenImage, TileSizeResolution) {
  EXPECT_EQ(resolve_qwen_image_tile_size(0), 256);
  EXPECT_EQ(resolve_qwen_image_tile_size(-8), 256);
  EXPECT_EQ(resolve_qwen_image_tile_size(8), 64);
  EXPECT_EQ(resolve_qwen_image_tile_size(64), 64);
  EXPECT_EQ(resolve_qwen_image_tile_size(512), 512);
}

TEST(InvokeAiQwenImage, RejectsOtherFamiliesAndBadShapes) {
  EXPECT_THROW((void)qwen_image(vae(VaeFamily::wan21, VaeOp::decode, 1024, 1024), QwenImageProfile::pr9427),
               ConfigError);
  // A decode produces whole latent pixels.
  EXPECT_THROW((void)qwen_image(vae(VaeFamily::qwen_image, VaeOp::decode, 1020, 1024), QwenImageProfile::pr9427),
               ConfigError);
  EXPECT_THROW((void)qwen_image(vae(VaeFamily::qwen_image, VaeOp::decode, 1024, 1024, DType::q8_0),
                                QwenImageProfile::pr9427),
               ConfigError);
}

// ---- FLUX.2 (PR #9519, read at e724d69e) ----

VaeWorkload flux2_vae(VaeOp op, int side, Backend backend, int batch = 1) {
  auto w = vae(VaeFamily::flux2, op, side, side, DType::bf16, backend);
  w.batch = batch;
  return w;
}

TEST(InvokeAiFlux2, CudnnConstantsOffRocm) {
  // 1024 * 1024 * 2 * 2200 / 1100: no score term where a fused kernel takes the 512-wide head.
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1024, Backend::cuda)), 4'613'734'400u);
  EXPECT_EQ(flux2(flux2_vae(VaeOp::encode, 1024, Backend::cuda)), 2'306'867'200u);
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1024, Backend::xpu)), 4'613'734'400u);
  EXPECT_EQ(flux2_mid_block_score_bytes(flux2_vae(VaeOp::decode, 1536, Backend::cuda)), 0u);
}

TEST(InvokeAiFlux2, MiopenConstantsCoverThePublishedRocmDecodes) {
  // 3600 decode / 2750 encode; the W7900 decode peaks of PR #9519's review (1.721 / 3.781 / 6.703 GiB) stay
  // below the estimate at every published size (the cache's 3 GiB floor aside).
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 512, Backend::rocm)), 1'887'436'800u);
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 768, Backend::rocm)), 4'246'732'800u);
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1024, Backend::rocm)), 7'549'747'200u);
  EXPECT_GT(static_cast<double>(flux2(flux2_vae(VaeOp::decode, 768, Backend::rocm))), 3.781 * static_cast<double>(GiB));
  EXPECT_GT(static_cast<double>(flux2(flux2_vae(VaeOp::decode, 1024, Backend::rocm))), 6.703 * static_cast<double>(GiB));
  EXPECT_EQ(flux2(flux2_vae(VaeOp::encode, 1024, Backend::rocm)), 5'767'168'000u);
}

TEST(InvokeAiFlux2, ScoreMatrixIsTakenAsMaxNotSum) {
  // ROCm materializes (S^2 * 17, S = (side/8)^2): 16384^2 * 17 at 1024 px, under the linear term there...
  EXPECT_EQ(flux2_mid_block_score_bytes(flux2_vae(VaeOp::decode, 1024, Backend::rocm)), 4'563'402'752u);
  // ...and above it at 1536 px (upstream: "~21 GiB at 1536px" for the score matrix alone).
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1536, Backend::rocm)), 23'102'226'432u);
  // Upstream's one crossover point: a 768 px encode, cuDNN constant, materializing kernel -> the 1.35 GB max.
  EXPECT_EQ(flux2(flux2_vae(VaeOp::encode, 768, Backend::mps)), 1'443'889'152u);
}

TEST(InvokeAiFlux2, BatchMultipliesBothTerms) {
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1024, Backend::cuda, 3)), 3 * 4'613'734'400u);
  EXPECT_EQ(flux2(flux2_vae(VaeOp::decode, 1536, Backend::rocm, 2)), 2 * 23'102'226'432u);
}

TEST(InvokeAiFlux2, TiledIsOneTilePlus25Percent) {
  // The reference-image encode forces 512 px tiles: 512 * 512 * 2 * 1100 * 1.25 whatever the image.
  EXPECT_EQ(flux2(tiled(flux2_vae(VaeOp::encode, 2024, Backend::cuda), 512)), 720'896'000u);
  EXPECT_EQ(flux2(tiled(flux2_vae(VaeOp::encode, 1024, Backend::cuda), 512)), 720'896'000u);
  // ROCm: 2750 * 1.25 per tile pixel byte; the tile's score matrix (4096^2 * 17) stays below it.
  EXPECT_EQ(flux2(tiled(flux2_vae(VaeOp::encode, 2024, Backend::rocm), 512)), 1'802'240'000u);
  EXPECT_EQ(flux2_mid_block_score_bytes(tiled(flux2_vae(VaeOp::encode, 2024, Backend::rocm), 512)), 285'212'672u);
  EXPECT_THROW((void)flux2(tiled(flux2_vae(VaeOp::encode, 1024, Backend::cuda), 0)), ConfigError);
}

TEST(InvokeAiFlux2, RejectsOtherFamilies) {
  EXPECT_THROW((void)flux2(vae(VaeFamily::flux1, VaeOp::decode, 1024, 1024)), ConfigError);
  EXPECT_THROW((void)flux2(vae(VaeFamily::flux2, VaeOp::decode, 1000, 1024)), ConfigError);  // not x16
}

// ---- PiD ----

VaeWorkload pid(VaeFamily backbone, int side, int batch = 1, bool optimize = false) {
  auto w = vae(backbone, VaeOp::decode, side, side, DType::fp32);
  w.batch = batch;
  w.memory_optimization = optimize;
  return w;
}

TEST(InvokeAiPid, Pr9281Is250PerOutputByteAndIgnoresTheBatch) {
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux1, 4096), PidProfile::pr9281), 16'777'216'000u);
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux1, 4096, 2), PidProfile::pr9281), 16'777'216'000u);
}

TEST(InvokeAiPid, Pr9460Is260PerOutputByteTimesBatch) {
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux1, 2048), PidProfile::pr9460), 4'362'076'160u);
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux1, 1024, 2), PidProfile::pr9460), 2'181'038'080u);
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux2, 1024), PidProfile::pr9460), 1'090'519'040u);
}

TEST(InvokeAiPid, Pr9460ChunkedPathPastTheTokenThreshold) {
  // 2048^2: 16384 patch tokens > 1024; 120 U + 224 MiB < 260 U.
  EXPECT_EQ(pid_decode(pid(VaeFamily::flux1, 2048, 1, true), PidProfile::pr9460), 2'248'146'944u);
  // 512^2: exactly 1024 tokens takes the unchunked path.
  EXPECT_EQ(pid_decode(pid(VaeFamily::sdxl, 512, 1, true), PidProfile::pr9460), 272'629'760u);
  // 704^2: 1936 tokens, past the crossover (~1638 tokens): 120 U + 224 MiB.
  EXPECT_EQ(pid_decode(pid(VaeFamily::sdxl, 704, 1, true), PidProfile::pr9460), 472'776'704u);
  // 640^2: chunked but the formulas have not crossed yet: keep 260 U.
  EXPECT_EQ(pid_decode(pid(VaeFamily::qwen_image, 640, 1, true), PidProfile::pr9460), 425'984'000u);
}

TEST(InvokeAiPid, RejectsUnknownBackbonesAndNonMultiples) {
  EXPECT_THROW((void)pid_decode(pid(VaeFamily::sd15, 2048), PidProfile::pr9460), ConfigError);
  EXPECT_THROW((void)pid_decode(pid(VaeFamily::flux2, 1056), PidProfile::pr9460), ConfigError);  // not x64
  auto enc = pid(VaeFamily::flux1, 2048);
  enc.op = VaeOp::encode;
  EXPECT_THROW((void)pid_decode(enc, PidProfile::pr9460), ConfigError);
}

}  // namespace
}  // namespace offsim::policies::invokeai
