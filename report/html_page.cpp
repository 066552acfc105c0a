#include "offsim/report/html_page.hpp"

#include "offsim/sim/atomic_output_file.hpp"

namespace offsim::report {

namespace {

// Runs first, before any library: records uncaught errors, rejected promises and console errors and
// warnings (vega logs spec problems as warnings), so that nothing that goes wrong is only in a console.
constexpr std::string_view kErrorCapture = R"JS(
window.offsimProblems = [];
window.addEventListener('error', function (e) {
  window.offsimProblems.push('error: ' + (e.message || (e.target && e.target.src) || 'unknown'));
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.offsimProblems.push('unhandled rejection: ' + (e.reason && e.reason.message || e.reason));
});
(function () {
  var error = console.error, warn = console.warn;
  console.error = function () { window.offsimProblems.push('console.error: ' + Array.from(arguments).join(' ')); error.apply(console, arguments); };
  console.warn = function () { window.offsimProblems.push('console.warn: ' + Array.from(arguments).join(' ')); warn.apply(console, arguments); };
})();
)JS";

// Embeds every chart in order, then checks that each drew data marks (items of the spec's own marks,
// not axes or legends) and publishes the outcome.
constexpr std::string_view kRender = R"JS(
(async function () {
  var charts = JSON.parse(document.getElementById('offsim-charts').textContent);
  var drawn = 0;
  window.offsimViews = [];  // each drawn chart's Vega view, for anyone inspecting the page (the browser test)
  function dataItems(mark) {
    if (!mark || !mark.items) return 0;
    if (mark.marktype === 'group') {
      var n = 0;
      mark.items.forEach(function (group) { (group.items || []).forEach(function (m) { n += dataItems(m); }); });
      return n;
    }
    return mark.role === 'mark' ? mark.items.length : 0;
  }
  // Datasets a chart takes from the JSON the page embeds (HtmlPage::DatasetRef): rows of arrays as objects.
  var embedded = {};
  function rowsOf(ref) {
    if (!(ref.data in embedded)) embedded[ref.data] = JSON.parse(document.getElementById(ref.data).textContent);
    var node = embedded[ref.data];
    ref.pointer.split('/').slice(1).forEach(function (key) {
      node = node[key.replace(/~1/g, '/').replace(/~0/g, '~')];
    });
    return node.map(function (row, i) {
      var o = {i: i};
      ref.columns.forEach(function (column, k) { o[column] = row[k]; });
      return o;
    });
  }
  for (var i = 0; i < charts.length; ++i) {
    var c = charts[i];
    try {
      if (c.datasets_from) {
        c.spec.datasets = c.spec.datasets || {};
        Object.keys(c.datasets_from).forEach(function (name) { c.spec.datasets[name] = rowsOf(c.datasets_from[name]); });
      }
      var result = await vegaEmbed('#' + c.id, c.spec, {renderer: 'canvas', actions: false, loader: {target: '_self'}});
      window.offsimViews.push({id: c.id, name: c.name, view: result.view});
      var items = dataItems(result.view.scenegraph().root);
      if (items === 0) window.offsimProblems.push('chart "' + c.name + '" (' + c.id + ') drew no data marks');
      else ++drawn;
    } catch (e) {
      window.offsimProblems.push('chart "' + c.name + '" (' + c.id + ') failed: ' + (e && e.message || e));
    }
  }
  var problems = window.offsimProblems;
  var body = document.body;
  body.setAttribute('data-offsim-charts', String(drawn) + '/' + String(charts.length));
  body.setAttribute('data-offsim-problems', problems.join(' | ').slice(0, 4000));
  body.setAttribute('data-offsim-report', problems.length === 0 ? 'ok' : 'error');
  var status = document.getElementById('offsim-status');
  status.textContent = problems.length === 0
      ? drawn + ' charts drawn.'
      : problems.length + ' problem(s) while drawing: ' + problems.join('; ');
  status.className = problems.length === 0 ? 'status ok' : 'status error';
})();
)JS";

