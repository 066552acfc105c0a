#include "offsim/report/replay_report.hpp"

#include <algorithm>

#include "chart_util.hpp"
#include "offsim/report/segment_map_chart.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;

constexpr int kWidth = 1040;

json event_json(const sim::TraceEvent& e) {
  json j = {{"action", sim::to_string(e.action)}, {"size", e.size}, {"stream", e.stream}, {"time_us", e.time_us}};
  if (e.action == sim::TraceAction::kOom) {
    j["device_free"] = e.addr;
  } else {
    j["addr"] = e.addr;
    j["addr_hex"] = hex_address(e.addr);
  }
  return j;
}

std::string describe_event(const json& e) {
  if (e.is_null()) return "nothing";
  std::string out = e.value("action", "");
  if (e.contains("addr_hex")) out += " " + e.value("addr_hex", "");
  out += " " + bytes_with_exact(bytes_or(e["size"]));
  if (bytes_or(e["stream"]) != 0) out += " on stream " + std::to_string(bytes_or(e["stream"]));
  return out;
}

json to_gib(const std::string& field, const std::string& as = "gib") {
  return {{"calculate", "datum." + field + " / 1073741824"}, {"as", as}};
}

json x_axis(std::uint64_t x_max) {
  return {{"field", "x"}, {"type", "quantitative"}, {"title", "recorded trace event"},
          {"scale", {{"domain", {0, x_max}}, {"nice", false}}}, {"axis", spaced_ticks(kWidth)}};
}

