// `offsim replay TRACE`: feed a recorded trace's requests to the simulated allocator, compare what it
// does with the record (fidelity), and answer what-if questions (--capacity, --alloc-conf,
// --torch-version, --min-capacity). A short table on the terminal; --json for machines
// (docs/replay_json.md). Exit code 1 only on request (docs/exit_codes.md): --strict when the replay does not
// reproduce the record (or there is no record to compare), --fail-on-oom when it stops at an unhandled OOM.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.hpp"
#include "offsim/report/replay_report.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/trace_file.hpp"
#include "offsim/sim/trace_formats.hpp"
#include "progress.hpp"
#include "repository_root.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

using namespace offsim::sim;
using nlohmann::json;

struct ReplayCliOptions {
  std::string trace;
  std::string alloc_conf;
  bool alloc_conf_set = false;
  std::string capacity;
  std::string context = "0";
  std::string torch = "newest";
  std::string platform = "cuda";
  int device = 0;
  bool no_rewind = false;
  std::vector<std::string> fallible_frames;
  bool min_capacity = false;
  bool strict = false;
  bool fail_on_oom = false;
  bool quiet = false;
  std::string json_path;
  std::string html_path;
};

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

json result_json(const TraceMetadata& metadata, const ReplayResult& r, const std::optional<MinCapacityResult>& m,
                 const std::string& path) {
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
          {"provenance", to_string(metadata.provenance.kind)},
          {"recorded_alloc_conf", metadata.alloc_conf},
          {"alloc_conf", r.alloc_conf},
          {"capacity_bytes", r.capacity},
          {"trace_events", r.trace_events},
          {"events_total", r.events_total},
          {"events_matched", r.events_matched},
          {"first_divergence", divergence},
          {"recorded_peak_reserved_bytes", r.recorded_peak_reserved},
          {"recorded_peak_requested_bytes", r.recorded_peak_requested},
          {"peak_requested_bytes", r.peak_requested},
          {"max_reserved_difference_bytes", r.max_reserved_difference},
          {"peak_reserved_bytes", r.peak_reserved},
          {"peak_allocated_bytes", r.peak_allocated},
          {"final_reserved_bytes", r.final_reserved},
          {"start_reserved_bytes", r.start_reserved},
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

int run(const ReplayCliOptions& o) {
  // The report's JavaScript is loaded first, so that a missing `npm ci` fails before a long replay.
  std::optional<report::VegaAssets> assets;
  if (!o.html_path.empty()) assets = report::load_vega_assets({repository_root(""), std::filesystem::path(OFFSIM_SOURCE_DIR)});
  // A snapshot is read whole (its trace entries come before the segments they rewind from); an offsim
  // trace is streamed, a pass at a time, so that replaying it needs memory for a chunk of events only.
  const TraceFormat format = detect_trace_format(o.trace);
  SnapshotReadOptions read;
  read.device = o.device;
  read.reconstruct_initial_state = !o.no_rewind;
  read.fallible_frames = o.fallible_frames;
  require_snapshot_for(o.trace, format, read);
  std::optional<Trace> held;
  std::optional<ReplayInput> input;
  if (format == TraceFormat::kOffsimTrace) {
    const std::filesystem::path path = o.trace;
    input.emplace([path] { return std::make_unique<TraceReader>(path); });
  } else {
    Progress reading("read (bytes)", std::filesystem::file_size(o.trace), o.quiet);
    read.progress = [&reading](std::uint64_t offset) { reading.update(offset); };
    held = read_trace(o.trace, read);
    reading.finish();
    input.emplace(*held);
  }
  const TraceMetadata metadata = input->metadata();

  ReplayOptions options;
  if (o.alloc_conf_set) options.alloc_conf = o.alloc_conf;
  options.profile = from_command_line([&] { return &VersionProfile::by_name(o.torch); });
  if (o.alloc_conf_set) from_command_line([&] { (void)AllocatorConfig::parse(o.alloc_conf, *options.profile); });
  if (!o.capacity.empty()) options.capacity = from_command_line([&] { return parse_bytes(o.capacity, "--capacity"); });
  options.non_allocator_bytes = from_command_line([&] { return parse_bytes(o.context, "--context"); });
  if (o.platform == "rocm") options.platform = Platform::kRocm;
  else if (o.platform != "cuda") throw UsageError("--platform must be cuda or rocm, got \"" + o.platform + "\"");
  Progress progress("replay", held ? held->events.size() : 0, o.quiet);
  options.progress = [&progress](std::size_t done, std::size_t total) { progress.update(done, total); };
  const ReplayResult r = replay(*input, options);
  progress.finish();
  std::optional<MinCapacityResult> m;
  if (o.min_capacity) {
    ReplayOptions search = options;
    Progress probes("min-capacity search (replays)", 0, o.quiet);
    search.progress = [&probes](std::size_t done, std::size_t total) { probes.update(done, total); };
    m = find_min_capacity(*input, search);
    probes.finish();
  }

  const std::string provenance(to_string(metadata.provenance.kind));
  std::cout << "trace  " << o.trace << " (" << describe(format) << ", " << r.trace_events << " events, " << provenance
            << ")\n";
  if (metadata.provenance.kind == ProvenanceKind::kSynthetic) std::cout << "       SYNTHETIC: generated data\n";
  Table table({"", "value"});
  table.add({"allocator settings", r.alloc_conf.empty() ? "(default)" : r.alloc_conf});
  table.add({"device total", format_bytes(r.capacity)});
  table.add({"PyTorch profile", options.profile->name});
  char matched[96];
  std::snprintf(matched, sizeof matched, "%zu / %zu (%.3f%%)", r.events_matched, r.events_total,
                r.events_total ? 100.0 * static_cast<double>(r.events_matched) / static_cast<double>(r.events_total) : 100.0);
  table.add({"events reproduced", r.events_total ? std::string(matched) : "n/a (nothing recorded to compare)"});
  table.add({"first divergence",
             r.first_divergence ? "event " + std::to_string(r.first_divergence->event_index) + " in " +
                                      r.first_divergence->context
                                : "none"});
  if (r.recorded_peak_reserved != 0) {
    table.add({"peak reserved (recorded)", format_bytes(r.peak_reserved) + " (" + format_bytes(r.recorded_peak_reserved) + ")"});
    table.add({"peak requested (recorded)",
               format_bytes(r.peak_requested) + " (" + format_bytes(r.recorded_peak_requested) + ")"});
    table.add({"max reserved difference", format_bytes(r.max_reserved_difference)});
  } else {
    table.add({"peak reserved", format_bytes(r.peak_reserved)});
  }
  table.add({"peak allocated", format_bytes(r.peak_allocated)});
  std::size_t handled = 0, fragmentation = 0;
  for (const ReplayOom& x : r.ooms) {
    handled += x.handled ? 1 : 0;
    fragmentation += x.fragmentation ? 1 : 0;
  }
  table.add({"OOMs (handled / unhandled)", std::to_string(handled) + " / " + std::to_string(r.unhandled_ooms)});
  table.add({"OOMs with enough cached memory", std::to_string(fragmentation)});
  std::uint64_t worst_gap = 0, worst_split = 0;
  for (const FragmentationSample& s : r.timeline) {
    worst_gap = std::max(worst_gap, s.reserved - s.allocated);
    worst_split = std::max(worst_split, s.inactive_split);
  }
  table.add({"max reserved - allocated", format_bytes(worst_gap)});
  table.add({"max inactive split", format_bytes(worst_split)});
  if (m) {
    table.add({"min capacity", format_bytes(m->min_capacity) + (m->verified_boundary ? "" : " (boundary not verified)")});
  }
  table.print(std::cout);
  if (r.first_divergence) {
    const ReplayDivergence& d = *r.first_divergence;
    auto show = [](const std::optional<TraceEvent>& e) {
      return e ? std::string(to_string(e->action)) + " addr " + std::to_string(e->addr) + " size " + std::to_string(e->size)
               : std::string("(nothing)");
    };
    std::cout << "\nfirst divergence at event " << d.event_index << ": recorded " << show(d.expected) << ", simulated "
              << show(d.simulated) << "\n";
    if (!d.segments_near.empty()) std::cout << "simulated segments near it, after the call:\n";
    for (const SegmentInfo& segment : d.segments_near) {
      std::size_t allocated = 0, free = 0;
      for (const BlockInfo& b : segment.blocks) (b.state == BlockState::kInactive ? free : allocated) += 1;
      std::cout << "  " << segment.address << " +" << format_bytes(segment.total_size) << " ("
                << (segment.is_small ? "small" : "large") << (segment.is_expandable ? ", expandable" : "") << "): "
                << segment.blocks.size() << " blocks, " << allocated << " active, " << free << " free, "
                << format_bytes(segment.allocated_size) << " allocated\n";
    }
  }
  if (!r.completed) std::cout << "\nstopped at an unhandled OOM: " << r.ooms.back().message << "\n";
  for (const std::string& note : r.notes) std::cout << "note: " << note << "\n";
  if (held && !o.fallible_frames.empty()) {
    const auto fallible = std::count_if(held->events.begin(), held->events.end(), [](const TraceEvent& e) {
      return e.action == TraceAction::kAlloc && (e.flags & kTraceFlagFallible) != 0;
    });
    std::cout << "note: " << fallible << " allocation" << (fallible == 1 ? " is" : "s are")
              << " fallible (--fallible-frame, or flagged in the file)";
    if (fallible == 0) std::cout << "; frames are recorded by _record_memory_history(stacks=\"python\" or \"all\")";
    std::cout << "\n";
  }

  if (!o.json_path.empty()) {
    AtomicOutputFile out(o.json_path);
    out.write(result_json(metadata, r, m, o.trace).dump(1));
    out.write("\n");
    out.commit();
  }
  if (assets) {
    Trace summary;  // what the report shows of the trace besides the replay: its metadata and final state
    summary.metadata = metadata;
    summary.final_segments = r.recorded_final_segments;
    report::write_replay_report(r, summary, *assets, o.html_path, m);
    if (!o.quiet) std::cout << "wrote " << o.html_path << " (open it in a browser; it needs no network)\n";
  }
  int exit_code = kExitOk;
  if (o.strict && r.events_total == 0) {
    // Asked to gate on fidelity with nothing to compare: a gate never passes having checked nothing.
    std::cout << "strict: FAILED: the trace records no allocator decisions to compare (--strict checked nothing)\n";
    exit_code = kExitFailed;
  } else if (o.strict && (r.first_divergence || r.events_matched != r.events_total)) {
    std::cout << "strict: FAILED: the replay does not reproduce the record\n";
    exit_code = kExitFailed;
  }
  if (o.fail_on_oom && r.unhandled_ooms > 0) {
    std::cout << "fail-on-oom: FAILED: " << r.unhandled_ooms << " unhandled OOM" << (r.unhandled_ooms == 1 ? "" : "s") << "\n";
    exit_code = kExitFailed;
  }
  return exit_code;
}

}  // namespace

