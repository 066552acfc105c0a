#include "replay_output.hpp"

#include <algorithm>
#include <cstdio>

#include "offsim/sim/bytes.hpp"
#include "table.hpp"

namespace offsim::cli {

namespace {

using namespace offsim::sim;
using nlohmann::json;

json event_json(const TraceEvent& e) {
  json j = {{"action", to_string(e.action)}, {"size", e.size}, {"stream", e.stream}};
  if (e.action == TraceAction::kOom) j["device_free"] = e.addr;
  else j["addr"] = e.addr;
  return j;
}

json segments_json(const std::vector<SegmentInfo>& segments) {
  json out = json::array();
  for (const SegmentInfo& s : segments) {
    json blocks = json::array();
    for (const BlockInfo& b : s.blocks) {
      blocks.push_back({{"address", b.address}, {"size", b.size}, {"state", to_string(b.state)}});
    }
    out.push_back({{"address", s.address}, {"total_size", s.total_size}, {"allocated_size", s.allocated_size},
                   {"segment_type", s.is_small ? "small" : "large"}, {"is_expandable", s.is_expandable},
                   {"blocks", blocks}});
  }
  return out;
}

json compared_json(const ComparisonCounts& c) {
  auto pair = [](const ComparedEvents& e) { return json{{"total", e.total}, {"matched", e.matched}}; };
  return {{"addresses", pair(c.addresses)}, {"segment_events", pair(c.segments)}, {"frees", pair(c.frees)}};
}

json device_json(const DeviceReplay& replay, const std::string& path) {
  const ReplayResult& r = replay.result;
  const std::optional<MinCapacityResult>& m = replay.min_capacity;
  json divergence = nullptr;
  if (r.first_divergence) {
    const ReplayDivergence& d = *r.first_divergence;
    divergence = {{"event_index", d.event_index},
                  {"expected", d.expected ? event_json(*d.expected) : json(nullptr)},
                  {"simulated", d.simulated ? event_json(*d.simulated) : json(nullptr)},
                  {"context", d.context},
                  {"segments_near", segments_json(d.segments_near)}};
  }
  json ooms = json::array();
  for (const ReplayOom& o : r.ooms) {
    ooms.push_back({{"event_index", o.event_index}, {"size", o.size}, {"handled", o.handled}, {"recorded", o.recorded},
                    {"free_cached_bytes", o.free_cached_bytes}, {"largest_free_cached_block", o.largest_free_cached_block},
                    {"fragmentation", o.fragmentation}, {"message", o.message}});
  }
  json timeline = json::array();
  for (const FragmentationSample& s : r.timeline) {
    timeline.push_back({s.event_index, s.reserved, s.allocated, s.free_cached, s.inactive_split, s.largest_free_block,
                        s.requested, s.recorded_reserved, s.recorded_requested});
  }
  return {{"format", "offsim-replay/1"},
          {"trace", path},
          {"device", replay.metadata.device},
          {"provenance", to_string(replay.metadata.provenance.kind)},
          {"recorded_alloc_conf", replay.metadata.alloc_conf},
          {"alloc_conf", r.alloc_conf},
          {"allocator_model", r.allocator_model},
          {"capacity_bytes", r.capacity},
          {"capacity_source", r.capacity_source},
          {"trace_events", r.trace_events},
          {"comparison", r.comparison},
          {"events_total", r.events_total},
          {"events_matched", r.events_matched},
          {"compared", compared_json(r.compared)},
          {"first_divergence", divergence},
          {"recorded_peak_reserved_bytes", r.recorded_peak_reserved},
          {"recorded_peak_requested_bytes", r.recorded_peak_requested},
          {"peak_requested_bytes", r.peak_requested},
          {"max_reserved_difference_bytes", r.max_reserved_difference},
          {"peak_reserved_bytes", r.peak_reserved},
          {"peak_allocated_bytes", r.peak_allocated},
          {"final_reserved_bytes", r.final_reserved},
          {"start_reserved_bytes", r.start_reserved},
          {"final_allocated_bytes", r.final_allocated},
          {"final_requested_bytes", r.final_requested},
          {"completed", r.completed},
          {"oom_events", ooms},
          {"unhandled_ooms", r.unhandled_ooms},
          {"requests", r.requests},
          {"inferred_empty_cache", r.inferred_empty_cache},
          {"min_capacity_bytes", m ? json(m->min_capacity) : json(nullptr)},
          {"min_capacity_verified", m ? json(m->verified_boundary) : json(nullptr)},
          {"timeline_columns", {"event_index", "reserved", "allocated", "free_cached", "inactive_split", "largest_free_block",
                                "requested", "recorded_reserved", "recorded_requested"}},
          {"timeline", timeline},
          {"notes", r.notes}};
}

std::string percent(std::size_t part, std::size_t whole) {
  char text[96];
  std::snprintf(text, sizeof text, "%zu / %zu (%.3f%%)", part, whole,
                whole != 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 100.0);
  return text;
}

std::string reproduced(const ReplayResult& r) {
  if (r.comparison == "state-only") return "n/a (state only: no allocator requests)";
  if (r.events_total == 0) return "n/a (nothing recorded to compare)";
  return percent(r.events_matched, r.events_total);
}

// The table's rows for one device, label then value; rows absent for a device show "-".
std::vector<std::pair<std::string, std::string>> rows(const DeviceReplay& replay, const std::string& profile) {
  const ReplayResult& r = replay.result;
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("allocator settings", r.alloc_conf.empty() ? "(default)" : r.alloc_conf);
  if (r.allocator_model != "native") out.emplace_back("allocator model", r.allocator_model);
  std::string total = format_bytes(r.capacity);
  if (r.capacity_source.starts_with("inferred")) total += " (from the recorded OOM)";
  else if (r.capacity_source == "assumed") total += " (no limit: total not recorded)";
  out.emplace_back("device total", total);
  out.emplace_back("PyTorch profile", profile);
  out.emplace_back("events reproduced", reproduced(r));
  if (r.comparison == "segments" || r.comparison == "addresses") {
    if (r.compared.segments.total != 0) out.emplace_back("  segment events", percent(r.compared.segments.matched, r.compared.segments.total));
    out.emplace_back("  alloc addresses", percent(r.compared.addresses.matched, r.compared.addresses.total));
    out.emplace_back("  frees", percent(r.compared.frees.matched, r.compared.frees.total));
  }
  out.emplace_back("first divergence", r.first_divergence ? "event " + std::to_string(r.first_divergence->event_index) + " in " +
                                                                 r.first_divergence->context
                                                           : "none");
  if (r.recorded_peak_reserved != 0) {
    out.emplace_back("peak reserved (recorded)", format_bytes(r.peak_reserved) + " (" + format_bytes(r.recorded_peak_reserved) + ")");
    out.emplace_back("peak requested (recorded)",
                     format_bytes(r.peak_requested) + " (" + format_bytes(r.recorded_peak_requested) + ")");
    out.emplace_back("max reserved difference", format_bytes(r.max_reserved_difference));
  } else {
    out.emplace_back("peak reserved", format_bytes(r.peak_reserved));
  }
  out.emplace_back("peak allocated", format_bytes(r.peak_allocated));
  std::size_t handled = 0, fragmentation = 0;
  for (const ReplayOom& x : r.ooms) {
    handled += x.handled ? 1 : 0;
    fragmentation += x.fragmentation ? 1 : 0;
  }
  out.emplace_back("OOMs (handled / unhandled)", std::to_string(handled) + " / " + std::to_string(r.unhandled_ooms));
  out.emplace_back("OOMs with enough cached memory", std::to_string(fragmentation));
  std::uint64_t worst_gap = 0, worst_split = 0;
  for (const FragmentationSample& s : r.timeline) {
    worst_gap = std::max(worst_gap, s.reserved - s.allocated);
    worst_split = std::max(worst_split, s.inactive_split);
  }
  out.emplace_back("max reserved - allocated", format_bytes(worst_gap));
  out.emplace_back("max inactive split", format_bytes(worst_split));
  if (replay.min_capacity) {
    const MinCapacityResult& m = *replay.min_capacity;
    out.emplace_back("min capacity", format_bytes(m.min_capacity) + (m.verified_boundary ? "" : " (boundary not verified)"));
  }
  return out;
}

void print_details(std::ostream& out, const DeviceReplay& replay, const std::string& prefix) {
  const ReplayResult& r = replay.result;
  if (r.first_divergence) {
    const ReplayDivergence& d = *r.first_divergence;
    auto show = [](const std::optional<TraceEvent>& e) {
      return e ? std::string(to_string(e->action)) + " addr " + std::to_string(e->addr) + " size " + std::to_string(e->size)
               : std::string("(nothing)");
    };
    out << "\n" << prefix << "first divergence at event " << d.event_index << ": recorded " << show(d.expected)
        << ", simulated " << show(d.simulated) << "\n";
    if (!d.segments_near.empty()) out << "simulated segments near it, after the call:\n";
    for (const SegmentInfo& segment : d.segments_near) {
      std::size_t allocated = 0, free = 0;
      for (const BlockInfo& b : segment.blocks) (b.state == BlockState::kInactive ? free : allocated) += 1;
      out << "  " << segment.address << " +" << format_bytes(segment.total_size) << " ("
          << (segment.is_small ? "small" : "large") << (segment.is_expandable ? ", expandable" : "") << "): "
          << segment.blocks.size() << " blocks, " << allocated << " active, " << free << " free, "
          << format_bytes(segment.allocated_size) << " allocated\n";
    }
  }
  if (!r.completed) out << "\n" << prefix << "stopped at an unhandled OOM: " << r.ooms.back().message << "\n";
  for (const std::string& note : r.notes) out << prefix << "note: " << note << "\n";
}

}  // namespace

void print_replays(std::ostream& out, const std::vector<DeviceReplay>& replays, const std::string& profile) {
  const bool several = replays.size() > 1;
  std::vector<std::string> header{""};
  std::vector<std::string> labels;
  std::vector<std::vector<std::pair<std::string, std::string>>> columns;
  for (const DeviceReplay& replay : replays) {
    header.push_back(several ? "device " + std::to_string(replay.metadata.device) : "value");
    columns.push_back(rows(replay, profile));
    for (const auto& [label, value] : columns.back()) {
      if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
    }
  }
  Table table(header);
  for (const std::string& label : labels) {
    std::vector<std::string> row{label};
    for (const auto& column : columns) {
      const auto cell = std::find_if(column.begin(), column.end(), [&](const auto& entry) { return entry.first == label; });
      row.push_back(cell != column.end() ? cell->second : "-");
    }
    table.add(std::move(row));
  }
  table.print(out);
  for (const DeviceReplay& replay : replays) {
    print_details(out, replay, several ? "device " + std::to_string(replay.metadata.device) + ": " : "");
  }
}

json replays_json(const std::vector<DeviceReplay>& replays, const std::string& path) {
  json devices = json::array();
  for (const DeviceReplay& replay : replays) devices.push_back(device_json(replay, path));
  if (replays.size() == 1) {
    json one = devices.front();
    one["devices"] = devices;
    return one;
  }
  // Several devices: the totals a gate reads at the top; everything else per device.
  std::size_t trace_events = 0, events_total = 0, events_matched = 0, unhandled = 0, requests = 0;
  bool completed = true;
  ComparisonCounts compared;
  for (const DeviceReplay& replay : replays) {
    const ReplayResult& r = replay.result;
    trace_events += r.trace_events;
    events_total += r.events_total;
    events_matched += r.events_matched;
    unhandled += r.unhandled_ooms;
    requests += r.requests;
    completed = completed && r.completed;
    for (auto [into, from] : {std::pair{&compared.addresses, &r.compared.addresses},
                              std::pair{&compared.segments, &r.compared.segments}, std::pair{&compared.frees, &r.compared.frees}}) {
      into->total += from->total;
      into->matched += from->matched;
    }
  }
  return {{"format", "offsim-replay/1"},
          {"trace", path},
          {"device", nullptr},
          {"provenance", to_string(replays.front().metadata.provenance.kind)},
          {"trace_events", trace_events},
          {"events_total", events_total},
          {"events_matched", events_matched},
          {"compared", compared_json(compared)},
          {"completed", completed},
          {"unhandled_ooms", unhandled},
          {"requests", requests},
          {"devices", devices}};
}

}  // namespace offsim::cli
