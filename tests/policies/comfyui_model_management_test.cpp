// ComfyUI's classic model management on hand-checked scenarios: every expected number below is worked
// out from comfy/model_management.py and comfy/model_patcher.py @a125cd84 in the comment next to it.
// Tensors are multiples of 2 MiB and >= 10 MiB, so each is one segment of exactly its size and the
// allocator adds no rounding to the arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "offsim/policies/comfyui_model_management.hpp"
#include "offsim/policies/comfyui_tiled_retry.hpp"
#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

using test::T;

constexpr std::uint64_t M = MiB;
// minimum_inference_memory() - EXTRA_RESERVED_VRAM = 0.8 GiB, rounded up to a byte.
const std::uint64_t kFloor = static_cast<std::uint64_t>(std::ceil(0.8 * static_cast<double>(GiB)));

RunRecord run(const std::string& id, const Scenario& s) {
  auto policy = make_policy(id);
  return run_policy(*policy, s);
}

const PropertyResult& property(const EvalResult& r, const char* id) {
  for (const PropertyResult& p : r.properties.results) {
    if (p.id == id) return p;
  }
  throw std::runtime_error("no property");
}

TEST(ComfyUIModelManagement, TextEncoderGetsTheInferenceMinimumAndLoadsFully) {
  const Scenario s = test::build(
      {{"device", test::device(4 * GiB)},
       {"models", {{{"id", "te"}, {"manifest", "te.json"}}}},
       {"stages", {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"te"}}}}},
       {"calls", 2}},
      {{"te.json", test::manifest("te", "text_encoder", {{"a.weight", 128 * M}, {"b.weight", 128 * M}})}});
  const RunRecord r = run("comfyui@a125cd84", s);
  ASSERT_TRUE(r.completed) << r.failure;
  ASSERT_EQ(r.stages.size(), 2u);
  const StageDecision& d = r.stages[0].decision;
  EXPECT_EQ(d.estimate, kFloor);  // load_model_gpu passes memory_required = 0
  EXPECT_NE(d.estimate_source.find("no estimate passed"), std::string::npos);
  EXPECT_EQ(d.free_memory, static_cast<std::int64_t>(4 * GiB));  // nothing on the device yet
  EXPECT_EQ(d.stop, StopReason::kSatisfied);                     // 4 GiB > 1.1 x 256 MiB + 1219.2 MiB
  EXPECT_EQ(d.weights_loaded, 256 * M);
  EXPECT_EQ(d.streamed_weights, 0u);
  // The second call finds it loaded: nothing moves.
  EXPECT_EQ(r.stages[1].bytes_to_device, 0u);
  EXPECT_EQ(r.stages[1].decision.weights_loaded, 0u);
}

