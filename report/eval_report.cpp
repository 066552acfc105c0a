#include "offsim/report/eval_report.hpp"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <string>

#include "chart_util.hpp"
#include "offsim/report/estimator_chart.hpp"
#include "offsim/report/estimator_panels.hpp"
#include "offsim/report/segment_map_chart.hpp"
#include "offsim/report/timeline_chart.hpp"
#include "offsim/report/verdict_matrix_chart.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;

constexpr const char* kPropertyLegend[][2] = {
    {"P1", "stop = satisfied implies F_P >= E + W_load: the policy's own free-memory check holds"},
    {"P2", "E >= T_cold over the estimator's stated domain: the estimate bounds the true peak"},
    {"P3", "no unhandled OOM; a failure is diagnosed (estimator, accounting, fragmentation, outside memory)"},
    {"P4", "offloaded means 0 device bytes, and k calls fit where one fits"},
    {"P5", "E <= 1.5 T_cold: an over-estimate evicts needlessly (reported, not failed)"},
};

bool applicable(const json& r) { return r.value("failure", std::string()).rfind("not applicable", 0) != 0; }

// A byte count as table text: human-readable, exact on hover.
std::string bytes_cell(const json& value) {
  if (value.is_null()) return "<td class=\"num na\">–</td>";
  const std::uint64_t b = bytes_or(value);
  return "<td class=\"num\" title=\"" + std::to_string(b) + " bytes\">" + html_escape(format_bytes(b)) + "</td>";
}

std::string verdict_cell(const std::string& verdict, const std::string& href) {
  const std::string cls = verdict == "n/a" ? "na" : verdict;
  return "<td class=\"" + html_escape(cls) + "\"><a href=\"" + href + "\">" + html_escape(verdict) + "</a></td>";
}

std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return out;
}

// The eval JSON without the segment lists (they are drawn in the segment-map charts), for embedding.
json without_segments(json eval) {
  for (json& r : eval["results"]) {
    if (r.contains("peak") && r["peak"].is_object()) {
      r["peak"]["segment_count"] = r["peak"]["segments"].size();
      r["peak"].erase("segments");
    }
    for (json& s : r["stages"]) {
      if (s["oom"].is_object() && s["oom"].contains("segments")) {
        s["oom"]["segment_count"] = s["oom"]["segments"].size();
        s["oom"].erase("segments");
      }
    }
  }
  return eval;
}

std::string stage_table(const json& r) {
  std::string out =
      "<table><tr><th>call</th><th>stage</th><th>steps</th><th>E (estimate)</th><th>E from</th><th>F<sub>P</sub></th>"
      "<th>W<sub>load</sub></th><th>stop</th><th>evicted</th><th>T<sub>warm</sub> (max)</th><th>T<sub>cold</sub></th>"
      "<th>T from (provenance)</th><th>OOM</th></tr>\n";
  const json& stages = r["stages"];
  for (const StageBand& band : stage_bands(r)) {
    const json& s = stages[band.first_record];
    std::uint64_t evicted = 0, t_warm = 0;
    bool has_warm = false;
    std::string oom, handled;
    for (std::size_t k = band.first_record; k < band.first_record + band.records; ++k) {
      for (const json& e : stages[k]["evictions"]) evicted += bytes_or(e["bytes"]);
      if (!stages[k]["t_warm_bytes"].is_null()) {
        has_warm = true;
        t_warm = std::max(t_warm, bytes_or(stages[k]["t_warm_bytes"]));
      }
      if (stages[k]["oom"].is_object()) oom = stages[k]["oom"].value("message", "");
      if (stages[k].contains("fallback") && stages[k]["fallback"].is_object() && handled.empty()) {
        // A handled OOM is a slower run, not a failure: say what ran instead, out of the failure colour.
        handled = "handled: " + stages[k]["fallback"].value("after", "") + " Retried: " + stages[k]["fallback"].value("label", "");
      }
    }
    std::string provenance = s["working_memory"].is_null() ? "–" : s["working_memory"].get<std::string>();
    if (s["provenance"].is_string()) provenance = "<b>" + html_escape(s["provenance"].get<std::string>()) + "</b>: " + html_escape(provenance);
    else provenance = html_escape(provenance);
    out += "<tr><td class=\"num\">" + std::to_string(s.value("call", 0) + 1) + "</td><td>" + html_escape(s.value("stage", "")) +
           "</td><td class=\"num\">" + std::to_string(band.records) + "</td>" + bytes_cell(s["estimate_bytes"]) + "<td>" +
           html_escape(s.value("estimate_source", "")) + "</td>" + bytes_cell(s["free_memory_bytes"]) + bytes_cell(s["weights_loaded_bytes"]) +
           "<td>" + html_escape(s.value("stop_reason", "")) + "</td>" + (evicted ? bytes_cell(json(evicted)) : "<td class=\"num na\">–</td>") +
           (has_warm ? bytes_cell(json(t_warm)) : "<td class=\"num na\">–</td>") + bytes_cell(s["t_cold_bytes"]) + "<td>" + provenance +
           "</td>" + (oom.empty() ? "<td>" + html_escape(handled) : "<td class=\"fail-text\">" + html_escape(oom)) + "</td></tr>\n";
  }
  return out + "</table>\n";
}

}  // namespace

