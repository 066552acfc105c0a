// Estimator overrides (`--estimator-override` of eval and check): new constants for a registered estimator id,
// from a bare override file or from `offsim calibrate --json` output, installed for a scope and restored after.
#include <gtest/gtest.h>

#include <fstream>

#include "offsim/policies/calibration.hpp"
#include "offsim/policies/estimator_override.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

using nlohmann::json;

constexpr const char* kQwen = "invokeai/qwen-image@a6724695";

VaeWorkload qwen(VaeOp op, Backend backend, int side = 1024, std::optional<int> tile = std::nullopt) {
  VaeWorkload w;
  w.family = VaeFamily::qwen_image;
  w.op = op;
  w.pixel_width = w.pixel_height = side;
  w.dtype = DType::fp16;
  w.backend = backend;
  w.tile_size = tile;
  return w;
}

std::uint64_t estimate(const VaeWorkload& w) { return *find_estimator(kQwen).estimate(w); }

json override_doc(json constants) {
  return {{"format", "offsim-estimator-override/1"}, {"estimator", kQwen}, {"constants", std::move(constants)},
          {"provenance", "test"}};
}

TEST(EstimatorOverride, ReplacesTheConstantsItGivesForItsScopeOnly) {
  const std::uint64_t px2 = 1024ull * 1024 * 2;
  const std::uint64_t rocm_before = estimate(qwen(VaeOp::decode, Backend::rocm));
  const std::uint64_t cuda_before = estimate(qwen(VaeOp::decode, Backend::cuda));
  EXPECT_EQ(rocm_before, 5500 * px2);
  const auto overrides = estimator_overrides_from_json(
      override_doc({{"decode", {{"rocm", 6000}}}, {"encode", {{"cuda", {{"constant", 1000}, {"fixed_bytes", 1024}}}}}}), "t");
  {
    const ScopedEstimatorOverrides scope(overrides);
    EXPECT_EQ(estimate(qwen(VaeOp::decode, Backend::rocm)), 6000 * px2);
    EXPECT_EQ(estimate(qwen(VaeOp::encode, Backend::cuda)), 1000 * px2 + 1024);
    // What it says nothing about keeps upstream's arithmetic: CUDA decodes, ROCm encodes, tiled workloads.
    EXPECT_EQ(estimate(qwen(VaeOp::decode, Backend::cuda)), cuda_before);
    EXPECT_EQ(estimate(qwen(VaeOp::encode, Backend::rocm)), 6300 * px2);
    EXPECT_NE(find_estimator(kQwen).label.find("constants overridden"), std::string::npos);
    // The domain upstream states is kept; so is the check that the workload is one the estimator serves.
    VaeWorkload sdxl = qwen(VaeOp::decode, Backend::rocm);
    sdxl.family = VaeFamily::sdxl;
    EXPECT_THROW(find_estimator(kQwen).estimate(sdxl), ConfigError);
  }
  EXPECT_EQ(estimate(qwen(VaeOp::decode, Backend::rocm)), rocm_before);
  EXPECT_EQ(find_estimator(kQwen).label.find("overridden"), std::string::npos);
}

TEST(EstimatorOverride, ComfyuiEstimatorsTakeAFactorOfTheLatentVolume) {
  const auto overrides = estimator_overrides_from_json(
      {{"format", "offsim-estimator-override/1"}, {"estimator", "comfyui/vae-wan21@033046cc"},
       {"constants", {{"decode", {{"cuda", 2724}}}}}},
      "t");
  ASSERT_EQ(overrides.size(), 1u);
  EXPECT_EQ(overrides[0].constants.begin()->second.form, FitForm::comfyui);
  const ScopedEstimatorOverrides scope(overrides);
  // 1248x832 decodes a 156x104 latent: 2724 x 156 x 104 x 64 x 2.
  VaeWorkload w = qwen(VaeOp::decode, Backend::cuda);
  w.pixel_width = 1248;
  w.pixel_height = 832;
  EXPECT_EQ(*find_estimator("comfyui/vae-wan21@033046cc").estimate(w), 2724ull * 156 * 104 * 64 * 2);
}

TEST(EstimatorOverride, RefusesWhatItCannotApply) {
  EXPECT_THROW(estimator_overrides_from_json(json{{"format", "offsim-estimator-override/1"}, {"estimator", "invokeai/nope@00000000"},
                                                  {"constants", {{"decode", {{"cuda", 1}}}}}},
                                             "t"),
               ConfigError);
  EXPECT_THROW(estimator_overrides_from_json(override_doc({{"decode", {{"cuda", 0}}}}), "t"), ConfigError);
  EXPECT_THROW(estimator_overrides_from_json(override_doc({{"decodes", {{"cuda", 1}}}}), "t"), ConfigError);
  EXPECT_THROW(estimator_overrides_from_json(override_doc({{"decode", {{"cdua", 1}}}}), "t"), ConfigError);
  EXPECT_THROW(estimator_overrides_from_json(override_doc({{"decode", {{"cuda", -1}}}}), "t"), ConfigError);
  EXPECT_THROW(estimator_overrides_from_json(json{{"format", "something-else"}}, "t"), ConfigError);
  // The pre-fix call site passes no estimate and the denoise estimate is not a VAE's: no constants to give.
  json none = override_doc({{"decode", {{"cuda", 1}}}});
  none["estimator"] = "invokeai/qwen-image@fda7c42b";
  EXPECT_THROW(estimator_overrides_from_json(none, "t"), ConfigError);
  none["estimator"] = "comfyui/memory-required@a125cd84";
  EXPECT_THROW(estimator_overrides_from_json(none, "t"), ConfigError);
  // A failure half-way through installing restores what was already replaced.
  const std::uint64_t before = estimate(qwen(VaeOp::decode, Backend::rocm));
  std::vector<EstimatorOverride> two = estimator_overrides_from_json(override_doc({{"decode", {{"rocm", 1}}}}), "t");
  EstimatorOverride bad = two[0];
  bad.estimator = "invokeai/nope@00000000";
  two.push_back(bad);
  EXPECT_THROW(ScopedEstimatorOverrides{two}, ConfigError);
  EXPECT_EQ(estimate(qwen(VaeOp::decode, Backend::rocm)), before);
}

