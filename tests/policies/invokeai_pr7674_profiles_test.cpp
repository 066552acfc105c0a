// The InvokeAI profiles of early 2025 (bug B5, issue #7587 / PR #7674): invokeai@7567ee2a (the decode
// estimates fitted to allocated memory) and invokeai@b9f9d1c1 (PR #7674). What they share with the snapshot
// cache and what they do not: decode estimates per family, no estimate at the encode call sites (until PR
// #8414), partial loading off by default. Expected values are computed by hand from the upstream formulas.
#include <gtest/gtest.h>

#include <filesystem>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/bytes.hpp"
#include "policies/scenario_fixture.hpp"

namespace offsim::policies {
namespace {

using test::T;

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;
constexpr char kBefore[] = "invokeai@7567ee2a";
constexpr char kFixed[] = "invokeai@b9f9d1c1";

const PropertyResult& property(const EvalResult& r, const char* id) {
  for (const PropertyResult& p : r.properties.results) {
    if (p.id == id) return p;
  }
  throw std::runtime_error("no property");
}

// The first record of the named stage (the scenario must outlive the result: EvalResult points to it).
const StageRecord& stage(const EvalResult& r, const std::string& name) {
  for (const StageRecord& s : r.run.stages) {
    if (r.scenario->stages[s.stage_index].name == name) return s;
  }
  throw std::runtime_error("no stage " + name);
}

// The estimate one policy records for one stage of a scenario.
std::optional<std::uint64_t> estimate(const char* policy, const Scenario& s, const std::string& name) {
  return stage(evaluate(policy, s), name).decision.estimate;
}

Scenario counterexample(const char* file) {
  return Scenario::load(kRoot / "tests/corpus/counterexamples" / file, kRoot);
}

TEST(InvokeAiPr7674, SdxlFp16DecodeReservesTheFloorBelowThePublishedPeak) {
  const Scenario s = counterexample("b05-sdxl-fp16-decode-1024-cuda.json");
  const EvalResult before = evaluate(kBefore, s);
  const StageRecord& d = stage(before, "decode");
  // (1024 * 1024 * 2 * 960) * 1.2 = 2.25 GiB is raised to the cache's 3 GiB floor, below 3232 MiB reserved.
  EXPECT_EQ(d.decision.estimate, 3 * GiB);
  EXPECT_EQ(d.decision.estimate_source, "invokeai/sd15-sdxl@7567ee2a");
  EXPECT_EQ(d.t_cold, 3232 * MiB);
  EXPECT_EQ(property(before, "P2").verdict, Verdict::kFail);

  const EvalResult fixed = evaluate(kFixed, s);
  EXPECT_EQ(stage(fixed, "decode").decision.estimate, 4400 * MiB);  // PR #7674's "Estimated: 4400 MB"
  EXPECT_EQ(property(fixed, "P2").verdict, Verdict::kPass);
}

TEST(InvokeAiPr7674, SdxlFp32DecodeEstimateItselfIsBelowThePublishedPeak) {
  const Scenario s = counterexample("b05-sdxl-fp32-decode-1024-cuda.json");
  const EvalResult before = evaluate(kBefore, s);
  EXPECT_EQ(stage(before, "decode").decision.estimate, 5'146'411'008u);  // (4 MiB * 960 + 250 MiB) * 1.2
  EXPECT_EQ(stage(before, "decode").t_cold, 5568 * MiB);
  EXPECT_EQ(property(before, "P2").verdict, Verdict::kFail);
  const EvalResult fixed = evaluate(kFixed, s);
  EXPECT_EQ(stage(fixed, "decode").decision.estimate, 9050 * MiB);  // PR #7674's "Estimated: 9050 MB"
  EXPECT_EQ(property(fixed, "P2").verdict, Verdict::kPass);
}

// An SD VAE encode then decode on a roomy card, to read what each call site passes.
Scenario encode_then_decode(const std::string& family, const std::string& dtype) {
  const nlohmann::json vae = {{"family", family}, {"height", 1024}, {"width", 1024}, {"dtype", dtype}};
  nlohmann::json encode = vae;
  encode["op"] = "encode";
  nlohmann::json decode = vae;
  decode["op"] = "decode";
  return test::build(
      {{"device", test::device(24 * GiB)},
       {"models", {{{"id", "vae"}, {"manifest", "vae.json"}}}},
       {"stages", {{{"name", "encode"}, {"kind", "vae_encode"}, {"models", {"vae"}}, {"workload", {{"vae", encode}}},
                    {"working_memory", test::working_memory({64 * MiB})}},
                   {{"name", "decode"}, {"kind", "vae_decode"}, {"models", {"vae"}}, {"workload", {{"vae", decode}}},
                    {"working_memory", test::working_memory({64 * MiB})}}}}},
      {{"vae.json", test::manifest("vae", "vae", {T("w", 160 * MiB)})}});
}

TEST(InvokeAiPr7674, EncodeCallSitesPassNoEstimateUntilPr8414) {
  const Scenario sdxl = encode_then_decode("sdxl", "fp16");
  for (const char* id : {kBefore, kFixed}) {
    SCOPED_TRACE(id);
    const EvalResult r = evaluate(id, sdxl);
    ASSERT_TRUE(r.run.completed) << r.run.failure;
    const StageRecord& e = stage(r, "encode");
    EXPECT_EQ(e.decision.estimate, 3 * GiB);
    EXPECT_EQ(e.decision.estimate_source.rfind("no estimate passed: the encode call sites pass none before PR #8414", 0), 0u)
        << e.decision.estimate_source;
  }
  EXPECT_EQ(estimate(kBefore, sdxl, "decode"), 3 * GiB);
  EXPECT_EQ(estimate(kFixed, sdxl, "decode"), 4400 * MiB);
  // The snapshot passes 1024 * 1024 * 2 * 1100 = 2.15 GiB for the same encode (the cache then reserves its floor).
  EXPECT_EQ(stage(evaluate("invokeai@8e71a8a5", sdxl), "encode").decision.estimate_source, "invokeai/sd15-sdxl@8e71a8a5");
}

TEST(InvokeAiPr7674, FluxAndSd3DecodesUseTheirOwnConstants) {
  // FLUX.1 bf16: 1024 * 1024 * 2 * 1090 * 1.2 = 2.55 GiB -> the 3 GiB floor; fixed 2200 -> 4.30 GiB.
  const Scenario flux = encode_then_decode("flux1", "bf16");
  EXPECT_EQ(estimate(kBefore, flux, "decode"), 3 * GiB);
  EXPECT_EQ(estimate(kFixed, flux, "decode"), 4'613'734'400u);
  // SD3 fp16: 1024 * 1024 * 2 * 1230 * 1.2 = 2.88 GiB -> the floor too.
  const Scenario sd3 = encode_then_decode("sd3", "fp16");
  EXPECT_EQ(estimate(kBefore, sd3, "decode"), 3 * GiB);
  // Families that did not exist in early 2025 pass nothing.
  const Scenario z_image = encode_then_decode("z_image", "bf16");
  EXPECT_EQ(stage(evaluate(kFixed, z_image), "decode").decision.estimate_source,
            "no estimate passed; cache default device_working_mem_gb = 3.00 GiB");
}

// A 6 GiB model on an 8 GiB card with the 3 GiB default reserve: 5 GiB available.
Scenario six_gib_model(const nlohmann::json& settings) {
  std::vector<T> tensors;
  for (int i = 0; i < 6; ++i) tensors.emplace_back("w" + std::to_string(i), GiB);
  nlohmann::json doc = {{"device", test::device(8 * GiB)},
                        {"models", {{{"id", "unet"}, {"manifest", "unet.json"}}}},
                        {"stages", {{{"name", "denoise"}, {"kind", "denoise"}, {"models", {"unet"}}}}}};
  if (!settings.is_null()) doc["policy_settings"] = {{"invokeai", settings}};
  return test::build(doc, {{"unet.json", test::manifest("unet", "unet", tensors)}});
}

TEST(InvokeAiPr7674, PartialLoadingIsOffByDefaultThen) {
  // config_default.py at 7567ee2adf / b9f9d1c152: enable_partial_loading = False, so the model is a
  // CachedModelOnlyFullLoad and loads whole; the snapshot's default (True) loads 5 of the 6 GiB.
  for (const char* id : {kBefore, kFixed}) {
    SCOPED_TRACE(id);
    const Scenario whole = six_gib_model(nullptr);
    const EvalResult r = evaluate(id, whole);
    ASSERT_TRUE(r.run.completed) << r.run.failure;
    EXPECT_EQ(r.run.stages[0].decision.weights_loaded, 6 * GiB);
    // Issue #7587's reporter set enable_partial_loading: true; the scenario setting still wins.
    const Scenario partial = six_gib_model({{"enable_partial_loading", true}});
    EXPECT_EQ(evaluate(id, partial).run.stages[0].decision.weights_loaded, 5 * GiB);
  }
  const Scenario whole = six_gib_model(nullptr);
  EXPECT_EQ(evaluate("invokeai@8e71a8a5", whole).run.stages[0].decision.weights_loaded, 5 * GiB);
}

}  // namespace
}  // namespace offsim::policies