json memory_chart(const json& data) {
  const json& samples = data["timeline"];
  const std::uint64_t capacity = bytes_or(data["replay"]["capacity_bytes"]);
  std::uint64_t y_max = capacity, x_max = 1;
  for (const json& s : samples) {
    y_max = std::max(y_max, bytes_or(s["r"]));
    x_max = std::max(x_max, bytes_or(s["x"]));
  }
  const json x = x_axis(x_max);
  const json y = {{"field", "gib"}, {"type", "quantitative"}, {"title", "GiB"},
                  {"scale", {{"domain", {0, gib(y_max) * 1.06}}, {"nice", false}}}};
  json layers = json::array();
  layers.push_back({{"data", {{"name", "samples"}}},
                    {"transform", json::array({{{"fold", {"r", "a"}}, {"as", {"m", "b"}}},
                                               {{"calculate", "datum.m === 'r' ? 'reserved' : 'allocated'"}, {"as", "memory"}},
                                               to_gib("b")})},
                    {"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.6}}},
                    {"encoding", {{"x", x}, {"y", y},
                                  {"color", {{"field", "memory"}, {"type", "nominal"}, {"title", "memory"},
                                             {"scale", {{"domain", {"reserved", "allocated"}}, {"range", {kReservedColour, kAllocatedColour}}}}}}}}});
  layers.push_back({{"data", {{"values", json::array({{{"b", capacity}, {"label", "device capacity " + format_bytes(capacity)}}})}}},
                    {"transform", json::array({to_gib("b")})},
                    {"layer", json::array({
                                  {{"mark", {{"type", "rule"}, {"color", kCapacityColour}, {"strokeDash", {6, 4}}, {"strokeWidth", 1.5}}},
                                   {"encoding", {{"y", {{"field", "gib"}, {"type", "quantitative"}}},
                                                 {"tooltip", json::array({{{"field", "label"}, {"title", "capacity"}}, exact_bytes_tooltip("b", "capacity")})}}}},
                                  {{"mark", {{"type", "text"}, {"align", "right"}, {"baseline", "bottom"}, {"dy", -2}, {"fontSize", 10}, {"color", kCapacityColour}}},
                                   {"encoding", {{"y", {{"field", "gib"}, {"type", "quantitative"}}}, {"x", {{"value", kWidth - 4}}}, {"text", {{"field", "label"}}}}}},
                              })}});
  if (!data["ooms"].empty()) {
    json ooms = data["ooms"];
    for (json& o : ooms) o.erase("segments");  // drawn in their own map
    layers.push_back({{"data", {{"values", ooms}}},
                      {"mark", {{"type", "rule"}, {"strokeWidth", 2}}},
                      {"encoding", {{"x", {{"field", "event_index"}, {"type", "quantitative"}}},
                                    {"color", {{"field", "kind"}, {"type", "nominal"}, {"title", "OOM"},
                                               {"scale", {{"domain", {"unhandled", "handled"}}, {"range", {kOomColour, kOverColour}}}}}},
                                    {"tooltip", json::array({{{"field", "kind"}, {"title", "OOM"}}, {{"field", "event_index"}, {"title", "event"}},
                                                             exact_bytes_tooltip("size", "requested"), {{"field", "cause"}},
                                                             {{"field", "recorded"}, {"title", "the recording OOMed here too"}},
                                                             {{"field", "message"}}})}}}});
  }
  if (data["divergence"].is_object()) {
    const json& d = data["divergence"];
    layers.push_back({{"data", {{"values", json::array({{{"x", d["event_index"]}, {"expected", describe_event(d["expected"])},
                                                          {"simulated", describe_event(d["simulated"])}, {"context", d.value("context", "")}}})}}},
                      {"layer", json::array({
                                    {{"mark", {{"type", "rule"}, {"color", kEvictionColour}, {"strokeWidth", 2}, {"strokeDash", {2, 2}}}},
                                     {"encoding", {{"x", {{"field", "x"}, {"type", "quantitative"}}},
                                                   {"tooltip", json::array({{{"field", "x"}, {"title", "first divergence at event"}},
                                                                            {{"field", "expected"}, {"title", "recorded"}},
                                                                            {{"field", "simulated"}, {"title", "simulated"}},
                                                                            {{"field", "context"}}})}}}},
                                    {{"mark", {{"type", "text"}, {"align", "right"}, {"dx", -4}, {"baseline", "top"}, {"color", kEvictionColour}, {"fontWeight", "bold"}}},
                                     {"encoding", {{"x", {{"field", "x"}, {"type", "quantitative"}}}, {"y", {{"value", 4}}}, {"text", {{"value", "first divergence"}}}}}},
                                })}});
  }
  layers.push_back({{"data", {{"name", "samples"}}},
                    {"transform", json::array({to_gib("r", "reserved_gib"), to_gib("a", "allocated_gib")})},
                    {"params", json::array({{{"name", "hover"},
                                             {"select", {{"type", "point"}, {"fields", {"x"}}, {"nearest", true}, {"on", "pointerover"}, {"clear", "pointerout"}}}}})},
                    {"mark", {{"type", "rule"}, {"color", "#555"}}},
                    {"encoding", {{"x", x},
                                  {"opacity", {{"condition", {{"param", "hover"}, {"empty", false}, {"value", 0.5}}}, {"value", 0}}},
                                  {"tooltip", json::array({{{"field", "x"}, {"title", "event"}}, gib_tooltip("reserved_gib", "reserved"),
                                                           exact_bytes_tooltip("r", "reserved"), gib_tooltip("allocated_gib", "allocated"),
                                                           exact_bytes_tooltip("a", "allocated")})}}}});
  return {{"title", {{"text", "Memory over the trace (simulated)"}, {"anchor", "start"},
                     {"subtitle", "peak reserved " + format_bytes(bytes_or(data["replay"]["peak_reserved_bytes"])) + " · capacity " +
                                      format_bytes(capacity)}}},
          {"datasets", {{"samples", samples}}},  // once, read by the lines and by the hover layer
          {"width", kWidth},
          {"height", 250},
          {"layer", layers},
          {"resolve", {{"scale", {{"color", "independent"}}}}}};
}

json fragmentation_chart(const json& data) {
  std::uint64_t x_max = 1;
  for (const json& s : data["timeline"]) x_max = std::max(x_max, bytes_or(s["x"]));
  const json x = x_axis(x_max);
  return {{"title", {{"text", "Fragmentation over the trace"}, {"anchor", "start"},
                     {"subtitle", "free cached: reserved but not in use; inactive split: free pieces of segments that hold live "
                                  "blocks; largest free block: the biggest request the cache can serve without a new segment"}}},
          {"width", kWidth},
          {"height", 180},
          {"data", {{"values", data["timeline"]}}},
          {"transform", json::array({{{"fold", {"f", "s", "l"}}, {"as", {"m", "b"}}},
                                     {{"calculate", "{f: 'free cached', s: 'inactive split', l: 'largest free block'}[datum.m]"}, {"as", "measure"}},
                                     to_gib("b")})},
          {"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.4}}},
          {"encoding", {{"x", x},
                        {"y", {{"field", "gib"}, {"type", "quantitative"}, {"title", "GiB"}}},
                        {"color", {{"field", "measure"}, {"type", "nominal"}, {"title", nullptr},
                                   {"scale", {{"domain", {"free cached", "inactive split", "largest free block"}},
                                              {"range", {"#7f8c9d", "#e8702a", "#2b8a3e"}}}}}},
                        {"tooltip", json::array({{{"field", "x"}, {"title", "event"}}, {{"field", "measure"}}, gib_tooltip("gib", "value"),
                                                 exact_bytes_tooltip("b", "value")})}}},
          {"config", {{"legend", {{"orient", "top"}}}, {"title", {{"subtitleFontSize", 11}, {"limit", kWidth}}}}}};
}

}  // namespace

json replay_report_data(const sim::ReplayResult& r, const sim::Trace& trace, const std::optional<sim::MinCapacityResult>& min_capacity) {
  const sim::Provenance& p = trace.metadata.provenance;
  json timeline = json::array();
  for (const sim::FragmentationSample& s : r.timeline) {
    timeline.push_back({{"x", s.event_index}, {"r", s.reserved}, {"a", s.allocated}, {"f", s.free_cached},
                        {"s", s.inactive_split}, {"l", s.largest_free_block}});
  }
  json ooms = json::array();
  for (const sim::ReplayOom& o : r.ooms) {
    ooms.push_back({{"event_index", o.event_index}, {"size", o.size}, {"kind", o.handled ? "handled" : "unhandled"},
                    {"recorded", o.recorded}, {"cause", o.fragmentation ? "fragmentation: enough free cached in total, no block fits" : "not enough memory"},
                    {"free_cached_bytes", o.free_cached_bytes}, {"largest_free_cached_block_bytes", o.largest_free_cached_block},
                    {"message", o.message}});
    if (!o.segments.empty()) ooms.back()["segments"] = segments_json(o.segments);
  }
  json divergence = nullptr;
  if (r.first_divergence) {
    const sim::ReplayDivergence& d = *r.first_divergence;
    divergence = {{"event_index", d.event_index},
                  {"expected", d.expected ? event_json(*d.expected) : json(nullptr)},
                  {"simulated", d.simulated ? event_json(*d.simulated) : json(nullptr)},
                  {"context", d.context},
                  {"segments_near", segments_json(d.segments_near)}};
  }
  json min = nullptr;
  if (min_capacity) {
    min = {{"min_capacity_bytes", min_capacity->min_capacity}, {"peak_reserved_unlimited_bytes", min_capacity->peak_reserved_unlimited},
           {"probes", min_capacity->probes}, {"verified_boundary", min_capacity->verified_boundary}};
  }
  return {{"format", "offsim-replay-report/1"},
          {"trace", {{"label", trace.metadata.label},
                     {"events", r.trace_events},
                     {"device_total_bytes", trace.metadata.device_total_bytes},
                     {"alloc_conf", trace.metadata.alloc_conf},
                     {"reconstructed_initial_state", trace.metadata.reconstructed_initial_state},
                     {"provenance", {{"kind", sim::to_string(p.kind)}, {"source", p.source}, {"citation", p.citation}, {"gpu", p.gpu},
                                     {"torch_version", p.torch_version}, {"command", p.command}, {"date", p.date}, {"notes", p.notes}}}}},
          {"replay", {{"events_total", r.events_total},
                      {"events_matched", r.events_matched},
                      {"peak_reserved_bytes", r.peak_reserved},
                      {"peak_allocated_bytes", r.peak_allocated},
                      {"final_reserved_bytes", r.final_reserved},
                      {"unhandled_ooms", r.unhandled_ooms},
                      {"completed", r.completed},
                      {"requests", r.requests},
                      {"comparison", r.comparison},
                      {"inferred_empty_cache", r.inferred_empty_cache},
                      {"notes", r.notes},
                      {"capacity_bytes", r.capacity},
                      {"alloc_conf", r.alloc_conf}}},
          {"timeline", timeline},
          {"ooms", ooms},
          {"divergence", divergence},
          {"final_segments", segments_json(trace.final_segments)},
          {"min_capacity", min}};
}

HtmlPage replay_report_page(const json& data) {
  const json& t = data["trace"];
  const json& r = data["replay"];
  const std::string label = t.value("label", std::string()).empty() ? t["provenance"].value("source", "trace") : t.value("label", "");
  HtmlPage page("offsim replay: " + label);
  const std::uint64_t total = bytes_or(r["events_total"]), matched = bytes_or(r["events_matched"]);
  std::string head = "<h1>offsim replay report</h1>\n<p><b>" + html_escape(label) + "</b>: " + std::to_string(bytes_or(t["events"])) +
                     " recorded events, replayed on the simulated caching allocator with capacity " +
                     html_escape(bytes_with_exact(bytes_or(r["capacity_bytes"]))) + " and PYTORCH_CUDA_ALLOC_CONF=\"" +
                     html_escape(r.value("alloc_conf", "")) + "\".</p>\n";
  const json& prov = t["provenance"];
  // A trace measured on a GPU that this replay compared nothing of (state only, requests only) is not a
  // measured result: the label says so.
  head += "<p class=\"meta\">Provenance: <b>" + html_escape(prov.value("kind", "")) + (total == 0 ? ", nothing compared" : "") + "</b>";
  for (const char* key : {"source", "citation", "gpu", "torch_version", "command", "date"}) {
    if (!prov.value(key, std::string()).empty()) head += "; " + std::string(key) + ": " + html_escape(prov.value(key, ""));
  }
  head += "</p>\n";
  if (!prov.value("notes", std::string()).empty()) head += "<p class=\"note\">" + html_escape(prov.value("notes", "")) + "</p>\n";
  head += "<h2>Fidelity</h2>\n<p>";
  if (total == 0 && r.value("comparison", std::string()) == "state-only") {
    head += "Events reproduced: n/a (state only). The snapshot holds no allocator requests: its segments are its content, "
            "shown below; nothing was replayed or compared.";
  } else if (total == 0) {
    // The terminal's "n/a (nothing recorded to compare)": a percentage of nothing would read as a pass.
    head += "Events reproduced: n/a (nothing recorded to compare). The trace records requests only (no segment events or "
            "allocator decisions, e.g. a CPU recording), so the simulated allocator's decisions are shown with nothing "
            "recorded to hold them against.";
  } else {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.2f%%", 100.0 * static_cast<double>(matched) / static_cast<double>(total));
    head += std::to_string(matched) + " of " + std::to_string(total) + " recorded allocator events reproduced exactly (" + pct + ").";
  }
  if (data["divergence"].is_object()) {
    const json& d = data["divergence"];
    head += " <span class=\"fail-text\">First divergence at event " + std::to_string(bytes_or(d["event_index"])) + ": recorded " +
            html_escape(describe_event(d["expected"])) + ", simulated " + html_escape(describe_event(d["simulated"])) + ".</span>";
    if (!d.value("context", std::string()).empty()) head += " " + html_escape(d.value("context", ""));
  } else if (total != 0) {
    head += " No divergence.";
  }
  head += "</p>\n<table><tr><th>peak reserved</th><th>peak allocated</th><th>final reserved</th><th>allocator calls</th><th>unhandled OOMs</th>"
          "<th>inferred empty_cache</th><th>completed</th>";
  if (data["min_capacity"].is_object()) head += "<th>smallest device that runs it</th>";
  head += "</tr><tr>";
  for (const char* key : {"peak_reserved_bytes", "peak_allocated_bytes", "final_reserved_bytes"}) {
    head += "<td class=\"num\" title=\"" + std::to_string(bytes_or(r[key])) + " bytes\">" + html_escape(format_bytes(bytes_or(r[key]))) + "</td>";
  }
  head += "<td class=\"num\">" + std::to_string(bytes_or(r["requests"])) + "</td><td class=\"num\">" + std::to_string(bytes_or(r["unhandled_ooms"])) +
          "</td><td class=\"num\">" + std::to_string(bytes_or(r["inferred_empty_cache"])) + "</td><td>" + (r.value("completed", true) ? "yes" : "no: stopped at an unhandled OOM") + "</td>";
  if (data["min_capacity"].is_object()) {
    const json& m = data["min_capacity"];
    head += "<td class=\"num\" title=\"" + std::to_string(bytes_or(m["min_capacity_bytes"])) + " bytes\">" +
            html_escape(format_bytes(bytes_or(m["min_capacity_bytes"]))) + (m.value("verified_boundary", false) ? "" : " (boundary not verified)") + "</td>";
  }
  head += "</tr></table>\n";
  if (!r["notes"].empty()) {
    head += "<details><summary>What the replay assumed or reconstructed</summary><ul>";
    for (const json& n : r["notes"]) head += "<li>" + html_escape(n.get<std::string>()) + "</li>";
    head += "</ul></details>\n";
  }
  page.add_html(head);

  page.add_html("<h2>Memory</h2>\n");
  if (data["timeline"].empty()) {
    page.add_html("<p class=\"na\">The replay sampled nothing (an empty trace).</p>\n");
  } else {
    page.add_chart(memory_chart(data), "replay: memory over the trace");
    page.add_chart(fragmentation_chart(data), "replay: fragmentation over the trace");
  }
  if (!data["ooms"].empty()) {
    std::string table = "<h3>Out-of-memory events</h3>\n<table><tr><th>event</th><th>requested</th><th>kind</th><th>recorded too</th><th>cause</th>"
                        "<th>free cached</th><th>largest free cached block</th><th>message</th></tr>\n";
    for (const json& o : data["ooms"]) {
      table += "<tr><td class=\"num\">" + std::to_string(bytes_or(o["event_index"])) + "</td><td class=\"num\" title=\"" + std::to_string(bytes_or(o["size"])) +
               " bytes\">" + html_escape(format_bytes(bytes_or(o["size"]))) + "</td><td class=\"" + (o["kind"] == "handled" ? "over" : "FAIL") + "\">" +
               html_escape(o.value("kind", "")) + "</td><td>" + (o.value("recorded", false) ? "yes" : "no") + "</td><td>" + html_escape(o.value("cause", "")) +
               "</td><td class=\"num\">" + html_escape(format_bytes(bytes_or(o["free_cached_bytes"]))) + "</td><td class=\"num\">" +
               html_escape(format_bytes(bytes_or(o["largest_free_cached_block_bytes"]))) + "</td><td>" + html_escape(o.value("message", "")) + "</td></tr>\n";
    }
    page.add_html(table + "</table>\n");
  }

  page.add_html("<h2>Segments</h2>\n");
  bool any_map = false;
  if (data["divergence"].is_object() && !data["divergence"]["segments_near"].empty()) {
    page.add_chart(segment_map_chart(data["divergence"]["segments_near"],
                                     "Simulated segments near the first divergence (event " + std::to_string(bytes_or(data["divergence"]["event_index"])) + ")"),
                   "replay: segments near the divergence");
    any_map = true;
  }
  for (const json& o : data["ooms"]) {
    if (!o.contains("segments") || o["segments"].empty()) continue;
    page.add_chart(segment_map_chart(o["segments"], "Simulated segments at the unhandled OOM (event " + std::to_string(bytes_or(o["event_index"])) +
                                                         "): " + o.value("message", "")),
                   "replay: segments at the unhandled OOM");
    any_map = true;
  }
  if (!data["final_segments"].empty()) {
    page.add_chart(segment_map_chart(data["final_segments"], "Recorded segments at the end of the trace (the snapshot's own state)"),
                   "replay: recorded final segments");
    any_map = true;
  }
  if (!any_map) page.add_html("<p class=\"na\">The trace recorded no segment state, and the replay neither diverged nor stopped at an unhandled OOM.</p>\n");
  page.add_html("<h2>Reading this report</h2><p class=\"note\">The x axis is the recorded trace's event index. Charts are in GiB; hover "
                "for exact bytes. Generated by <code>offsim replay --html</code>; the data drawn is embedded in this file "
                "(<code>script#offsim-replay</code>).</p>\n");
  page.add_data("offsim-replay", data);
  return page;
}

void write_replay_report(const sim::ReplayResult& result, const sim::Trace& trace, const VegaAssets& assets,
                         const std::filesystem::path& path, const std::optional<sim::MinCapacityResult>& min_capacity) {
  replay_report_page(replay_report_data(result, trace, min_capacity)).write(path, assets);
}

}  // namespace offsim::report