// Three resident models A (256 MiB), B (32 + 96 MiB), C (64 + 64 MiB), listed in that order: C was loaded
// last, so current_loaded_models = [C, B, A]. Loading D (384 MiB) needs free > 1.1 x 384 + 1219.2 =
// 1641.6 MiB (minimum_inference_memory = 0.8 GiB + 400 MiB = 1219.2 MiB). The sort key (-offloaded, refcount,
// size, index) puts B and C (128 MiB) before A and, equal in size, C (index 0) before B: C is fully unloaded
// (137.6 MiB asked > its 128 MiB), then B only partially: 9.6 MiB asked, its smallest module (32 MiB) goes
// first and is enough.
TEST(ComfyUIModelManagement, UnloadsSmallerThenMostRecentAndPartiallyUnloadsSmallestModulesFirst) {
  const std::uint64_t total = (256 + 128 + 128 + 1504) * M;
  const Scenario s = test::build(
      {{"device", test::device(total)},
       {"models",
        {{{"id", "a"}, {"manifest", "a.json"}},
         {{"id", "b"}, {"manifest", "b.json"}},
         {{"id", "c"}, {"manifest", "c.json"}},
         {{"id", "d"}, {"manifest", "d.json"}}}},
       {"initially_resident", {"a", "b", "c"}},
       {"stages", {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"d"}}}}}},
      {{"a.json", test::manifest("a", "text_encoder", {{"l0.weight", 128 * M}, {"l1.weight", 128 * M}})},
       {"b.json", test::manifest("b", "text_encoder", {{"big.weight", 96 * M}, {"small.weight", 32 * M}})},
       {"c.json", test::manifest("c", "text_encoder", {{"l0.weight", 64 * M}, {"l1.weight", 64 * M}})},
       {"d.json", test::manifest("d", "text_encoder",
                                 {{"l0.weight", 64 * M}, {"l1.weight", 64 * M}, {"l2.weight", 64 * M},
                                  {"l3.weight", 64 * M}, {"l4.weight", 64 * M}, {"l5.weight", 64 * M}})}});
  const RunRecord r = run("comfyui@a125cd84", s);
  ASSERT_TRUE(r.completed) << r.failure;
  const StageDecision& d = r.stages[0].decision;
  ASSERT_EQ(d.evictions.size(), 2u);
  EXPECT_EQ(d.evictions[0].model, "c");
  EXPECT_EQ(d.evictions[0].bytes, 128 * M);
  EXPECT_EQ(d.evictions[1].model, "b");
  EXPECT_EQ(d.evictions[1].bytes, 32 * M);  // only "small"
  EXPECT_EQ(d.free_memory, static_cast<std::int64_t>(1664 * M));  // 1504 + 128 + 32
  EXPECT_EQ(d.stop, StopReason::kSatisfied);
  EXPECT_EQ(d.weights_loaded, 384 * M);  // budget 1664 - 1219.2 = 444.8 MiB > 384: full load
  // A full unload happened, so soft_empty_cache() returned the cached segments.
  EXPECT_EQ(r.stages[0].reserved_before, r.stages[0].allocated_before);
  // B stays registered with what it kept; C is reported offloaded and holds nothing.
  const ResidencyClaim& claim = r.calls.at(0).claim;
  EXPECT_NE(std::find(claim.offloaded.begin(), claim.offloaded.end(), "c"), claim.offloaded.end());
  EXPECT_NE(std::find(claim.resident_by_design.begin(), claim.resident_by_design.end(), "b"),
            claim.resident_by_design.end());
  EXPECT_TRUE(r.calls.at(0).claimed_offloaded_but_resident.empty());
}

// Only a partial unload (of C: 10.4 MiB asked, one 64 MiB module freed): the freed block stays cached
// because reserved - active (64 MiB) is not above a quarter of get_free_memory.
TEST(ComfyUIModelManagement, KeepsTheCacheAfterAPartialUnloadWhenLittleOfFreeIsCached) {
  // D = 4 x 96 MiB: wanted 1.1 x 384 + 1219.2 = 1641.6 MiB; free before = 1631.2 MiB -> 10.4 MiB short.
  const std::uint64_t free_before = static_cast<std::uint64_t>(1631.2 * static_cast<double>(M));
  const Scenario s = test::build(
      {{"device", test::device(128 * M + free_before)},
       {"models", {{{"id", "c"}, {"manifest", "c.json"}}, {{"id", "d"}, {"manifest", "d.json"}}}},
       {"initially_resident", {"c"}},
       {"stages", {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"d"}}}}}},
      {{"c.json", test::manifest("c", "text_encoder", {{"l0.weight", 64 * M}, {"l1.weight", 64 * M}})},
       {"d.json", test::manifest("d", "text_encoder",
                                 {{"l0.weight", 96 * M}, {"l1.weight", 96 * M}, {"l2.weight", 96 * M},
                                  {"l3.weight", 96 * M}})}});
  const RunRecord r = run("comfyui@a125cd84", s);
  ASSERT_TRUE(r.completed) << r.failure;
  const StageDecision& d = r.stages[0].decision;
  ASSERT_EQ(d.evictions.size(), 1u);
  EXPECT_EQ(d.evictions[0].bytes, 64 * M);
  EXPECT_EQ(r.stages[0].reserved_before - r.stages[0].allocated_before, 64 * M);  // still cached
}

