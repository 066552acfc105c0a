#include "offsim/report/timeline_chart.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "chart_util.hpp"
#include "policy_palette.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;

constexpr int kWidth = 1040;
constexpr int kHeight = 250;
constexpr std::size_t kOverviewPoints = 250;

// Vega-Lite transform: field "gib" from a byte count.
json to_gib(const std::string& field) { return {{"calculate", "datum." + field + " / 1073741824"}, {"as", "gib"}}; }

std::uint64_t stride_of(const json& result) { return std::max<std::uint64_t>(1, bytes_or(result.value("timeline_stride", json(1)), 1)); }

// Raw sample number of a thinned timeline index: the first sample of its bucket.
std::uint64_t sample_at(const json& result, std::uint64_t thinned) { return thinned * stride_of(result); }

std::string t_text(const json& stage) {
  std::string out;
  if (!stage["t_warm_bytes"].is_null()) out += "T_warm " + format_bytes(bytes_or(stage["t_warm_bytes"]));
  if (!stage["t_cold_bytes"].is_null()) out += (out.empty() ? "" : ", ") + std::string("T_cold ") + format_bytes(bytes_or(stage["t_cold_bytes"]));
  return out;
}

json x_axis(std::uint64_t x_max) {
  return {{"field", "x"},
          {"type", "quantitative"},
          {"title", "allocator calls (simulated time)"},
          {"scale", {{"domain", {0, x_max}}, {"nice", false}}},
          {"axis", spaced_ticks(kWidth)}};
}

}  // namespace

std::vector<StageBand> stage_bands(const json& result) {
  std::vector<StageBand> bands;
  const json& stages = result["stages"];
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const json& s = stages[i];
    const std::uint64_t b = sample_at(result, bytes_or(s["timeline"][0]));
    const std::uint64_t e = sample_at(result, bytes_or(s["timeline"][1]));
    if (!bands.empty()) {
      const json& first = stages[bands.back().first_record];
      if (first["stage"] == s["stage"] && first["call"] == s["call"] && s["oom"].is_null()) {
        bands.back().records += 1;
        bands.back().end_sample = std::max(bands.back().end_sample, e);
        continue;
      }
    }
    bands.push_back({i, 1, b, std::max(b, e)});
  }
  return bands;
}