json eval_report_data(const std::vector<policies::EvalResult>& results, const std::filesystem::path& root,
                      const std::vector<std::string>& suite) {
  return {{"format", "offsim-eval-report/1"},
          {"suite", suite},
          {"eval", policies::to_json(results)},
          {"estimators", estimator_panels(results, root)}};
}

HtmlPage eval_report_page(const json& data) {
  const json& results = data["eval"]["results"];
  HtmlPage page("offsim eval report");

  // Scenarios and policies in the order they were run.
  std::vector<std::string> scenarios, policies;
  std::map<std::string, std::vector<std::size_t>> by_scenario;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string s = results[i]["scenario"].value("name", "");
    const std::string p = results[i]["policy"].value("id", "");
    if (!by_scenario.count(s)) scenarios.push_back(s);
    by_scenario[s].push_back(i);
    if (std::find(policies.begin(), policies.end(), p) == policies.end()) policies.push_back(p);
  }
  std::size_t failed = 0;
  for (const json& r : results) {
    for (const auto& [id, p] : r["properties"].items()) {
      if (p.value("verdict", "") == "FAIL") {
        ++failed;
        break;
      }
    }
  }

  std::string head = "<h1>offsim eval report</h1>\n<p class=\"meta\">" + std::to_string(policies.size()) + " policies x " +
                     std::to_string(scenarios.size()) + " scenarios on the simulated PyTorch caching allocator; " +
                     std::to_string(failed) + " run(s) with a failed property. Suite: ";
  for (const json& s : data.value("suite", json::array())) head += "<code>" + html_escape(s.get<std::string>()) + "</code> ";
  head += "</p>\n<ul class=\"meta\">";
  for (const auto& [id, text] : kPropertyLegend) head += "<li><b>" + std::string(id) + "</b> " + html_escape(text) + "</li>";
  head += "</ul>\n<nav><b>Contents</b><ul><li><a href=\"#verdicts\">Verdicts</a></li>";
  for (const std::string& s : scenarios) head += "<li><a href=\"#scenario-" + slug(s) + "\">" + html_escape(s) + "</a></li>";
  head += "<li><a href=\"#estimators\">Estimators</a></li></ul></nav>\n";
  page.add_html(head);

  // Verdicts: the matrix, then the same as a table with the numbers.
  page.add_html("<h2 id=\"verdicts\">Verdicts</h2>\n");
  page.add_chart(verdict_matrix_chart(results), "verdict matrix");
  std::string table =
      "<details><summary>Table: outcome, evictions, bytes moved, peak reserved, verdicts</summary><table><tr><th>scenario</th><th>policy</th>"
      "<th>result</th><th>evictions</th><th>moved</th><th>peak reserved</th><th>P1</th><th>P2</th><th>P3</th><th>P4</th><th>P5</th></tr>\n";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    const std::string href = "#" + run_anchor(i);
    table += "<tr><td>" + html_escape(r["scenario"].value("name", "")) + "</td><td><a href=\"" + href + "\">" +
             html_escape(r["policy"].value("id", "")) + "</a></td>";
    if (!applicable(r)) {
      table += "<td class=\"na\" colspan=\"9\">" + html_escape(r.value("failure", "")) + "</td></tr>\n";
      continue;
    }
    const bool completed = r.value("completed", false);
    table += "<td class=\"" + std::string(completed ? "pass" : "FAIL") + "\"><a href=\"" + href + "\">" + (completed ? "ok" : "OOM") + "</a></td>";
    table += "<td class=\"num\">" + std::to_string(bytes_or(r["evictions"])) + "</td>" +
             bytes_cell(json(bytes_or(r["bytes_to_device"]) + bytes_or(r["bytes_to_host"]))) + bytes_cell(r["peak_reserved_bytes"]);
    for (const char* p : {"P1", "P2", "P3", "P4", "P5"}) {
      table += verdict_cell(r["properties"].contains(p) ? r["properties"][p].value("verdict", "n/a") : "n/a", href);
    }
    table += "</tr>\n";
  }
  page.add_html(table + "</table></details>\n");

  // Per scenario: the overview, then each policy's run.
  std::map<std::size_t, std::size_t> map_seen;  // hash of a segment map -> result index that drew it
  for (const std::string& scenario : scenarios) {
    const std::vector<std::size_t>& indices = by_scenario[scenario];
    const json& sc = results[indices.front()]["scenario"];
    std::string intro = "<h2 id=\"scenario-" + slug(scenario) + "\">Scenario " + html_escape(scenario) + "</h2>\n<p>" +
                        html_escape(sc.value("description", "")) + "</p>\n<p class=\"meta\">device capacity " +
                        html_escape(format_bytes(bytes_or(sc["device_total_bytes"]))) + " (" +
                        std::to_string(bytes_or(sc["device_total_bytes"])) + " bytes), " + html_escape(sc.value("platform", "")) +
                        ", PyTorch allocator profile " + html_escape(sc.value("torch", "")) + ", PYTORCH_CUDA_ALLOC_CONF=\"" +
                        html_escape(sc.value("alloc_conf", "")) + "\", " + std::to_string(sc.value("calls", 1)) + " call(s); from <code>" +
                        html_escape(sc.value("source", "")) + "</code></p>\n";
    if (sc.contains("facts") && !sc["facts"].empty()) {
      intro += "<details><summary>Where the numbers come from</summary><ul>";
      for (const json& f : sc["facts"]) intro += "<li>" + html_escape(f.get<std::string>()) + "</li>";
      intro += "</ul></details>\n";
    }
    page.add_html(intro);
    std::vector<const json*> runs;
    for (std::size_t i : indices) {
      if (applicable(results[i])) runs.push_back(&results[i]);
    }
    if (!runs.empty()) page.add_chart(scenario_overview_chart(runs), scenario + ": reserved memory of every policy");

    for (std::size_t i : indices) {
      const json& r = results[i];
      const std::string policy = r["policy"].value("id", "");
      std::string section = "<h3 id=\"" + run_anchor(i) + "\">" + html_escape(policy) + " on " + html_escape(scenario) + "</h3>\n<p class=\"meta\">" +
                            html_escape(r["policy"].value("label", "")) + " — <code>" + html_escape(r["policy"].value("upstream", "")) + "</code>";
      if (!r["policy"].value("free_memory", std::string()).empty()) section += "; F<sub>P</sub> = " + html_escape(r["policy"].value("free_memory", ""));
      section += "</p>\n";
      if (!applicable(r)) {
        page.add_html(section + "<p class=\"na\">" + html_escape(r.value("failure", "")) + "</p>\n");
        continue;
      }
      if (!r.value("completed", false)) section += "<p class=\"fail-text\">" + html_escape(r.value("failure", "")) + "</p>\n";
      if (!r.value("diagnosis", std::string()).empty()) section += "<p class=\"fail-text\">diagnosis: " + html_escape(r.value("diagnosis", "")) + "</p>\n";
      std::string failures;
      for (const auto& [id, p] : r["properties"].items()) {
        if (p.value("verdict", "") == "FAIL" || p.value("verdict", "") == "over") {
          failures += "<li><b>" + html_escape(id) + " " + html_escape(p.value("verdict", "")) + "</b>: " + html_escape(p.value("detail", "")) + "</li>";
        }
      }
      if (!failures.empty()) section += "<ul>" + failures + "</ul>\n";
      page.add_html(section);
      // The samples come from the embedded eval JSON (script#offsim-eval), which holds every timeline already.
      page.add_chart(timeline_chart(r, Samples::kFromPage), policy + " on " + scenario + ": timeline",
                     {{"samples", {"offsim-eval", "/results/" + std::to_string(i) + "/timeline", {"r", "a"}}}});
      page.add_html("<details><summary>Stages: estimate, free memory, true peaks and their provenance</summary>" + stage_table(r) + "</details>\n");

      auto add_map = [&](const json& segments, const std::string& title) {
        const std::size_t key = std::hash<std::string>{}(segments.dump());
        if (auto seen = map_seen.find(key); seen != map_seen.end()) {
          page.add_html("<p class=\"note\">" + html_escape(title) + ": the same segment map as <a href=\"#" + run_anchor(seen->second) + "\">" +
                        html_escape(results[seen->second]["policy"].value("id", "")) + "</a>.</p>\n");
          return;
        }
        map_seen.emplace(key, i);
        page.add_chart(segment_map_chart(segments, title), policy + " on " + scenario + ": " + title);
      };
      if (r["peak"].is_object() && !r["peak"]["segments"].empty()) {
        add_map(r["peak"]["segments"], "Segment map at the peak (allocator call " + std::to_string(bytes_or(r["peak"]["sample"])) + ", reserved " +
                                           format_bytes(bytes_or(r["peak"]["reserved_bytes"])) + ")");
      }
      for (const json& s : r["stages"]) {
        if (s["oom"].is_object() && s["oom"].contains("segments") && !s["oom"]["segments"].empty()) {
          add_map(s["oom"]["segments"], "Segment map at the OOM in stage " + s.value("stage", "") + " (call " + std::to_string(s.value("call", 0) + 1) +
                                            "): " + s["oom"].value("message", ""));
        }
      }
    }
  }

  // Estimators.
  page.add_html("<h2 id=\"estimators\">Estimators</h2>\n<p class=\"note\">Each panel is one estimator a policy asked about a VAE stage of "
                "this suite. The line is the estimator's model as the stage's image is scaled (same aspect); points are true peaks: "
                "this suite's T<sub>cold</sub> and published measurement grids of the same VAE, op and backend, each with its provenance "
                "in the tooltip. Calibration points and test points should be disjoint: check a point's source before trusting it as a test.</p>\n");
  const json& panels = data["estimators"];
  const json chart = estimator_chart(panels);
  if (chart.is_null()) {
    page.add_html(panels["panels"].empty() ? "<p class=\"na\">No policy asked an estimator about a VAE stage in this suite.</p>\n"
                                           : "<p class=\"na\">No estimator asked in this suite has a true peak to compare with.</p>\n");
  } else {
    page.add_chart(chart, "estimators");
  }
  std::string list = "<ul class=\"meta\">", undrawn;
  for (const json& p : panels["panels"]) {
    if (!panel_has_true_peak(p)) {
      undrawn += "<li><b>" + html_escape(p.value("panel", "")) + "</b>: " + html_escape(p.value("label", "")) + " — <code>" +
                 html_escape(p.value("upstream", "")) + "</code></li>";
      continue;
    }
    list += "<li><b>" + html_escape(p.value("panel", "")) + "</b>: " + html_escape(p.value("label", "")) + " — <code>" +
            html_escape(p.value("upstream", "")) + "</code>" +
            (p.value("passes_estimate", true) ? "" : " (passes no estimate: the line is the policy's default, " +
                                                         html_escape(format_bytes(bytes_or(p["default_bytes"]))) + ")") +
            (p.value("basis", std::string()).empty() ? "" : "; domain: " + html_escape(p.value("basis", ""))) + "</li>";
  }
  if (!chart.is_null()) page.add_html(list + "</ul>\n");
  if (!undrawn.empty()) {
    page.add_html("<p class=\"note\">Not drawn: estimators a policy asked about a stage whose VAE, op and backend have no true peak "
                  "here (no working-memory trace in this suite and no published grid), so there is nothing to hold the model "
                  "against:</p>\n<ul class=\"meta\">" + undrawn + "</ul>\n");
  }

  page.add_html("<h2>Reading this report</h2><p class=\"note\">Time is simulated: one step on the x axis is one allocator call "
                "(alloc, free or empty_cache) of the run. Charts are in GiB; hover for exact bytes. Generated by <code>offsim eval --html</code>; "
                "the data drawn is embedded in this file (<code>script#offsim-eval</code>, <code>script#offsim-estimators</code>).</p>\n");
  page.add_data("offsim-eval", without_segments(data["eval"]));
  page.add_data("offsim-estimators", data["estimators"]);
  return page;
}

void write_eval_report(const json& data, const VegaAssets& assets, const std::filesystem::path& path) {
  eval_report_page(data).write(path, assets);
}

}  // namespace offsim::report