// Partial ("lowvram") load on NVIDIA (MIN_WEIGHT_MEMORY_RATIO = 0): free 1519 MiB, nothing to unload, so
// the 1.1 x 496 + 1219.2 MiB condition fails (exhausted) and the weight budget is 1519 - 1219.2 = 299.8
// MiB. Modules largest first: 256 fits; 128 (384 >= 299.8) and 64 (320) do not; 32 (288) does; 16 (304)
// does not -> 256 + 32 on the device, 128, 64 and 16 cast per forward.
TEST(ComfyUIModelManagement, LowvramLoadsLargestModulesFirstSkippingOnesThatDoNotFit) {
  const Scenario s = test::build(
      {{"device", test::device(1519 * M)},
       {"models", {{{"id", "m"}, {"manifest", "m.json"}}}},
       {"stages", {{{"name", "encode"}, {"kind", "text_encode"}, {"models", {"m"}}, {"steps", 1}}}},
       {"calls", 2}},
      {{"m.json", test::manifest("m", "text_encoder",
                                 {{"a.weight", 128 * M}, {"b.weight", 256 * M}, {"c.weight", 16 * M},
                                  {"d.weight", 64 * M}, {"e.weight", 32 * M}})}});
  const RunRecord r = run("comfyui@a125cd84", s);
  ASSERT_TRUE(r.completed) << r.failure;
  const StageDecision& d = r.stages[0].decision;
  EXPECT_EQ(d.stop, StopReason::kExhausted);
  EXPECT_EQ(d.free_memory, static_cast<std::int64_t>(1519 * M));
  EXPECT_EQ(d.weights_loaded, (256 + 32) * M);
  EXPECT_EQ(d.streamed_weights, 128 * M);  // the largest module cast per forward
  // Traffic of the step: the loaded modules plus every cast module's copy.
  EXPECT_EQ(r.stages[0].bytes_to_device, (256 + 32 + 128 + 64 + 16) * M);
  // Call 2: the model is registered as partially loaded; load_models_gpu gives it more room only if
  // free memory grew (it did not), and the cast modules stream again.
  EXPECT_EQ(r.stages[1].decision.weights_loaded, 0u);
  EXPECT_EQ(r.stages[1].bytes_to_device, (128 + 64 + 16) * M);
}

// The VAE decode passes memory_used_decode: SDXL 512x512 fp16 = 2178 x 64 x 64 x 64 x 2 = 1,141,899,264 B.
// extra_mem = 1,141,899,264 + 400 MiB; the resident 1 GiB "unet" has to give way partially.
TEST(ComfyUIModelManagement, VaeDecodeReservesMemoryUsedDecodeAndUnloadsForIt) {
  const std::uint64_t memory_used = 2178ull * 64 * 64 * 64 * 2;
  const Scenario s = test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "unet"}, {"manifest", "unet.json"}}, {{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"initially_resident", {"unet", "vae"}},
       {"stages",
        {{{"name", "decode"},
          {"kind", "vae_decode"},
          {"models", {"vae"}},
          {"workload",
           {{"vae", {{"family", "sdxl"}, {"op", "decode"}, {"height", 512}, {"width", 512}, {"dtype", "fp16"}}}}},
          {"working_memory", test::working_memory({1024 * M})}}}}},
      {{"unet.json", test::manifest("unet", "unet",
                                    {{"b0.weight", 256 * M}, {"b1.weight", 256 * M}, {"b2.weight", 256 * M},
                                     {"b3.weight", 256 * M}})},
       {"vae.json", test::manifest("vae", "vae", {{"decoder.conv.weight", 64 * M}})}});
  const EvalResult e = evaluate("comfyui@a125cd84", s);
  const RunRecord& r = e.run;
  ASSERT_TRUE(r.completed) << r.failure;
  const StageDecision& d = r.stages[0].decision;
  EXPECT_EQ(d.estimate, memory_used);
  EXPECT_EQ(d.estimate_source, "comfyui/vae-autoencoder-kl@a125cd84");
  // free 960 MiB; wanted 0 x 1.1 + 1089 + 400 = 1489 MiB -> 529 MiB from the unet, 256 MiB modules
  // smallest (then name) first: b0, b1, b2 (768 MiB: the loop stops once freed > asked).
  ASSERT_EQ(d.evictions.size(), 1u);
  EXPECT_EQ(d.evictions[0].model, "unet");
  EXPECT_EQ(d.evictions[0].bytes, 768 * M);
  EXPECT_EQ(d.stop, StopReason::kSatisfied);
  EXPECT_EQ(property(e, "P1").verdict, Verdict::kPass);
  EXPECT_EQ(property(e, "P3").verdict, Verdict::kPass);
}

