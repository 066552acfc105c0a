// The two seed bugs, run from the bundled scenarios (their real facts only): each buggy profile must
// fail the way the field report says, each fixed profile must pass.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/policies/eval_result.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::policies {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

Scenario load(const char* file) { return Scenario::load(kRoot / "scenarios/default" / file, kRoot); }

const PropertyResult& property(const EvalResult& r, const char* id) {
  for (const PropertyResult& p : r.properties.results) {
    if (p.id == id) return p;
  }
  throw std::runtime_error("no property");
}

TEST(SeedInvokeAI9305, PreFixOomsInTheRocmDecodeAllocatingTheColumnBuffer) {
  const Scenario s = load("invokeai-9305-qwen-edit-q8-w7900-rocm.json");
  const EvalResult r = evaluate("invokeai@fda7c42b", s);
  ASSERT_FALSE(r.run.completed);
  ASSERT_EQ(r.run.stages.size(), 1u);
  const StageRecord& decode = r.run.stages[0];
  ASSERT_TRUE(decode.oom.has_value());
  EXPECT_EQ(decode.oom->requested, 96ull * 27 * 1248 * 832 * 2);  // the Conv3d column buffer
  EXPECT_NE(decode.oom->message.find("Tried to allocate 5.01 GiB"), std::string::npos) << decode.oom->message;
  EXPECT_NE(decode.oom->message.find("total capacity of 44.98 GiB"), std::string::npos);
  EXPECT_TRUE(decode.decision.evictions.empty());                      // the cache evicted nothing
  EXPECT_EQ(decode.decision.estimate, 3ull * GiB);                      // only the default working memory
  EXPECT_EQ(decode.decision.stop, StopReason::kSatisfied);
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kFail);
  EXPECT_EQ(property(r, "P3").verdict, Verdict::kFail);
  EXPECT_NE(r.properties.diagnosis.find("estimator fault"), std::string::npos) << r.properties.diagnosis;
}

TEST(SeedInvokeAI9305, FixedCachePassesByEvictingBeforeTheDecode) {
  const Scenario s = load("invokeai-9305-qwen-edit-q8-w7900-rocm.json");
  for (const char* id : {"invokeai@a6724695", "invokeai@8e71a8a5", "invokeai-smart@00f5ba9f"}) {
    SCOPED_TRACE(id);
    const EvalResult r = evaluate(id, s);
    ASSERT_TRUE(r.run.completed) << r.run.failure;
    const StageRecord& decode = r.run.stages[0];
    EXPECT_EQ(decode.decision.estimate, 5500ull * 1248 * 832 * 2);  // the ROCm constant of PR #9305
    EXPECT_FALSE(decode.decision.evictions.empty());
    EXPECT_FALSE(r.properties.failed());
  }
}

TEST(SeedInvokeAI9305, FreedBytesStayCachedSoBothOtherModelsArePartlyUnloaded) {
  // _get_vram_available reads driver free memory, which does not grow until the empty_cache() that ends
  // the offload pass: after unloading part of the text encoder the shortfall looks unchanged, so the
  // transformer is unloaded by the same amount too. Totals cannot show this; the allocator model can.
  const Scenario s = load("invokeai-9305-qwen-edit-q8-w7900-rocm.json");
  const EvalResult r = evaluate("invokeai@a6724695", s);
  const auto& evictions = r.run.stages[0].decision.evictions;
  ASSERT_EQ(evictions.size(), 2u);
  EXPECT_EQ(evictions[0].model, "text_encoder");  // smallest first
  EXPECT_EQ(evictions[1].model, "transformer");
  const double ratio = static_cast<double>(evictions[0].bytes) / static_cast<double>(evictions[1].bytes);
  EXPECT_NEAR(ratio, 1.0, 0.05);
}

TEST(SeedInvokeAI9305, OnCudaKernelsTheSameDecodeFitsButTheDefaultIsBelowThePeak) {
  const Scenario s = load("invokeai-9305-qwen-edit-q8-cuda.json");
  const EvalResult r = evaluate("invokeai@fda7c42b", s);
  EXPECT_TRUE(r.run.completed) << r.run.failure;
  EXPECT_EQ(property(r, "P3").verdict, Verdict::kPass);
  EXPECT_EQ(property(r, "P2").verdict, Verdict::kFail);  // 3 GiB < 5.21 GiB measured on CUDA
  EXPECT_FALSE(evaluate("invokeai@a6724695", s).properties.failed());
}

TEST(SeedLightX2V1051, PreFixFailsOnTheSecondCallLoadingA32MiBTextEncoderWeight) {
  const Scenario s = load("lightx2v-1051-flux2-klein-9b-3-calls.json");
  const EvalResult r = evaluate("lightx2v@c177fd82^", s);
  ASSERT_FALSE(r.run.completed);
  const StageRecord& failed = r.run.stages.back();
  EXPECT_EQ(failed.stage, "text_encode");
  EXPECT_EQ(failed.call, 1);  // call 2
  ASSERT_TRUE(failed.oom.has_value());
  EXPECT_EQ(failed.oom->requested, 32ull * MiB) << failed.oom->message;
  EXPECT_NE(failed.oom->message.find("Tried to allocate 32.00 MiB"), std::string::npos);
  EXPECT_EQ(property(r, "P4").verdict, Verdict::kFail);
  EXPECT_NE(property(r, "P4").detail.find("transformer"), std::string::npos);
  ASSERT_TRUE(r.properties.min_capacity_one_call.has_value());
  EXPECT_TRUE(!r.properties.min_capacity_all_calls || *r.properties.min_capacity_all_calls > *r.properties.min_capacity_one_call);
}

TEST(SeedLightX2V1051, FixedScheduleRunsThreeCallsAndOneCallNeedsNoLessMemory) {
  const Scenario s = load("lightx2v-1051-flux2-klein-9b-3-calls.json");
  const EvalResult r = evaluate("lightx2v@c177fd82", s);
  ASSERT_TRUE(r.run.completed) << r.run.failure;
  EXPECT_EQ(r.run.calls.size(), 3u);
  EXPECT_FALSE(r.properties.failed());
  ASSERT_TRUE(r.properties.min_capacity_one_call.has_value());
  EXPECT_EQ(r.properties.min_capacity_one_call, r.properties.min_capacity_all_calls);
}

}  // namespace
}  // namespace offsim::policies