json timeline_chart(const json& result, Samples samples_from) {
  const std::uint64_t stride = stride_of(result);
  const json& timeline = result["timeline"];
  const std::uint64_t capacity = bytes_or(result["scenario"]["device_total_bytes"]);
  const std::uint64_t x_max = std::max<std::uint64_t>(1, timeline.size() * stride);

  // Exact bytes in the data; GiB computed in the chart (transforms), which keeps the file small.
  json samples = json::array();
  std::uint64_t y_max = capacity;
  for (std::size_t i = 0; i < timeline.size(); ++i) {
    const std::uint64_t reserved = bytes_or(timeline[i][0]);
    y_max = std::max(y_max, reserved);
    samples.push_back({{"i", i}, {"r", reserved}, {"a", bytes_or(timeline[i][1])}});
  }
  auto reserved_at = [&](std::uint64_t thinned) {
    return thinned < timeline.size() ? bytes_or(timeline[thinned][0]) : (timeline.empty() ? 0 : bytes_or(timeline.back()[0]));
  };

  // Stage bands, with the decision and the true peaks (each T with its provenance) in the tooltip.
  json bands = json::array();
  json labels = json::array();
  const json& stages = result["stages"];
  for (const StageBand& band : stage_bands(result)) {
    const json& s = stages[band.first_record];
    const std::string stage = s.value("stage", "");
    const int call = s.value("call", 0) + 1;
    std::string estimate = s["estimate_bytes"].is_null() ? "none (the policy reserves no working memory)"
                                                         : bytes_with_exact(bytes_or(s["estimate_bytes"]));
    const std::string source = s.value("estimate_source", "");
    if (!source.empty()) estimate += " from " + source;
    std::string t = t_text(s);
    const std::string provenance = s["working_memory"].is_null() ? "no working-memory trace" : s["working_memory"].get<std::string>();
    std::uint64_t evicted = 0;
    for (std::size_t k = band.first_record; k < band.first_record + band.records; ++k) {
      for (const json& e : stages[k]["evictions"]) evicted += bytes_or(e["bytes"]);
    }
    json row = {{"x0", band.begin_sample},
                {"x1", std::max(band.end_sample, band.begin_sample + 1)},
                {"stage", stage},
                {"call", call},
                {"steps", band.records},
                {"estimate", estimate},
                {"true_peak", t.empty() ? "n/a" : t},
                {"provenance", provenance},
                {"stop", s.value("stop_reason", "")},
                {"evicted", evicted == 0 ? std::string("nothing") : bytes_with_exact(evicted)}};
    bands.push_back(row);
    // Label the bands wide enough to hold their label (10 px text, 3 px in from the band's left edge).
    const std::string label = stage + (call > 1 || result["scenario"].value("calls", 1) > 1 ? " #" + std::to_string(call) : "");
    const double band_px = static_cast<double>(band.end_sample - band.begin_sample) / static_cast<double>(x_max) * kWidth;
    if (band_px >= text_width_px(label.size(), 10) + 8) labels.push_back({{"x0", band.begin_sample}, {"label", label}});
  }

  // Evictions at the start of the stage whose decision made them; unhandled OOMs where the stage ended.
  json evictions = json::array();
  json ooms = json::array();
  for (const json& s : stages) {
    const std::uint64_t begin = bytes_or(s["timeline"][0]);
    const std::uint64_t end = bytes_or(s["timeline"][1]);
    if (!s["evictions"].empty()) {
      std::string models;
      std::uint64_t bytes = 0;
      for (const json& e : s["evictions"]) {
        models += (models.empty() ? "" : ", ") + e.value("model", "") + " " + format_bytes(bytes_or(e["bytes"]));
        bytes += bytes_or(e["bytes"]);
      }
      evictions.push_back({{"x", sample_at(result, begin)}, {"b", reserved_at(begin)}, {"stage", s.value("stage", "")},
                           {"call", s.value("call", 0) + 1}, {"step", s.value("step", 0) + 1}, {"models", models},
                           {"bytes", bytes}});
    }
    if (!s["oom"].is_null()) {
      const json& oom = s["oom"];
      ooms.push_back({{"x", sample_at(result, end)}, {"b", bytes_or(oom["reserved_bytes"])},
                      {"stage", s.value("stage", "")}, {"call", s.value("call", 0) + 1},
                      {"requested", bytes_with_exact(bytes_or(oom["requested_bytes"]))},
                      {"message", oom.value("message", "")}});
    }
  }
  json peak = json::array();
  if (!result["peak"].is_null()) {
    const json& p = result["peak"];
    peak.push_back({{"x", bytes_or(p["sample"])}, {"b", bytes_or(p["reserved_bytes"])}, {"what", "peak reserved"},
                    {"reserved", bytes_or(p["reserved_bytes"])}, {"allocated", bytes_or(p["allocated_bytes"])}});
  }

  const json x = x_axis(x_max);
  const json y = {{"field", "gib"}, {"type", "quantitative"}, {"title", "GiB"},
                  {"scale", {{"domain", {0, gib(y_max) * 1.06}}, {"nice", false}}}};
  json layers = json::array();
  layers.push_back({{"data", {{"values", bands}}},
                    {"mark", {{"type", "rect"}, {"opacity", 0.22}}},
                    {"encoding",
                     {{"x", {{"field", "x0"}, {"type", "quantitative"}, {"title", x["title"]}, {"scale", x["scale"]}, {"axis", x["axis"]}}},
                      {"x2", {{"field", "x1"}}},
                      {"color", {{"field", "stage"}, {"type", "nominal"}, {"title", "stage (shaded)"}, {"scale", {{"scheme", "set2"}}}}},
                      {"tooltip", json::array({{{"field", "stage"}, {"title", "stage"}},
                                               {{"field", "call"}, {"title", "call"}},
                                               {{"field", "steps"}, {"title", "steps"}},
                                               {{"field", "estimate"}, {"title", "E (estimate)"}},
                                               {{"field", "true_peak"}, {"title", "T (true peak)"}},
                                               {{"field", "provenance"}, {"title", "T from"}},
                                               {{"field", "stop"}, {"title", "stop reason"}},
                                               {{"field", "evicted"}, {"title", "evicted"}}})}}}});
  if (!labels.empty()) {
    layers.push_back({{"data", {{"values", labels}}},
                      {"mark", {{"type", "text"}, {"align", "left"}, {"baseline", "bottom"}, {"dx", 3}, {"dy", -3}, {"fontSize", 10}, {"color", "#4a5060"}}},
                      {"encoding", {{"x", {{"field", "x0"}, {"type", "quantitative"}}}, {"y", {{"value", kHeight}}}, {"text", {{"field", "label"}}}}}});
  }
  const json sample_x = {{"calculate", "datum.i * " + std::to_string(stride)}, {"as", "x"}};
  layers.push_back({{"data", {{"name", "samples"}}},
                    {"transform", json::array({sample_x, {{"fold", {"r", "a"}}, {"as", {"m", "b"}}},
                                               {{"calculate", "datum.m === 'r' ? 'reserved' : 'allocated'"}, {"as", "memory"}},
                                               to_gib("b")})},
                    {"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.6}}},
                    {"encoding",
                     {{"x", x},
                      {"y", y},
                      {"color", {{"field", "memory"}, {"type", "nominal"}, {"title", "memory"},
                                 {"scale", {{"domain", {"reserved", "allocated"}}, {"range", {kReservedColour, kAllocatedColour}}}}}}}}});
  layers.push_back({{"data", {{"values", json::array({{{"b", capacity}, {"bytes", capacity},
                                                       {"label", "device capacity " + format_bytes(capacity)}}})}}},
                    {"transform", json::array({to_gib("b")})},
                    {"layer", json::array({
                                  {{"mark", {{"type", "rule"}, {"color", kCapacityColour}, {"strokeDash", {6, 4}}, {"strokeWidth", 1.5}}},
                                   {"encoding", {{"y", {{"field", "gib"}, {"type", "quantitative"}}},
                                                 {"tooltip", json::array({{{"field", "label"}, {"title", "capacity"}}, exact_bytes_tooltip("bytes", "capacity")})}}}},
                                  {{"mark", {{"type", "text"}, {"align", "right"}, {"baseline", "bottom"}, {"dy", -2}, {"fontSize", 10}, {"color", kCapacityColour}}},
                                   {"encoding", {{"y", {{"field", "gib"}, {"type", "quantitative"}}}, {"x", {{"value", kWidth - 4}}}, {"text", {{"field", "label"}}}}}},
                              })}});
  if (!peak.empty()) {
    layers.push_back({{"data", {{"values", peak}}},
                      {"transform", json::array({to_gib("b")})},
                      {"mark", {{"type", "point"}, {"shape", "diamond"}, {"filled", true}, {"size", 80}, {"color", kReservedColour}}},
                      {"encoding", {{"x", x}, {"y", y},
                                    {"tooltip", json::array({{{"field", "what"}, {"title", "marker"}}, exact_bytes_tooltip("reserved", "reserved"),
                                                             exact_bytes_tooltip("allocated", "allocated"),
                                                             {{"field", "x"}, {"title", "allocator call"}}})}}}});
  }
  if (!evictions.empty()) {
    layers.push_back({{"data", {{"values", evictions}}},
                      {"transform", json::array({to_gib("b")})},
                      {"mark", {{"type", "point"}, {"shape", "triangle-down"}, {"filled", true}, {"size", 90}, {"color", kEvictionColour}}},
                      {"encoding", {{"x", x}, {"y", y},
                                    {"tooltip", json::array({{{"field", "stage"}, {"title", "eviction before"}}, {{"field", "call"}, {"title", "call"}},
                                                             {{"field", "step"}, {"title", "step"}}, {{"field", "models"}, {"title", "evicted"}},
                                                             exact_bytes_tooltip("bytes", "evicted")})}}}});
  }
  if (!ooms.empty()) {
    // The label below the cross (the capacity's label sits above the capacity line), on the side of the line
    // that has room: a run stops at its unhandled OOM, usually at the right edge, where a label to the right
    // would sit on the legend.
    const bool label_left = 2 * bytes_or(ooms[0]["x"]) > x_max;
    layers.push_back({{"data", {{"values", ooms}}},
                      {"transform", json::array({to_gib("b")})},
                      {"layer", json::array({
                                    {{"mark", {{"type", "rule"}, {"color", kOomColour}, {"strokeWidth", 2}}},
                                     {"encoding", {{"x", x}}}},
                                    {{"mark", {{"type", "point"}, {"shape", "cross"}, {"filled", true}, {"size", 160}, {"color", kOomColour}}},
                                     {"encoding", {{"x", x}, {"y", y},
                                                   {"tooltip", json::array({{{"field", "stage"}, {"title", "unhandled OOM in"}}, {{"field", "call"}, {"title", "call"}},
                                                                            {{"field", "requested"}, {"title", "requested"}}, {{"field", "message"}, {"title", "message"}}})}}}},
                                    {{"mark", {{"type", "text"}, {"align", label_left ? "right" : "left"}, {"dx", label_left ? -8 : 8}, {"baseline", "top"}, {"dy", 6},
                                               {"fontWeight", "bold"}, {"color", kOomColour}}},
                                     {"encoding", {{"x", x}, {"y", y}, {"text", {{"value", "OOM"}}}}}},
                                })}});
  }
  // Nearest allocator call under the pointer: a faint rule with both values, exact bytes included.
  layers.push_back({{"data", {{"name", "samples"}}},
                    {"transform", json::array({sample_x, {{"calculate", "datum.r / 1073741824"}, {"as", "reserved_gib"}},
                                               {{"calculate", "datum.a / 1073741824"}, {"as", "allocated_gib"}}})},
                    {"params", json::array({{{"name", "hover"},
                                             {"select", {{"type", "point"}, {"fields", {"x"}}, {"nearest", true}, {"on", "pointerover"}, {"clear", "pointerout"}}}}})},
                    {"mark", {{"type", "rule"}, {"color", "#555"}}},
                    {"encoding", {{"x", x},
                                  {"opacity", {{"condition", {{"param", "hover"}, {"empty", false}, {"value", 0.5}}}, {"value", 0}}},
                                  {"tooltip", json::array({{{"field", "x"}, {"title", "allocator call"}},
                                                           gib_tooltip("reserved_gib", "reserved"), exact_bytes_tooltip("r", "reserved"),
                                                           gib_tooltip("allocated_gib", "allocated"), exact_bytes_tooltip("a", "allocated")})}}}});

  const json& policy = result["policy"];
  std::string subtitle = result.value("completed", false) ? "completed" : "FAILED: " + result.value("failure", std::string());
  subtitle += "  ·  peak reserved " + format_bytes(bytes_or(result["peak_reserved_bytes"])) + "  ·  evictions " +
              std::to_string(bytes_or(result["evictions"])) + "  ·  capacity " + format_bytes(capacity);
  json spec = {{"title", {{"text", wrap_to_width(policy.value("id", "") + " on " + result["scenario"].value("name", ""), kWidth, 13, true)},
                     {"subtitle", wrap_to_width(subtitle, kWidth, 11)}, {"anchor", "start"}, {"subtitleColor", result.value("completed", false) ? "#555d6e" : kOomColour}}},
          {"width", kWidth},
          {"height", kHeight},
          {"layer", layers},
          {"resolve", {{"scale", {{"color", "independent"}}}}},
          {"config", {{"legend", {{"orient", "right"}}}, {"title", {{"subtitleFontSize", 11}, {"limit", kWidth}}}}}};
  // The samples once, read by the lines and by the hover layer; or from the page, which embeds them already.
  if (samples_from == Samples::kInline) spec["datasets"] = {{"samples", samples}};
  return spec;
}

json scenario_overview_chart(const std::vector<const json*>& results) {
  // Each policy's reserved bytes, thinned again to kOverviewPoints (bucket maxima) and keyed by the policy's
  // index; names and GiB come from transforms.
  json values = json::array();
  json names = json::array();
  std::uint64_t capacity = 0, y_max = 0;
  for (const json* r : results) {
    const json& timeline = (*r)["timeline"];
    if (timeline.empty()) continue;
    const std::uint64_t stride = stride_of(*r);
    capacity = std::max(capacity, bytes_or((*r)["scenario"]["device_total_bytes"]));
    const std::size_t p = names.size();
    names.push_back((*r)["policy"].value("id", ""));
    const std::size_t bucket = (timeline.size() + kOverviewPoints - 1) / kOverviewPoints;
    const double calls = static_cast<double>(timeline.size() * stride);
    for (std::size_t i = 0; i < timeline.size(); i += bucket) {
      std::uint64_t reserved = 0;
      for (std::size_t k = i; k < std::min(timeline.size(), i + bucket); ++k) reserved = std::max(reserved, bytes_or(timeline[k][0]));
      y_max = std::max(y_max, reserved);
      const double percent = std::round(1000.0 * static_cast<double>(i * stride) / calls) / 10.0;
      values.push_back({{"x", percent}, {"c", i * stride}, {"p", p}, {"b", reserved}});
    }
  }
  y_max = std::max(y_max, capacity);
  json colours = json::array(), dashes = json::array();
  for (const PolicyStyle& style : policy_styles(names.get<std::vector<std::string>>())) {
    colours.push_back(style.colour);
    dashes.push_back(style.dash);
  }
  const json x = {{"field", "x"}, {"type", "quantitative"}, {"title", "progress through each run (% of its allocator calls)"},
                  {"scale", {{"domain", {0, 100}}, {"nice", false}}}, {"axis", spaced_ticks(kWidth)}};
  const json y = {{"field", "gib"}, {"type", "quantitative"}, {"title", "reserved GiB"},
                  {"scale", {{"domain", {0, gib(y_max) * 1.06}}, {"nice", false}}}};
  return {{"title", {{"text", "Reserved memory of every policy"}, {"anchor", "start"},
                     {"subtitle", "one line per policy, each run stretched to the full width; dashed: device capacity " + format_bytes(capacity)}}},
          {"width", kWidth},
          {"height", 220},
          {"layer", json::array({
                        {{"data", {{"values", values}}},
                         {"transform", json::array({{{"calculate", names.dump() + "[datum.p]"}, {"as", "policy"}}, to_gib("b")})},
                         {"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.4}, {"opacity", 0.85}}},
                         {"encoding", {{"x", x}, {"y", y},
                                       // One legend: colour and dash on the same field merge into it.
                                       {"color", {{"field", "policy"}, {"type", "nominal"}, {"title", "policy"}, {"scale", {{"domain", names}, {"range", colours}}}}},
                                       {"strokeDash", {{"field", "policy"}, {"type", "nominal"}, {"title", "policy"}, {"scale", {{"domain", names}, {"range", dashes}}}}},
                                       {"tooltip", json::array({{{"field", "policy"}}, {{"field", "c"}, {"title", "allocator call"}},
                                                                gib_tooltip("gib", "reserved"), exact_bytes_tooltip("b", "reserved")})}}}},
                        {{"data", {{"values", json::array({{{"b", capacity}, {"bytes", capacity}}})}}},
                         {"transform", json::array({to_gib("b")})},
                         {"mark", {{"type", "rule"}, {"color", kCapacityColour}, {"strokeDash", {6, 4}}, {"strokeWidth", 1.5}}},
                         {"encoding", {{"y", {{"field", "gib"}, {"type", "quantitative"}}},
                                       {"tooltip", json::array({exact_bytes_tooltip("bytes", "device capacity")})}}}},
                    })},
          // Under the chart, in columns, names in full: fifteen ids do not fit beside a 1040 px chart.
          {"config", {{"legend", {{"orient", "bottom"}, {"columns", 3}, {"labelLimit", 0}, {"symbolType", "stroke"},
                                  {"symbolStrokeWidth", 2.5}, {"symbolSize", 400}, {"columnPadding", 24}}}}}};
}

}  // namespace offsim::report