// An override file is a user's data: what is wrong is a ConfigError or ParseError naming the file, never
// nlohmann's type_error.302 or out_of_range.406 printed as "internal error".
TEST(EstimatorOverride, RefusesWrongTypesHugeNumbersAndAbsurdConstantsNamingTheFile) {
  const auto message = [](const json& doc) -> std::string {
    try {
      (void)estimator_overrides_from_json(doc, "o.json");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "accepted";
  };
  json doc = override_doc({{"decode", {{"cuda", 1}}}});
  doc["provenance"] = 5;
  EXPECT_NE(message(doc).find("o.json: \"provenance\" must be a string"), std::string::npos) << message(doc);
  doc = override_doc({{"decode", {{"cuda", 1}}}});
  doc["form"] = 5;
  EXPECT_NE(message(doc).find("o.json: \"form\" must be a string"), std::string::npos) << message(doc);
  EXPECT_NE(message(json{{"format", 5}}).find("o.json: expected \"format\""), std::string::npos);
  EXPECT_NE(message(override_doc({{"decode", {{"cuda", {{"form", 1}, {"constant", 1}}}}}})).find("\"form\" must be a string"),
            std::string::npos);
  // fixed_bytes of 2^64 - 1 and constants beyond 64-bit estimates were accepted.
  EXPECT_NE(message(override_doc({{"decode", {{"cuda", {{"constant", 1600}, {"fixed_bytes", 18446744073709551615ull}}}}}}))
                .find("o.json constants.decode.cuda: \"fixed_bytes\" must be below 1 EiB"),
            std::string::npos);
  EXPECT_NE(message(override_doc({{"decode", {{"cuda", 16777217}}}})).find("a constant of 16777217 is above 2^24"),
            std::string::npos);
  EXPECT_EQ(message(override_doc({{"decode", {{"cuda", 16777216}}}})), "accepted");

  const std::string file = ::testing::TempDir() + "/offsim-override-1e999.json";
  {
    std::ofstream out(file);
    out << "{\"format\": \"offsim-estimator-override/1\",\n \"estimator\": \"" << kQwen
        << "\",\n \"constants\": {\"decode\": {\"cuda\": 1e999}}}\n";
  }
  try {
    (void)read_estimator_overrides(file);
    ADD_FAILURE() << "1e999 accepted";
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find(file + ":3:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("number overflow parsing '1e999'"), std::string::npos) << e.what();
  }
}

TEST(EstimatorOverride, ReadsWhatCalibrateProposes) {
  std::vector<CalibrationPoint> points;
  for (const int side : {512, 1024}) {
    for (const Backend b : {Backend::cuda, Backend::rocm}) {
      CalibrationPoint p;
      p.model = VaeFamily::qwen_image;
      p.op = VaeOp::decode;
      p.width = p.height = side;
      p.dtype = DType::fp16;
      p.backend = b;
      p.peak_reserved_growth = static_cast<std::uint64_t>(side) * side * 2 * (b == Backend::rocm ? 5100 : 2700);
      p.source = "synthetic";
      points.push_back(p);
    }
  }
  CalibrationOptions options;
  options.judge = std::vector<std::string>{};
  const CalibrationReport report = calibrate(points, options);
  const auto proposed = overrides_from_calibration(report, {}, FitForm::invokeai);
  // The newest InvokeAI and ComfyUI estimators of the Qwen-Image VAE.
  ASSERT_EQ(proposed.size(), 2u);
  EXPECT_EQ(proposed[0].estimator, "invokeai/qwen-image@8e71a8a5");
  EXPECT_EQ(proposed[1].estimator, "comfyui/vae-wan21@033046cc");
  json doc = to_json(report);
  doc["overrides"] = json::array();
  for (const auto& o : proposed) doc["overrides"].push_back(to_json(o));
  const auto read = estimator_overrides_from_json(doc, "calibrate.json");
  ASSERT_EQ(read.size(), 2u);
  const ScopedEstimatorOverrides scope(read);
  EXPECT_EQ(*find_estimator("invokeai/qwen-image@8e71a8a5").estimate(qwen(VaeOp::decode, Backend::rocm)), 5100ull * 1024 * 1024 * 2);
  EXPECT_EQ(*find_estimator("invokeai/qwen-image@8e71a8a5").estimate(qwen(VaeOp::decode, Backend::cuda)), 2700ull * 1024 * 1024 * 2);
  // A chosen target, and one that estimates none of the calibrated VAEs.
  EXPECT_EQ(overrides_from_calibration(report, {kQwen}, FitForm::piecewise)[0].constants.begin()->second.form, FitForm::piecewise);
  EXPECT_THROW(overrides_from_calibration(report, {"invokeai/flux@8e71a8a5"}, FitForm::invokeai), ConfigError);
}

}  // namespace
}  // namespace offsim::policies
