// Layout decisions the charts make before any browser sees them (the browser test measures the drawn page):
// one colour per policy however many there are, verdict facets that wrap to the page's width with their
// names on lines that fit, axis ticks spaced for their labels, long titles wrapped instead of cut.
#include <gtest/gtest.h>

#include <set>

#include "offsim/report/timeline_chart.hpp"
#include "offsim/report/verdict_matrix_chart.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

json result(const std::string& policy, const std::string& scenario) {
  return {{"policy", {{"id", policy}}},
          {"scenario", {{"name", scenario}, {"device_total_bytes", 1 << 30}, {"calls", 1}}},
          {"timeline_stride", 1},
          {"timeline", {{1 << 20, 1 << 20}, {2 << 20, 1 << 20}}},
          {"completed", true},
          {"failure", ""},
          {"properties", json::object()},
          {"stages", json::array()},
          {"peak", nullptr}};
}

std::vector<std::string> policy_ids(std::size_t n) {
  std::vector<std::string> ids;
  const char* families[] = {"invokeai@", "comfyui@", "lightx2v@", "diffusers-model-offload@", "lookahead@", "mine@", "yours@"};
  for (std::size_t i = 0; i < n; ++i) ids.push_back(std::string(families[i % 7]) + std::to_string(1000 + i));
  return ids;
}

TEST(ChartLayout, EveryPolicyOfTheOverviewHasItsOwnColour) {
  for (std::size_t n : {1u, 6u, 15u, 40u}) {
    std::vector<json> results;
    for (const std::string& id : policy_ids(n)) results.push_back(result(id, "s"));
    std::vector<const json*> pointers;
    for (const json& r : results) pointers.push_back(&r);
    const json spec = scenario_overview_chart(pointers);
    const json& colour = spec["layer"][0]["encoding"]["color"];
    ASSERT_TRUE(colour["scale"].contains("range")) << "a categorical scheme repeats after its last colour";
    const std::vector<std::string> range = colour["scale"]["range"];
    EXPECT_EQ(range.size(), n);
    EXPECT_EQ(std::set<std::string>(range.begin(), range.end()).size(), n) << n << " policies";
    EXPECT_EQ(spec["config"]["legend"]["labelLimit"], 0);  // names in full
  }
}

TEST(ChartLayout, VerdictFacetsWrapToThePageAndNamesFitTheirFacet) {
  std::vector<json> results;
  const std::vector<std::string> scenarios = {"qwen-edit-2511-q8-decode-cuda-same-capacity", "a", "b", "c", "d", "e", "f", "g"};
  for (const std::string& s : scenarios) {
    for (const std::string& p : policy_ids(15)) results.push_back(result(p, s));
  }
  const json spec = verdict_matrix_chart(results);
  const int columns = spec["columns"];
  EXPECT_GE(columns, 1);
  EXPECT_LT(columns, 8) << "eight 180 px facets and the policy names do not fit 1232 px";
  const std::string expr = spec["facet"]["header"]["labelExpr"];
  const json lines = json::parse(expr.substr(0, expr.find("[datum.value]")))[scenarios[0]];
  ASSERT_GT(lines.size(), 1u);
  for (const json& line : lines) EXPECT_LE(line.get<std::string>().size(), 26u) << line;
  EXPECT_EQ(spec["spec"]["layer"][0]["encoding"]["y"]["axis"]["labelLimit"], 0);  // policy names in full
}

TEST(ChartLayout, TimelineTicksAndLongSubtitles) {
  json r = result("invokeai@fda7c42b", "s");
  r["completed"] = false;
  r["failure"] = "unhandled OOM in stage \"decode\" (call 1): CUDA out of memory. Tried to allocate 5.01 GiB. GPU 0 has a "
                 "total capacity of 44.98 GiB of which 3.07 GiB is free. Of the allocated memory 41.29 GiB is allocated by "
                 "PyTorch, and 634.67 MiB is reserved by PyTorch but unallocated.";
  const json spec = timeline_chart(r);
  ASSERT_TRUE(spec["title"]["subtitle"].is_array());
  EXPECT_GT(spec["title"]["subtitle"].size(), 1u);
  std::string joined;
  for (const json& line : spec["title"]["subtitle"]) joined += line.get<std::string>() + " ";
  EXPECT_NE(joined.find("unallocated."), std::string::npos);  // the whole message, not cut
  const json& axis = spec["layer"][0]["encoding"]["x"]["axis"];
  EXPECT_LE(axis["tickCount"].get<int>(), 12);  // about one tick per 90 px of 1040
  EXPECT_GE(axis["labelSeparation"].get<int>(), 8);
}

}  // namespace
}  // namespace offsim::report
