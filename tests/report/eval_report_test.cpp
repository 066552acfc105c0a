// The eval report's charts from real runs of the default suite's seed bugs: the timeline marks the OOM,
// the peak and the capacity; the matrix links each cell to its run; the estimator panels draw the
// estimator's model and flag the true peaks it misses; the page holds every chart it promises.
#include <gtest/gtest.h>

#include <algorithm>

#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/report/estimator_chart.hpp"
#include "offsim/report/estimator_panels.hpp"
#include "offsim/report/eval_report.hpp"
#include "offsim/report/timeline_chart.hpp"
#include "offsim/report/verdict_matrix_chart.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

const policies::Scenario& rocm() {
  static const policies::Scenario s =
      policies::Scenario::load(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", kRoot);
  return s;
}

const std::vector<policies::EvalResult>& results() {
  static const std::vector<policies::EvalResult> r = [] {
    policies::PropertyOptions o;
    o.check_min_capacity = false;
    return std::vector<policies::EvalResult>{policies::evaluate("invokeai@fda7c42b", rocm(), o),
                                             policies::evaluate("invokeai@a6724695", rocm(), o)};
  }();
  return r;
}

const json& layer_with_mark(const json& spec, const std::string& mark) {
  for (const json& l : spec["layer"]) {
    if (l.contains("mark") && l["mark"]["type"] == mark) return l;
    if (l.contains("layer")) {
      for (const json& inner : l["layer"]) {
        if (inner["mark"]["type"] == mark) return l;
      }
    }
  }
  static const json none;
  return none;
}

TEST(EvalReport, PeakSegmentsComeFromAReproducedRun) {
  const policies::EvalResult& fixed = results()[1];
  ASSERT_TRUE(fixed.peak.has_value());
  EXPECT_EQ(fixed.peak->reserved, fixed.run.peak_reserved);
  std::uint64_t reserved = 0;
  for (const sim::SegmentInfo& s : fixed.peak->segments) reserved += s.total_size;
  EXPECT_EQ(reserved, fixed.peak->reserved);
}

TEST(EvalReport, TimelineMarksTheOomAndTheCapacity) {
  const json r = policies::to_json(results()[0]);
  ASSERT_FALSE(r.value("completed", true));
  const json spec = timeline_chart(r);
  std::size_t ooms = 0;
  for (const json& l : spec["layer"]) {
    if (l.contains("layer") && l["layer"][0]["mark"]["type"] == "rule" && l["layer"][0]["mark"]["color"] == "#d62728") {
      ooms = l["data"]["values"].size();
    }
  }
  EXPECT_EQ(ooms, 1u);
  bool capacity = false;
  for (const json& l : spec["layer"]) {
    if (l.contains("data") && l["data"].contains("values") && !l["data"]["values"].empty() && l["data"]["values"][0].contains("label") &&
        l["data"]["values"][0]["label"].get<std::string>().rfind("device capacity 44.98 GiB", 0) == 0) {
      capacity = l["data"]["values"][0]["bytes"] == r["scenario"]["device_total_bytes"];
    }
  }
  EXPECT_TRUE(capacity);
  // Lines in GiB, the hover layer with exact bytes.
  const json& lines = layer_with_mark(spec, "line");
  ASSERT_FALSE(lines.is_null());
  EXPECT_EQ(lines["encoding"]["y"]["title"], "GiB");
  ASSERT_EQ(lines["data"]["name"], "samples");  // once in the spec, read by the lines and the hover layer
  EXPECT_EQ(spec["datasets"]["samples"].size(), r["timeline"].size());
  EXPECT_EQ(spec["datasets"]["samples"].back()["r"], r["timeline"].back()[0]);
}

TEST(EvalReport, StageBandsCarryTheProvenanceOfT) {
  const json r = policies::to_json(results()[1]);
  const json spec = timeline_chart(r);
  const json& bands = spec["layer"][0]["data"]["values"];
  ASSERT_EQ(bands.size(), 1u);
  EXPECT_EQ(bands[0]["stage"], "decode");
  EXPECT_NE(bands[0]["provenance"].get<std::string>().rfind("published: ", 0), std::string::npos);
  EXPECT_NE(bands[0]["true_peak"].get<std::string>().find("T_cold"), std::string::npos);
}

TEST(EvalReport, StageBandsMergeTheStepsOfOneStageInOneCall) {
  const json r = {{"timeline_stride", 2},
                  {"stages", json::array({
                                 {{"stage", "encode"}, {"call", 0}, {"timeline", {0, 3}}, {"oom", nullptr}},
                                 {{"stage", "denoise"}, {"call", 0}, {"timeline", {3, 5}}, {"oom", nullptr}},
                                 {{"stage", "denoise"}, {"call", 0}, {"timeline", {5, 8}}, {"oom", nullptr}},
                                 {{"stage", "denoise"}, {"call", 1}, {"timeline", {8, 9}}, {"oom", nullptr}},
                             })}};
  const std::vector<StageBand> bands = stage_bands(r);
  ASSERT_EQ(bands.size(), 3u);
  EXPECT_EQ(bands[1].records, 2u);
  EXPECT_EQ(bands[1].begin_sample, 6u);
  EXPECT_EQ(bands[1].end_sample, 16u);
  EXPECT_EQ(bands[2].first_record, 3u);
}

TEST(EvalReport, MatrixCellsLinkToTheirRun) {
  const json all = policies::to_json(results());
  const json spec = verdict_matrix_chart(all["results"]);
  const json& values = spec["data"]["values"];
  EXPECT_EQ(values.size(), 2u * 6u);
  for (const json& v : values) {
    EXPECT_EQ(v["href"], v["policy"] == "invokeai@fda7c42b" ? "#run-0" : "#run-1");
  }
  const auto p2_pre_fix = std::find_if(values.begin(), values.end(), [](const json& v) {
    return v["policy"] == "invokeai@fda7c42b" && v["column"] == "P2";
  });
  ASSERT_NE(p2_pre_fix, values.end());
  EXPECT_EQ((*p2_pre_fix)["verdict"], "FAIL");
  EXPECT_EQ(spec["spec"]["layer"][0]["encoding"]["href"]["field"], "href");
}

TEST(EvalReport, EstimatorPanelsFlagWhatTheModelMisses) {
  const json panels = estimator_panels(results(), kRoot);
  ASSERT_EQ(panels["panels"].size(), 2u);
  for (const json& panel : panels["panels"]) {
    std::size_t model = 0, published = 0, violations = 0;
    for (const json& p : panel["points"]) {
      if (p["kind"] == "model") ++model;
      if (p["kind"] == "true peak" && p["origin"].get<std::string>().rfind("published grid", 0) == 0) ++published;
      if (p["kind"] == "true peak" && p["verdict"] == "E < T (P2 violated)") ++violations;
    }
    EXPECT_GT(model, 20u);
    EXPECT_GT(published, 5u) << panel["panel"];  // the ROCm grids of PR #9305
    if (panel["estimator"] == "invokeai/qwen-image@fda7c42b") {
      // Passes no estimate: the cache default (3 GiB) is flat and every ROCm decode above it is missed.
      EXPECT_FALSE(panel["passes_estimate"].get<bool>());
      EXPECT_GT(violations, 3u);
    } else {
      // 5500 * H * W * 2 bounds every point of the ROCm grids it was fitted to.
      EXPECT_EQ(violations, 0u) << panel["panel"];
    }
  }
  const json chart = estimator_chart(panels);
  EXPECT_EQ(chart["spec"]["layer"][0]["encoding"]["x"]["scale"]["type"], "log");
  EXPECT_EQ(chart["spec"]["layer"][0]["encoding"]["y"]["scale"]["type"], "log");
}

TEST(EvalReport, PageHoldsEveryChart) {
  const json data = eval_report_data(results(), kRoot, {"scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json"});
  const HtmlPage page = eval_report_page(data);
  // matrix + overview + 2 timelines + peak maps (the two runs peak in different states) + OOM map + estimators.
  EXPECT_GE(page.chart_count(), 7u);
  const std::string html = page.render(VegaAssets{});
  EXPECT_NE(html.find("id=\"run-0\""), std::string::npos);
  EXPECT_NE(html.find("id=\"run-1\""), std::string::npos);
  EXPECT_NE(html.find("Segment map at the OOM"), std::string::npos);
  EXPECT_NE(html.find("<b>published</b>: published:"), std::string::npos);  // T's provenance in the stage table
  // Timelines draw the samples the embedded eval JSON holds, not a second copy.
  EXPECT_NE(html.find("\"datasets_from\":{\"samples\":{\"columns\":[\"r\",\"a\"],\"data\":\"offsim-eval\",\"pointer\":\"/results/0/timeline\"}}"),
            std::string::npos);
  // The embedded eval JSON leaves segment lists to the charts.
  const auto at = html.find("id=\"offsim-eval\">");
  ASSERT_NE(at, std::string::npos);
  const auto end = html.find("</script>", at);
  const json embedded = json::parse(html.substr(at + 17, end - at - 17));
  EXPECT_FALSE(embedded["results"][0]["peak"].contains("segments"));
  EXPECT_GT(embedded["results"][0]["peak"]["segment_count"].get<int>(), 100);
}

// ComfyUI's VAE.encode survives an untiled OOM by encoding in tiles: the stage table says so, as a handled
// OOM outside the failure colour, naming the OOM and what ran instead.
TEST(EvalReport, StageTableShowsAHandledOomAndItsRetry) {
  const std::filesystem::path file = "tests/corpus/counterexamples/comfyui-encode-oom-tiled-retry-rocm-33gib.json";
  policies::PropertyOptions o;
  o.check_min_capacity = false;
  const policies::Scenario scenario = policies::Scenario::load(kRoot / file, kRoot);  // results refer to it
  const std::vector<policies::EvalResult> comfy{policies::evaluate("comfyui@a125cd84", scenario, o)};
  const std::string html = eval_report_page(eval_report_data(comfy, kRoot, {file.string()})).render(VegaAssets{});
  const auto at = html.find("<td>handled: CUDA out of memory. Tried to allocate 2.86 GiB.");
  ASSERT_NE(at, std::string::npos);
  EXPECT_NE(html.find("Retried: comfy/sd.py@a125cd84 VAE.encode -&gt; encode_tiled_3d (256 px tiles)", at), std::string::npos);
  EXPECT_EQ(html.find("<td class=\"fail-text\">"), std::string::npos);
}

}  // namespace
}  // namespace offsim::report
