#include "offsim/report/perfetto_trace.hpp"

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;

constexpr int kPid = 1;
constexpr int kStagesTid = 1;
constexpr int kEventsTid = 2;

json optional_bytes(const std::optional<std::uint64_t>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

json perfetto_trace(const policies::RunRecord& run, const policies::Scenario& scenario) {
  json events = json::array();
  const std::string process = run.policy.id + " on " + scenario.name + " (offsim, simulated)";
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"args", {{"name", process}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", kStagesTid}, {"args", {{"name", "stages"}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", kEventsTid}, {"args", {{"name", "evictions and OOMs"}}}});

  // Counters: one point where a value changes (and at both ends), so long flat stretches stay small.
  const std::size_t n = run.timeline.size();
  for (std::size_t i = 0; i < n; ++i) {
    const policies::TimelinePoint& p = run.timeline[i];
    if (i > 0 && i + 1 < n && p.reserved == run.timeline[i - 1].reserved && p.allocated == run.timeline[i - 1].allocated) continue;
    events.push_back({{"name", "reserved"}, {"ph", "C"}, {"ts", i}, {"pid", kPid}, {"args", {{"bytes", p.reserved}}}});
    events.push_back({{"name", "allocated"}, {"ph", "C"}, {"ts", i}, {"pid", kPid}, {"args", {{"bytes", p.allocated}}}});
  }
  for (std::size_t ts : {std::size_t{0}, n == 0 ? std::size_t{0} : n - 1}) {
    events.push_back({{"name", "device capacity"}, {"ph", "C"}, {"ts", ts}, {"pid", kPid}, {"args", {{"bytes", run.device_total}}}});
  }

  for (const policies::StageRecord& s : run.stages) {
    const policies::StageDecision& d = s.decision;
    json args = {{"call", s.call + 1},
                 {"step", s.step + 1},
                 {"E_bytes", optional_bytes(d.estimate)},
                 {"E_from", d.estimate_source},
                 {"F_P_bytes", d.free_memory ? json(*d.free_memory) : json(nullptr)},
                 {"W_load_bytes", d.weights_loaded},
                 {"stop_reason", std::string(policies::to_string(d.stop))},
                 {"T_warm_bytes", s.has_working_memory ? json(s.t_warm) : json(nullptr)},
                 {"T_cold_bytes", optional_bytes(s.t_cold)},
                 {"T_from", s.has_working_memory ? json(s.working_memory_label) : json(nullptr)},
                 {"bytes_to_device", s.bytes_to_device},
                 {"bytes_to_host", s.bytes_to_host}};
    const std::size_t begin = s.timeline_begin;
    const std::size_t end = std::max(s.timeline_end, s.timeline_begin);
    events.push_back({{"name", s.stage}, {"cat", "stage"}, {"ph", "X"}, {"ts", begin}, {"dur", end - begin},
                      {"pid", kPid}, {"tid", kStagesTid}, {"args", args}});
    for (const policies::Eviction& e : d.evictions) {
      events.push_back({{"name", "evict " + e.model}, {"cat", "eviction"}, {"ph", "i"}, {"s", "t"}, {"ts", begin},
                        {"pid", kPid}, {"tid", kEventsTid}, {"args", {{"bytes", e.bytes}, {"size", format_bytes(e.bytes)}, {"before", s.stage}}}});
    }
    if (s.oom) {
      events.push_back({{"name", "OOM"}, {"cat", "oom"}, {"ph", "i"}, {"s", "p"}, {"ts", end}, {"pid", kPid}, {"tid", kEventsTid},
                        {"args", {{"requested_bytes", s.oom->requested}, {"message", s.oom->message}, {"stage", s.stage}}}});
    }
  }
  return {{"traceEvents", events},
          {"displayTimeUnit", "ms"},
          {"otherData", {{"generator", "offsim"},
                         {"policy", run.policy.id},
                         {"scenario", scenario.name},
                         {"clock", "simulated: 1 us = 1 allocator call (alloc, free or empty_cache)"},
                         {"device_total_bytes", run.device_total},
                         {"completed", run.completed},
                         {"failure", run.failure}}}};
}

void write_perfetto_trace(const std::filesystem::path& path, const policies::RunRecord& run, const policies::Scenario& scenario) {
  sim::AtomicOutputFile out(path);
  out.write(perfetto_trace(run, scenario).dump());
  out.write("\n");
  out.commit();
}

}  // namespace offsim::report