constexpr std::string_view kStyle = R"CSS(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 48px; color: #1d2330; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.8em 0 0.2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #d8dce4; padding-bottom: 0.2em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
h4 { font-size: 1em; margin: 1em 0 0.3em; }
p.note, .meta { color: #555d6e; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #d8dce4; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f4f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pass { background: #e3f4e6; } td.FAIL { background: #fbe0de; font-weight: 600; }
td.over { background: #fff3d6; } td.na { color: #8a90a0; }
.chart { margin: 0.4em 0 1em; }
.status { padding: 6px 10px; border-radius: 4px; font-size: 0.9em; }
.status.ok { background: #e3f4e6; } .status.error { background: #fbe0de; } .status.pending { background: #f2f4f8; }
details { margin: 0.3em 0 0.8em; } summary { cursor: pointer; color: #33507a; }
code { font-size: 0.92em; }
nav ul { columns: 2; font-size: 0.92em; }
.fail-text { color: #a4221a; }
)CSS";

// Inlined scripts must not close their own element.
std::string inline_script(const std::string& code) {
  std::string out;
  out.reserve(code.size());
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (code[i] == '<' && i + 1 < code.size() && code[i + 1] == '/' && code.compare(i + 2, 6, "script") == 0) {
      out += "<\\/";
      ++i;
      continue;
    }
    out += code[i];
  }
  return out;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string script_json(const nlohmann::json& value) {
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      out += "\\u003c";  // '<' only occurs inside JSON strings, where the escape means the same
    } else {
      out += c;
    }
  }
  return out;
}

HtmlPage::HtmlPage(std::string title) : title_(std::move(title)) {}

void HtmlPage::add_html(std::string markup) { body_ += markup; }

std::string HtmlPage::add_chart(nlohmann::json spec, std::string_view name, std::vector<std::pair<std::string, DatasetRef>> datasets) {
  std::string id = "chart-" + std::to_string(charts_.size());
  if (!spec.contains("$schema")) spec["$schema"] = "https://vega.github.io/schema/vega-lite/v6.json";
  body_ += "<div class=\"chart\" id=\"" + id + "\"></div>\n";
  nlohmann::json from = nullptr;
  for (const auto& [dataset, ref] : datasets) {
    from[dataset] = {{"data", ref.data_id}, {"pointer", ref.pointer}, {"columns", ref.columns}};
  }
  charts_.push_back({id, std::string(name), std::move(spec), std::move(from)});
  return id;
}

void HtmlPage::add_data(std::string id, nlohmann::json value) { data_.emplace_back(std::move(id), std::move(value)); }

std::string HtmlPage::render(const VegaAssets& assets) const {
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<meta name=\"generator\" content=\"offsim\">\n";
  out += "<title>" + html_escape(title_) + "</title>\n";
  out += "<style>" + std::string(kStyle) + "</style>\n";
  out += "<script>" + std::string(kErrorCapture) + "</script>\n";
  for (const JsLibrary& lib : assets.libraries) {
    out += "<!-- " + lib.name + " " + lib.version + " (" + lib.license + "), from the npm registry, pinned by " +
           "report/web/package-lock.json -->\n";
    out += "<script>" + inline_script(lib.code) + "</script>\n";
  }
  out += "</head>\n<body data-offsim-report=\"pending\">\n";
  out += "<p id=\"offsim-status\" class=\"status pending\">Drawing charts&hellip; (needs JavaScript)</p>\n";
  out += body_;
  nlohmann::json charts = nlohmann::json::array();
  for (const Chart& c : charts_) {
    charts.push_back({{"id", c.id}, {"name", c.name}, {"spec", c.spec}});
    if (!c.datasets_from.is_null()) charts.back()["datasets_from"] = c.datasets_from;
  }
  out += "<script type=\"application/json\" id=\"offsim-charts\">" + script_json(charts) + "</script>\n";
  for (const auto& [id, value] : data_) {
    out += "<script type=\"application/json\" id=\"" + html_escape(id) + "\">" + script_json(value) + "</script>\n";
  }
  out += "<script>" + std::string(kRender) + "</script>\n</body>\n</html>\n";
  return out;
}

void HtmlPage::write(const std::filesystem::path& path, const VegaAssets& assets) const {
  sim::AtomicOutputFile file(path);
  file.write(render(assets));
  file.commit();
}

}  // namespace offsim::report
