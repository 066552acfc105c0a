// The `offsim calibrate --html` page on the published Qwen-Image grids: one chart per (VAE, op, backend) with
// the measured points, the fitted and upstream lines and the margin band; the held-out verdicts colour the
// points; the tables and the embedded data are there.
#include <gtest/gtest.h>

#include <set>

#include "offsim/policies/calibration_inputs.hpp"
#include "offsim/report/calibration_report.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

const policies::CalibrationReport& qwen_report() {
  static const policies::CalibrationReport report = [] {
    std::vector<policies::CalibrationPoint> points;
    for (auto& p : policies::read_calibration_input(std::filesystem::path(OFFSIM_SOURCE_DIR) / "traces/published").points) {
      if (p.model == policies::VaeFamily::qwen_image) points.push_back(p);
    }
    return policies::calibrate(points, policies::CalibrationOptions{});
  }();
  return report;
}

TEST(CalibrationReport, DrawsPointsFitsUpstreamLinesAndTheBandPerGroup) {
  const auto& report = qwen_report();
  ASSERT_EQ(report.groups.size(), 4u);  // decode / encode x cuda / rocm
  json doc = policies::to_json(report);
  doc["overrides"] = json::array();
  const json data = calibration_report_data(report, doc);
  ASSERT_EQ(data["charts"].size(), 4u);
  for (std::size_t i = 0; i < data["charts"].size(); ++i) {
    const json& values = data["charts"][i]["values"];
    std::set<std::string> kinds, lines;
    std::size_t measured = 0;
    for (const json& v : values) {
      kinds.insert(v["kind"].get<std::string>());
      if (v["kind"] == "curve") lines.insert(v["line"].get<std::string>());
      if (v["kind"] == "measured") ++measured;
    }
    EXPECT_EQ(kinds, (std::set<std::string>{"band", "curve", "measured"})) << i;
    EXPECT_EQ(lines, (std::set<std::string>{"fitted here", "shipped upstream"})) << i;
    EXPECT_EQ(measured, report.groups[i].points.size());
  }
  const HtmlPage page = calibration_report_page(data);
  EXPECT_EQ(page.chart_count(), 4u);
  const std::string html = page.render(VegaAssets{});
  for (const char* text : {"qwen_image decode rocm", "Linear in pixels?", "leave-one-out", "invokeai/qwen-image@a6724695",
                           "id=\"offsim-calibration\"", "held out: E >= T (P2 holds)"}) {
    EXPECT_NE(html.find(text), std::string::npos) << text;
  }
}

TEST(CalibrationReport, PointsFailingAHeldOutFitAreMarked) {
  // ROCm decode: the 1248x832 single point (implied 5202) is above every grid point; left out, it fails.
  const auto& report = qwen_report();
  json doc = policies::to_json(report);
  const json data = calibration_report_data(report, doc);
  bool marked = false;
  for (std::size_t i = 0; i < report.groups.size(); ++i) {
    if (report.groups[i].name() != "qwen_image decode rocm") continue;
    for (const json& v : data["charts"][i]["values"]) {
      if (v["kind"] == "measured" && v["size"] == "1248x832") {
        EXPECT_EQ(v["verdict"], "held out: E < T (P2 fails)");
        marked = true;
      }
    }
  }
  EXPECT_TRUE(marked);
}

}  // namespace
}  // namespace offsim::report
