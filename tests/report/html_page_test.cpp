// HtmlPage: what makes a report self-contained and safe to open (inlined libraries, data that cannot end
// its <script> element early) and the self-check hooks the browser test reads.
#include <gtest/gtest.h>

#include "offsim/report/html_page.hpp"

namespace offsim::report {
namespace {

VegaAssets fake_assets() {
  VegaAssets a;
  a.libraries = {{"vega", "1.0.0", "BSD-3-Clause", "window.vega = {}; var s = '</script>';"},
                 {"vega-lite", "2.0.0", "BSD-3-Clause", "window.vegaLite = {};"},
                 {"vega-embed", "3.0.0", "BSD-3-Clause", "window.vegaEmbed = function () {};"}};
  return a;
}

TEST(HtmlPage, EscapesTextForElementsAndAttributes) {
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(HtmlPage, ScriptJsonCannotCloseItsElement) {
  const std::string text = script_json({{"message", "</script><script>alert(1)</script>"}});
  EXPECT_EQ(text.find('<'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(text)["message"], "</script><script>alert(1)</script>");
}

TEST(HtmlPage, InlinesLibrariesInOrderWithoutEndingTheirScripts) {
  HtmlPage page("t");
  page.add_chart({{"mark", "point"}, {"data", {{"values", {{{"x", 1}}}}}}}, "one");
  const std::string html = page.render(fake_assets());
  const auto vega = html.find("window.vega = {}"), lite = html.find("window.vegaLite"), embed = html.find("window.vegaEmbed");
  ASSERT_NE(vega, std::string::npos);
  EXPECT_LT(vega, lite);
  EXPECT_LT(lite, embed);
  EXPECT_NE(html.find("var s = '<\\/script>';"), std::string::npos);
  EXPECT_EQ(html.find("var s = '</script>';"), std::string::npos);
  // No network at view time: nothing is loaded from elsewhere.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
}

TEST(HtmlPage, ChartsGetIdsSchemaAndTheSelfCheck) {
  HtmlPage page("t");
  EXPECT_EQ(page.add_chart({{"mark", "point"}}, "a"), "chart-0");
  EXPECT_EQ(page.add_chart({{"mark", "line"}}, "b"), "chart-1");
  EXPECT_EQ(page.chart_count(), 2u);
  const std::string html = page.render(fake_assets());
  EXPECT_NE(html.find("<div class=\"chart\" id=\"chart-1\">"), std::string::npos);
  EXPECT_NE(html.find("vega-lite/v6.json"), std::string::npos);
  EXPECT_NE(html.find("data-offsim-report=\"pending\""), std::string::npos);
  EXPECT_NE(html.find("setAttribute('data-offsim-report'"), std::string::npos);
  EXPECT_NE(html.find("drew no data marks"), std::string::npos);
}

TEST(HtmlPage, ChartsCanReadRowsOfEmbeddedData) {
  HtmlPage page("t");
  page.add_data("offsim-eval", {{"results", {{{"timeline", {{1, 2}, {3, 4}}}}}}});
  page.add_chart({{"mark", "line"}, {"data", {{"name", "samples"}}}}, "a", {{"samples", {"offsim-eval", "/results/0/timeline", {"r", "a"}}}});
  const std::string html = page.render(fake_assets());
  EXPECT_NE(html.find("\"datasets_from\":{\"samples\":{\"columns\":[\"r\",\"a\"],\"data\":\"offsim-eval\",\"pointer\":\"/results/0/timeline\"}}"),
            std::string::npos);
  EXPECT_NE(html.find("function rowsOf(ref)"), std::string::npos);  // what resolves it when the page draws
}

TEST(HtmlPage, EmbedsJsonData) {
  HtmlPage page("t");
  page.add_data("offsim-eval", {{"results", nlohmann::json::array()}});
  EXPECT_NE(page.render(fake_assets()).find("<script type=\"application/json\" id=\"offsim-eval\">{\"results\":[]}</script>"),
            std::string::npos);
}

}  // namespace
}  // namespace offsim::report