// VAE.decode catches OOM_EXCEPTION and decodes tiled: a scenario marks the untiled attempt's allocation
// fallible, it fails as a handled OOM, and the tiles that follow fit.
TEST(ComfyUIModelManagement, VaeDecodeOomFallsBackToTilesAsAHandledOom) {
  const nlohmann::json memory = {
      {"provenance", {{"kind", "synthetic"}, {"source", "unit test"}}},
      {"ops", nlohmann::json::array({nlohmann::json::array({"alloc", 3 * GiB, {{"fallible", true}}}),
                                     nlohmann::json::array({"free", 0u}), nlohmann::json::array({"alloc", 256 * M}),
                                     nlohmann::json::array({"free", 1u})})}};
  const Scenario s = test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages",
        {{{"name", "decode"},
          {"kind", "vae_decode"},
          {"models", {"vae"}},
          {"workload",
           {{"vae", {{"family", "sdxl"}, {"op", "decode"}, {"height", 512}, {"width", 512}, {"dtype", "fp16"}}}}},
          {"working_memory", memory}}}}},
      {{"vae.json", test::manifest("vae", "vae", {{"decoder.conv.weight", 64 * M}})}});
  const EvalResult e = evaluate("comfyui@a125cd84", s);
  ASSERT_TRUE(e.run.completed) << e.run.failure;
  EXPECT_EQ(e.run.stages[0].handled_ooms, 1u);
  EXPECT_EQ(property(e, "P3").verdict, Verdict::kPass);
}

// The same except clause without a scenario that records the tiles (a published peak is one allocation):
// the untiled attempt's OOM is handled and the retry runs 256 px tiles of the 3-D Qwen-Image VAE, each the
// stage's peak x 256^2 / 1024^2 = 3 GiB / 16 = 192 MiB, which fits (comfy/sd.py@a125cd84 VAE.decode ->
// decode_tiled_3d, tile = 256 // 8 latents).
TEST(ComfyUIModelManagement, UntiledVaeDecodeOomRetriesInTilesDerivedFromTheStage) {
  const Scenario s = test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages",
        {{{"name", "decode"},
          {"kind", "vae_decode"},
          {"models", {"vae"}},
          {"workload",
           {{"vae", {{"family", "qwen_image"}, {"op", "decode"}, {"height", 1024}, {"width", 1024}, {"dtype", "bf16"}}}}},
          {"working_memory", test::working_memory({3 * GiB})}}}}},
      {{"vae.json", test::manifest("vae", "vae", {{"decoder.conv.weight", 64 * M}})}});
  const EvalResult e = evaluate("comfyui@a125cd84", s);
  ASSERT_TRUE(e.run.completed) << e.run.failure;
  const StageRecord& decode = e.run.stages[0];
  EXPECT_EQ(decode.handled_ooms, 1u);
  ASSERT_TRUE(decode.fallback_after.has_value());
  EXPECT_EQ(decode.fallback_after->requested, 3 * GiB);
  ASSERT_TRUE(decode.decision.oom_fallback.has_value());
  EXPECT_NE(decode.decision.oom_fallback->label.find("decode_tiled_3d (256 px tiles): 192.00 MiB"), std::string::npos)
      << decode.decision.oom_fallback->label;
  EXPECT_EQ(decode.t_warm, 192 * M);  // the untiled allocation failed whole; one tile grew the cache
  EXPECT_EQ(property(e, "P3").verdict, Verdict::kPass);
  const nlohmann::json json = to_json(e);
  EXPECT_EQ(json["stages"][0]["fallback"]["requested_bytes"], 3 * GiB);
  // InvokeAI's decode has no such clause: the same OOM fails the run.
  EXPECT_EQ(property(evaluate("invokeai@a6724695", s), "P3").verdict, Verdict::kFail);
}

