// The inputs `offsim calibrate` reads: a user's CSV / JSON points (and the refusals that name the line: no
// backend, zero pixels, negative bytes, the same point with two values), a real/gpu/run.sh output folder, an
// `offsim replay --json` result, and the published grids in traces/published.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "offsim/policies/calibration_inputs.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

namespace fs = std::filesystem;

class CalibrationInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("offsim-calibration-inputs-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  // The error message of reading `text` as a points file named `name`.
  std::string refusal(const std::string& name, const std::string& text) {
    const fs::path p = write(name, text);
    try {
      CalibrationInput all;
      merge_calibration_points(all, read_calibration_input(p));
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return "";
  }

  fs::path dir_;
};

constexpr const char* kHeader = "model,op,width,height,dtype,backend,peak_reserved_growth_bytes,source\n";

TEST_F(CalibrationInputs, ReadsACsvFile) {
  const fs::path p = write("points.csv",
                           "# my W7900, fresh process per point\n" + std::string(kHeader) +
                               "qwen_image,decode,1248,832,fp16,rocm,10801919263,w7900\n"
                               "qwen_image,encode,512,512,bf16,cuda,763363328,\"4090, torch 2.7\"\n");
  const CalibrationInput in = read_calibration_input(p);
  ASSERT_EQ(in.points.size(), 2u);
  const CalibrationPoint& a = in.points[0];
  EXPECT_EQ(a.model, VaeFamily::qwen_image);
  EXPECT_EQ(a.op, VaeOp::decode);
  EXPECT_EQ(a.width, 1248);
  EXPECT_EQ(a.height, 832);
  EXPECT_EQ(a.backend, Backend::rocm);
  EXPECT_EQ(a.peak_reserved_growth, 10801919263u);
  EXPECT_EQ(a.source, "w7900");
  EXPECT_EQ(a.origin, p.string() + ":3");
  EXPECT_EQ(a.provenance, "user measurement");
  EXPECT_NEAR(implied_constant(a), 5201.55, 0.01);
  EXPECT_EQ(in.points[1].source, "4090, torch 2.7");
  EXPECT_EQ(in.points[1].dtype, DType::bf16);
}

TEST_F(CalibrationInputs, RefusesAPointWithNoBackendNamingTheLine) {
  const std::string m = refusal("p.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,1394606080,a\n"
                                                                "qwen_image,decode,768,768,fp16,,2971533312,a\n");
  EXPECT_NE(m.find("p.csv:3:"), std::string::npos) << m;
  EXPECT_NE(m.find("no backend"), std::string::npos) << m;
  // "platform" is accepted for the same thing; missing from both is the same refusal.
  const std::string j = refusal("p.json", R"({"format": "offsim-calibration-points/1", "points": [
  {"model": "qwen_image", "op": "decode", "width": 512, "height": 512, "dtype": "fp16", "platform": "rocm",
   "peak_reserved_growth_bytes": 2690646016},
  {"model": "qwen_image", "op": "decode", "width": 768, "height": 768, "dtype": "fp16",
   "peak_reserved_growth_bytes": 5421662208}
]})");
  EXPECT_NE(j.find("p.json:4:"), std::string::npos) << j;
  EXPECT_NE(j.find("no backend"), std::string::npos) << j;
}