void add_replay_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ReplayCliOptions>();
  CLI::App* cmd = app.add_subcommand("replay", "Replay a recorded trace through the simulated allocator: fidelity and what-if");
  cmd->add_option("TRACE", o->trace, "snapshot pickle, snapshot JSON or .otrace")->required()->check(CLI::ExistingFile);
  cmd->add_option("--alloc-conf", o->alloc_conf, "PYTORCH_CUDA_ALLOC_CONF to simulate (default: the recorded one)")
      ->each([o](const std::string&) { o->alloc_conf_set = true; });
  cmd->add_option("--capacity", o->capacity, "device total, e.g. 24GiB (default: recorded, else 1 TiB)");
  cmd->add_option("--context", o->context, "memory outside the allocator (context, libraries, other processes)");
  cmd->add_option("--torch-version", o->torch, "allocator profile: 2.4, 2.6, 2.9, 2.11 or newest");
  cmd->add_option("--platform", o->platform, "cuda or rocm");
  cmd->add_option("--device", o->device, "device whose trace to read from a snapshot");
  cmd->add_flag("--no-rewind", o->no_rewind, "do not reconstruct the starting state from the dump-time segments");
  cmd->add_option("--fallible-frame", o->fallible_frames,
                  "mark allocations fallible whose stack has a frame (function or file name) containing TEXT, e.g. "
                  "tiled_decode or cudnn: their failure is a handled OOM (snapshots recorded with stacks; repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--min-capacity", o->min_capacity, "search the smallest device that runs the trace");
  cmd->add_flag("--strict", o->strict,
                "exit 1 unless every recorded allocator event is reproduced (also when the trace records none)");
  cmd->add_flag("--fail-on-oom", o->fail_on_oom,
                "exit 1 when the replay stops at an unhandled OOM (handled ones, --fallible-frame, do not count)");
  cmd->add_option("--json", o->json_path, "write the result as JSON (docs/replay_json.md)");
  cmd->add_option("--html", o->html_path, "write a self-contained HTML report with charts (docs/reports.md)");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress line");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace offsim::cli