// A 2-D VAE's fallback tiles are 512 px squares or 256x1024 strips (decode_tiled_: 64x64 latents): a 512x512
// decode retried in tiles is the same decode, and its OOM propagates out of the except clause as an unhandled one.
TEST(ComfyUIModelManagement, TiledRetryAsLargeAsTheImageFailsLikeTheFirstRun) {
  const Scenario s = test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages",
        {{{"name", "decode"},
          {"kind", "vae_decode"},
          {"models", {"vae"}},
          {"workload",
           {{"vae", {{"family", "sdxl"}, {"op", "decode"}, {"height", 512}, {"width", 512}, {"dtype", "fp16"}}}}},
          {"working_memory", test::working_memory({3 * GiB})}}}}},
      {{"vae.json", test::manifest("vae", "vae", {{"decoder.conv.weight", 64 * M}})}});
  const EvalResult e = evaluate("comfyui@a125cd84", s);
  ASSERT_FALSE(e.run.completed);
  const StageRecord& decode = e.run.stages[0];
  EXPECT_EQ(decode.handled_ooms, 1u);
  ASSERT_TRUE(decode.oom.has_value());
  EXPECT_EQ(decode.oom->requested, 3 * GiB);
  EXPECT_EQ(property(e, "P3").verdict, Verdict::kFail);
}

// The tile the fallback runs is the largest of its passes, clipped to the image (comfy/sd.py@a125cd84
// decode_tiled_ / encode_tiled_ / *_tiled_3d defaults; comfy/utils.py tiled_scale_multidim clips at edges).
TEST(ComfyUIModelManagement, TiledRetryTileIsTheLargestPassClippedToTheImage) {
  using comfyui::VaeType;
  // 2-D decode, 64-latent tiles at upscale 8: 256x1024, 1024x256, 512x512 px.
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::autoencoder_kl, VaeOp::decode, 2048, 2048), 512u * 512);
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::autoencoder_kl, VaeOp::decode, 2048, 200), 1024u * 200);
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::autoencoder_kl, VaeOp::decode, 512, 512), 512u * 512);
  // FLUX.2's batch-norm latent doubles upscale_ratio: 1024 px squares.
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::flux2_kl, VaeOp::decode, 2048, 2048), 1024u * 1024);
  // 2-D encode: 512 px squares and 1024x256 strips, whatever the VAE's ratio.
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::flux2_kl, VaeOp::encode, 2048, 2048), 512u * 512);
  // 3-D: one 256x256 px pass (256 // spacial_compression latents), clipped.
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::wan21, VaeOp::decode, 1248, 832), 256u * 256);
  EXPECT_EQ(comfyui_retry_tile_pixels(VaeType::wan22, VaeOp::encode, 2048, 128), 256u * 128);
}

// The counterexample `offsim check -p comfyui --property P3 --seeds 20` found before the fallback was
// modelled (seed 20261130, shrunk): on a 33 GiB ROCm card the second call's untiled Qwen-Image-Edit encode
// (2.86 GiB) fails with 2.83 GiB free and 535 MiB stranded in split segments, which ComfyUI counts free.
// VAE.encode catches that OOM and encodes in 256 px tiles (2.86 GiB x 256^2 / 512^2 = 733 MiB), which fit:
// a handled OOM, not an accounting-fault failure.
TEST(ComfyUIModelManagement, CheckCounterexampleEncodeOomIsRetriedInTilesAndPasses) {
  const std::filesystem::path root = OFFSIM_SOURCE_DIR;
  const Scenario s =
      Scenario::load(root / "tests/corpus/counterexamples/comfyui-encode-oom-tiled-retry-rocm-33gib.json", root);
  const EvalResult e = evaluate("comfyui@a125cd84", s);
  ASSERT_TRUE(e.run.completed) << e.run.failure;
  std::size_t handled = 0;
  for (const StageRecord& r : e.run.stages) {
    if (r.stage == "encode") handled += r.handled_ooms;
  }
  EXPECT_EQ(handled, 1u);  // the second call's untiled encode; the first fits
  EXPECT_EQ(property(e, "P3").verdict, Verdict::kPass);
}

