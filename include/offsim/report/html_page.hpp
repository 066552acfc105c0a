// One self-contained HTML page: markup, Vega-Lite charts and JSON data, with vega/vega-lite/vega-embed
// inlined so that it opens offline from a file. The page checks itself as it renders: every chart must
// embed without error and draw at least one data mark, and no script may raise an error; it records the
// outcome on <body> (data-offsim-report="ok" | "error", data-offsim-charts, data-offsim-problems) and in
// a visible status line, which is what the headless-browser test reads.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/report/vega_assets.hpp"

namespace offsim::report {

/// Text for HTML element content and attribute values.
std::string html_escape(std::string_view text);
/// JSON that is safe inside <script type="application/json">: every '<' written as \u003c.
std::string script_json(const nlohmann::json& value);

class HtmlPage {
 public:
  explicit HtmlPage(std::string title);

  /// Markup placed in order; the caller escapes text with html_escape.
  void add_html(std::string markup);
  /// Rows of a JSON document embedded with add_data, handed to a chart as a named Vega-Lite dataset when the
  /// page draws: `pointer` (RFC 6901) names an array of arrays, each row becoming an object with `columns`
  /// as keys plus "i", the row's index. A chart draws what the page already carries without a second copy.
  struct DatasetRef {
    std::string data_id;   // an add_data id
    std::string pointer;   // e.g. "/results/17/timeline"
    std::vector<std::string> columns;
  };
  /// A Vega-Lite chart placed here; returns the element id. Its spec carries its data inline, except the
  /// datasets in `datasets` (name -> rows of embedded data), which its layers read as {"name": ...}.
  std::string add_chart(nlohmann::json spec, std::string_view name, std::vector<std::pair<std::string, DatasetRef>> datasets = {});
  /// A JSON document embedded as <script type="application/json" id="...">, for readers of the file.
  void add_data(std::string id, nlohmann::json value);

  std::size_t chart_count() const { return charts_.size(); }
  std::string render(const VegaAssets& assets) const;
  /// Writes render() atomically.
  void write(const std::filesystem::path& path, const VegaAssets& assets) const;

 private:
  struct Chart {
    std::string id;
    std::string name;
    nlohmann::json spec;
    nlohmann::json datasets_from;  // null, or {name: {"data", "pointer", "columns"}}
  };
  std::string title_;
  std::string body_;
  std::vector<Chart> charts_;
  std::vector<std::pair<std::string, nlohmann::json>> data_;
};

}  // namespace offsim::report