TEST_F(CalibrationInputs, RefusesZeroPixels) {
  const std::string m = refusal("p.csv", std::string(kHeader) + "qwen_image,decode,0,512,fp16,cuda,1394606080,a\n");
  EXPECT_NE(m.find("p.csv:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("zero pixels"), std::string::npos) << m;
}

TEST_F(CalibrationInputs, RefusesNegativeOrZeroOrFractionalBytes) {
  std::string m = refusal("p.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,-5,a\n");
  EXPECT_NE(m.find("p.csv:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("negative"), std::string::npos) << m;
  m = refusal("q.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,0,a\n");
  EXPECT_NE(m.find("q.csv:2:"), std::string::npos) << m;
  m = refusal("r.json", R"({"format": "offsim-calibration-points/1", "points": [
  {"model": "qwen_image", "op": "decode", "width": 512, "height": 512, "dtype": "fp16", "backend": "cuda",
   "peak_reserved_growth_bytes": 1.5e9}]})");
  EXPECT_NE(m.find("r.json:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("whole number"), std::string::npos) << m;
}

TEST_F(CalibrationInputs, RefusesTheSamePointWithTwoValuesNamingBothLines) {
  const std::string m = refusal("p.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,1394606080,a\n"
                                                                "qwen_image,decode,768,768,fp16,cuda,2971533312,a\n"
                                                                "qwen_image,decode,512,512,fp16,cuda,1400000000,a\n");
  EXPECT_NE(m.find("p.csv:4:"), std::string::npos) << m;
  EXPECT_NE(m.find("p.csv:2"), std::string::npos) << m;
  EXPECT_NE(m.find("another peak"), std::string::npos) << m;
  // The same size from another source is another run, not a duplicate; an exact repeat is counted once.
  const fs::path ok = write("ok.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,1394606080,a\n"
                                                             "qwen_image,decode,512,512,fp16,cuda,1400000000,b\n"
                                                             "qwen_image,decode,512,512,fp16,cuda,1394606080,a\n");
  CalibrationInput all;
  merge_calibration_points(all, read_calibration_input(ok));
  EXPECT_EQ(all.points.size(), 2u);
  EXPECT_NE(all.notes.back().find("counted once"), std::string::npos);
}

TEST_F(CalibrationInputs, RefusesUnknownColumnsModelsAndMissingPeaks) {
  EXPECT_NE(refusal("a.csv", "model,op,width,height,dtype,backend,peak_bytes\n").find("unknown field \"peak_bytes\""),
            std::string::npos);
  EXPECT_NE(refusal("b.csv", std::string(kHeader) + "qwen,decode,512,512,fp16,cuda,1,a\n").find("b.csv:2: model"),
            std::string::npos);
  EXPECT_NE(refusal("c.csv", "model,op,width,height,dtype,backend\nqwen_image,decode,512,512,fp16,cuda\n").find("no peak"),
            std::string::npos);
  EXPECT_NE(refusal("d.csv", std::string(kHeader) + "qwen_image,decode,512,512,fp16,cuda,1\n").find("d.csv:2:"),
            std::string::npos);
  EXPECT_NE(refusal("e.json", R"({"format": "offsim-calibration-points/1", "points": [{"model": "qwen_image", "typo": 1}]})")
                .find("unknown field \"typo\""),
            std::string::npos);
  EXPECT_NE(refusal("f.json", R"({"points": []})").find("offsim-calibration-points/1"), std::string::npos);
}

TEST_F(CalibrationInputs, TakesAPeakFromAnOffsimReplayResult) {
  write("decode.replay.json", R"({"format": "offsim-replay/1", "provenance": "gpu-measured", "events_total": 812,
    "recorded_peak_reserved_bytes": 7000000000, "peak_reserved_bytes": 7100000000, "start_reserved_bytes": 300000000,
    "completed": true})");
  const fs::path p = write("points.csv", "model,op,width,height,dtype,backend,replay_json\n"
                                         "qwen_image,decode,1024,1024,bf16,cuda,decode.replay.json\n");
  const CalibrationInput in = read_calibration_input(p);
  ASSERT_EQ(in.points.size(), 1u);
  EXPECT_EQ(in.points[0].peak_reserved_growth, 6700000000u);  // the recorded curve, less the start state
  EXPECT_NE(in.points[0].provenance.find("gpu-measured"), std::string::npos);
  // A replay of a request-only trace (nothing recorded to compare) gives the simulated peak.
  write("cpu.replay.json", R"({"format": "offsim-replay/1", "provenance": "cpu-recorded", "events_total": 0,
    "recorded_peak_reserved_bytes": 0, "peak_reserved_bytes": 4000000000, "start_reserved_bytes": 0, "completed": true})");
  std::string provenance;
  EXPECT_EQ(replay_peak_reserved_growth(dir_ / "cpu.replay.json", provenance), 4000000000u);
  EXPECT_NE(provenance.find("simulated"), std::string::npos);
  // Given alone, a replay result is refused: it does not say what it measured.
  EXPECT_NE(refusal("alone.json", R"({"format": "offsim-replay/1"})").find("replay_json"), std::string::npos);
  write("oom.replay.json", R"({"format": "offsim-replay/1", "start_reserved_bytes": 0, "completed": false})");
  EXPECT_NE(refusal("o.csv", "model,op,width,height,dtype,backend,replay_json\nqwen_image,decode,512,512,bf16,cuda,oom.replay.json\n")
                .find("o.csv:2: replay_json"),
            std::string::npos);
}

TEST_F(CalibrationInputs, ReadsAGpuRunOfRunSh) {
  const fs::path run = dir_ / "run";
  fs::create_directories(run);
  std::ofstream(run / "metadata.json") << R"({"started": "2026-12-08T10:00:00Z", "dry_run": false,
    "torch": {"torch": "2.11.0", "torch_cuda": null, "torch_hip": "7.1", "device_properties": {"name": "AMD Radeon PRO W7900"}}})";
  std::ofstream(run / "vae_peaks.jsonl")
      << R"({"id": "qwen-decode-1248x832-bf16-efficient-default", "spec": {"model": "qwen", "stage": "decode", "width": 1248, "height": 832, "dtype": "bf16", "attn": "efficient", "cudnn": "default", "memfmt": "contiguous"}, "status": "ok", "cold": {"peak_reserved_growth": 10800000000}})"
      << "\n"
      << R"({"id": "qwen-decode-2048x2048-fp32-efficient-default", "spec": {"model": "qwen", "stage": "decode", "width": 2048, "height": 2048, "dtype": "fp32", "attn": "efficient", "cudnn": "default"}, "status": "oom", "cold": {}})"
      << "\n"
      << R"({"id": "sd-encode-512x512-fp16-math-benchmark", "spec": {"model": "sd", "stage": "encode", "width": 512, "height": 512, "dtype": "fp16", "attn": "math", "cudnn": "benchmark"}, "status": "ok", "cold": {"peak_reserved_growth": 400000000}})"
      << "\n";
  const CalibrationInput in = read_calibration_input(run);
  ASSERT_EQ(in.points.size(), 3u);  // the OOM left out; "sd" stands for SD1.5 and SDXL
  EXPECT_EQ(in.points[0].backend, Backend::rocm);
  EXPECT_EQ(in.points[0].variant, "");
  EXPECT_EQ(in.points[0].provenance, "real GPU measurement");
  EXPECT_EQ(in.points[0].source, "AMD Radeon PRO W7900 2026-12-08");
  EXPECT_EQ(in.points[0].origin, (run / "vae_peaks.jsonl").string() + ":1");
  EXPECT_EQ(in.points[1].model, VaeFamily::sd15);
  EXPECT_EQ(in.points[2].model, VaeFamily::sdxl);
  EXPECT_EQ(in.points[1].variant, "attention=math, cudnn=benchmark");
  EXPECT_NE(in.notes.back().find("1 records left out"), std::string::npos);

  std::ofstream(run / "metadata.json") << R"({"dry_run": true, "torch": {"torch_hip": null}})";
  EXPECT_THROW(read_calibration_input(run), ParseError);
  std::ofstream(run / "metadata.json") << R"({"dry_run": false, "torch": {"torch_cuda": "13.0", "torch_hip": null}})";
  EXPECT_EQ(read_calibration_input(run).points[0].backend, Backend::cuda);
  std::ofstream(run / "vae_peaks.jsonl") << R"({"spec": {"model": "qwen", "stage": "decode", "width": 512, "height": 512, "dtype": "fp16"}, "status": "ok", "cold": {}})"
                                         << "\n";
  try {
    (void)read_calibration_input(run);
    ADD_FAILURE() << "a record without its peak was accepted";
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("vae_peaks.jsonl:1:"), std::string::npos) << e.what();
  }
}

TEST(PublishedCalibrationPoints, AreTheGridsAsPublished) {
  const fs::path folder = fs::path(OFFSIM_SOURCE_DIR) / "traces/published";
  const CalibrationInput in = read_calibration_input(folder);
  std::size_t qwen = 0;
  for (const CalibrationPoint& p : in.points) {
    if (p.model != VaeFamily::qwen_image) continue;
    ++qwen;
    // Derived points are exact: their implied constant is the published integer.
    if (p.source == "rocm-w7900-grid" && p.op == VaeOp::decode && p.width == 2048) {
      EXPECT_DOUBLE_EQ(implied_constant(p), 4813.0);
      EXPECT_EQ(p.used_to_set.size(), 3u);
    }
    if (p.source == "cuda-rtx4090-grid") {
      EXPECT_TRUE(p.used_to_set.empty());
    }
  }
  // 1 single point + 11 ROCm grid (one OOM) + 11 CUDA comment grid (one OOM) + 18 RTX 4090 points.
  EXPECT_EQ(qwen, 41u);
}

}  // namespace
}  // namespace offsim::policies