// B9's mechanism: with MIN_WEIGHT_MEMORY_RATIO = 0 (NVIDIA) the weight budget leaves exactly the minimum
// reservation free; with 0.4 (any other GPU) min(0.4 x cur_free, cur_free - minimum_inference_memory) wins
// when the reservation is above 0.6 x cur_free, so more weights load and less than the estimate stays free.
TEST(ComfyUIModelManagement, MinWeightMemoryRatioIsZeroOnNvidiaOnly) {
  auto scenario = [](const char* platform) {
    nlohmann::json dev = test::device(2 * GiB);
    dev["platform"] = platform;
    std::vector<T> tensors;
    for (int i = 0; i < 32; ++i) tensors.push_back({"l" + std::to_string(i) + ".weight", 64 * M});
    return test::build(
        {{"device", dev},
         {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
         {"stages",
          {{{"name", "decode"},
            {"kind", "vae_decode"},
            {"models", {"vae"}},
            {"workload",
             {{"vae", {{"family", "sdxl"}, {"op", "decode"}, {"height", 512}, {"width", 512}, {"dtype", "fp16"}}}}}}}}},
        {{"vae.json", test::manifest("vae", "vae", tensors)}});
  };
  // cur_free = 2048 MiB; minimum_memory_required = extra_mem = 1089 + 400 = 1489 MiB.
  // NVIDIA: budget = max(128, 2048 - 1489 = 559, min(0, ...)) = 559 MiB -> 8 modules (the 9th reaches 576).
  const RunRecord nvidia = run("comfyui@a125cd84", scenario("cuda"));
  EXPECT_EQ(nvidia.stages[0].decision.weights_loaded, 8 * 64 * M);
  EXPECT_EQ(nvidia.stages[0].decision.stop, StopReason::kExhausted);
  // ROCm: max(128, 559, min(0.4 x 2048 = 819.2, 2048 - 1219.2 = 828.8)) = 819.2 -> 12 modules (13th: 832).
  const RunRecord rocm = run("comfyui@a125cd84", scenario("rocm"));
  EXPECT_EQ(rocm.stages[0].decision.weights_loaded, 12 * 64 * M);
}

// load_models_gpu with the diffusion model's estimate: memory_required for the cond+uncond batch, minimum
// for the batch; a partial load keeps only the minimum (+ EXTRA_RESERVED_VRAM) free.
TEST(ComfyUIModelManagement, DenoiseLoadsOnceAndStreamsCastWeightsEveryStep) {
  // SD1.5 64x64 latent, fp16, efficient attention: memory_required = 2*64*64 * 2 * 0.01 * 1.0 * 2^20 and
  // minimum = half of it (comfyui_model_memory.cpp).
  const double area2 = 2.0 * 64 * 64, area1 = 64.0 * 64;
  const auto required = static_cast<std::uint64_t>(std::ceil(area2 * 2 * 0.01 * 1.0 * 1024 * 1024));
  const auto minimum = static_cast<std::uint64_t>(std::ceil(area1 * 2 * 0.01 * 1.0 * 1024 * 1024));
  ASSERT_LT(required, kFloor);  // both below the 0.8 GiB floor
  ASSERT_LT(minimum, kFloor);
  std::vector<T> tensors;
  for (int i = 0; i < 16; ++i) tensors.push_back({"blk" + std::to_string(i) + ".weight", 128 * M});
  const Scenario s = test::build(
      {{"device", test::device(2 * GiB)},
       {"models", {{{"id", "unet"}, {"manifest", "unet.json"}}}},
       {"stages",
        {{{"name", "denoise"},
          {"kind", "denoise"},
          {"models", {"unet"}},
          {"steps", 3},
          {"workload", {{"denoise", {{"model", "sd15"}, {"noise_shape", {1, 4, 64, 64}}, {"dtype", "fp16"}}}}}}}}},
      {{"unet.json", test::manifest("unet", "unet", tensors)}});
  const RunRecord r = run("comfyui@a125cd84", s);
  ASSERT_TRUE(r.completed) << r.failure;
  ASSERT_EQ(r.stages.size(), 3u);
  // minimum_memory_required = max(1219.2 MiB, minimum + 400 MiB) = 1219.2 MiB; budget = 2048 - 1219.2 =
  // 828.8 MiB -> 6 modules of 128 MiB (768; the 7th reaches 896).
  EXPECT_EQ(r.stages[0].decision.weights_loaded, 6 * 128 * M);
  EXPECT_EQ(r.stages[0].decision.estimate, kFloor);
  EXPECT_EQ(r.stages[0].decision.stop, StopReason::kExhausted);
  for (int step = 1; step < 3; ++step) {
    const StageRecord& rec = r.stages[static_cast<std::size_t>(step)];
    EXPECT_EQ(rec.decision.weights_loaded, 0u);                          // no load_models_gpu after step 1
    EXPECT_FALSE(rec.decision.free_memory.has_value());
    EXPECT_EQ(rec.decision.stop, StopReason::kNotApplicable);
    EXPECT_EQ(rec.bytes_to_device, 10 * 128 * M);                         // the cast modules, again
    EXPECT_EQ(rec.decision.streamed_weights, 128 * M);
  }
}

TEST(ComfyUIModelManagement, VaeEstimatorIdsFollowTheProfile) {
  EXPECT_EQ(comfyui_vae_estimator_id(VaeFamily::qwen_image, comfyui::Profile::a125cd84), "comfyui/vae-wan21@a125cd84");
  EXPECT_EQ(comfyui_vae_estimator_id(VaeFamily::qwen_image, comfyui::Profile::c033046cc), "comfyui/vae-wan21@033046cc");
  EXPECT_EQ(comfyui_vae_estimator_id(VaeFamily::sdxl, comfyui::Profile::a125cd84),
            "comfyui/vae-autoencoder-kl@a125cd84");
  EXPECT_THROW((void)comfyui_vae_estimator_id(VaeFamily::flux2, comfyui::Profile::a125cd84), ConfigError);
  for (const ComfyUIProfile& p : comfyui_profiles()) {
    for (VaeFamily f : {VaeFamily::sd15, VaeFamily::sdxl, VaeFamily::flux1, VaeFamily::qwen_image, VaeFamily::wan21}) {
      EXPECT_NO_THROW((void)find_estimator(comfyui_vae_estimator_id(f, p.vae_estimates))) << p.id;
    }
  }
}

// Known bug B8 (Comfy-Org/ComfyUI issue #9771 -> PR #11199), from the corpus scenario: the Qwen-Image VAE
// took the Wan 2.1 video branch, 7000 x h x w x 64 x 2 bytes, ~3.5x what the decode measured in ComfyUI.
TEST(ComfyUIModelManagement, CorpusB8QwenImageVaeOverEstimateIsReportedBeforePr11199) {
  const std::filesystem::path root = OFFSIM_SOURCE_DIR;
  const Scenario s =
      Scenario::load(root / "scenarios/corpus/comfyui-9771-qwen-image-vae-over-estimate-5090.json", root);
  const EvalResult before = evaluate("comfyui@a125cd84", s);
  const StageRecord& decode = before.run.stages.back();
  ASSERT_EQ(decode.stage, "decode");
  EXPECT_EQ(decode.decision.estimate, 7000ull * 96 * 144 * 64 * 2);  // latent 96 x 144: 11812.5 MiB
  ASSERT_TRUE(decode.t_cold.has_value());
  EXPECT_GT(static_cast<double>(*decode.decision.estimate), 3.0 * static_cast<double>(*decode.t_cold));
  EXPECT_EQ(property(before, "P5").verdict, Verdict::kReported);
  EXPECT_FALSE(decode.decision.evictions.empty());  // the over-estimate unloads transformer weights
  const EvalResult after = evaluate("comfyui@a125cd84+vae-033046cc", s);
  const StageRecord& fixed = after.run.stages.back();
  EXPECT_EQ(fixed.decision.estimate, 2200ull * 96 * 144 * 64 * 2);
  EXPECT_NE(property(after, "P5").verdict, Verdict::kReported);
  EXPECT_LT(fixed.bytes_to_host, decode.bytes_to_host);  // fewer weights pushed out for the decode
}

}  // namespace
}  // namespace offsim::policies
