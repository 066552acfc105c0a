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
#include "replay_output.hpp"
#include "repository_root.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

using namespace offsim::sim;

struct ReplayCliOptions {
  std::string trace;
  std::string alloc_conf;
  bool alloc_conf_set = false;
  std::string capacity;
  std::string context = "0";
  std::string torch = "newest";
  std::string platform = "cuda";
  std::optional<int> device;
  bool no_rewind = false;
  std::vector<std::string> fallible_frames;
  bool min_capacity = false;
  bool strict = false;
  bool fail_on_oom = false;
  bool quiet = false;
  std::string json_path;
  std::string html_path;
};

// The traces to replay: every device of a snapshot that has trace entries (or the one asked for with --device),
// or the one trace of an .otrace, streamed.
struct Inputs {
  std::vector<Trace> held;  // snapshots: read whole
  std::vector<ReplayInput> inputs;
  std::vector<std::string> skipped;  // devices with segments but no trace entries
};

Inputs read_inputs(const ReplayCliOptions& o, TraceFormat format, SnapshotReadOptions read) {
  Inputs in;
  if (format == TraceFormat::kOffsimTrace) {
    const std::filesystem::path path = o.trace;
    const int device = TraceReader(path).metadata().device;
    if (o.device && *o.device != device) {
      throw UsageError("--device " + std::to_string(*o.device) + ": " + o.trace + " holds the trace of device " +
                       std::to_string(device) + " only");
    }
    in.inputs.emplace_back([path] { return std::make_unique<TraceReader>(path); });
    return in;
  }
  Progress reading("read (bytes)", std::filesystem::file_size(o.trace), o.quiet);
  read.progress = [&reading](std::uint64_t offset) { reading.update(offset); };
  if (o.device) {
    read.device = *o.device;
    in.held.push_back(read_trace(o.trace, read));
  } else {
    std::vector<Trace> devices = read_trace_devices(o.trace, read);
    // With trace entries, the devices that have them; a state-only snapshot (none) is its segments: every
    // device that has some (the reader lists only those, or device 0 for an empty file).
    const bool any_events = std::any_of(devices.begin(), devices.end(), [](const Trace& t) { return !t.events.empty(); });
    for (Trace& trace : devices) {
      if (any_events && trace.events.empty()) {
        in.skipped.push_back("device " + std::to_string(trace.metadata.device) + " holds " +
                             std::to_string(trace.final_segments.size()) + " segments but no trace entries: nothing to replay");
        continue;
      }
      in.held.push_back(std::move(trace));
    }
  }
  reading.finish();
  for (const Trace& trace : in.held) in.inputs.emplace_back(trace);
  return in;
}

int run(const ReplayCliOptions& o) {
  // The report's JavaScript is loaded first, so that a missing `npm ci` fails before a long replay.
  std::optional<report::VegaAssets> assets;
  if (!o.html_path.empty()) assets = report::load_vega_assets({repository_root(""), std::filesystem::path(OFFSIM_SOURCE_DIR)});
  // A snapshot is read whole (its trace entries come before the segments they rewind from); an offsim
  // trace is streamed, a pass at a time, so that replaying it needs memory for a chunk of events only.
  const TraceFormat format = detect_trace_format(o.trace);
  SnapshotReadOptions read;
  read.reconstruct_initial_state = !o.no_rewind;
  read.fallible_frames = o.fallible_frames;
  require_snapshot_for(o.trace, format, read);

  ReplayOptions options;
  if (o.alloc_conf_set) options.alloc_conf = o.alloc_conf;
  options.profile = from_command_line([&] { return &VersionProfile::by_name(o.torch); });
  if (o.alloc_conf_set) from_command_line([&] { (void)AllocatorConfig::parse(o.alloc_conf, *options.profile); });
  if (!o.capacity.empty()) {
    options.capacity = from_command_line([&] { return parse_bytes(o.capacity, "--capacity"); });
    // 0 would read as "not given" (the recorded total, else 1 TiB); above 1 EiB is no device, and the
    // device arithmetic would leave 64 bits.
    if (options.capacity == 0) throw UsageError("--capacity must be above 0 bytes, got \"" + o.capacity + "\"");
    if (options.capacity > (std::uint64_t{1} << 60)) {
      throw UsageError("--capacity \"" + o.capacity + "\" is above 1 EiB: no device is that large");
    }
  }
  options.non_allocator_bytes = from_command_line([&] { return parse_bytes(o.context, "--context"); });
  if (o.platform == "rocm") options.platform = Platform::kRocm;
  else if (o.platform != "cuda") throw UsageError("--platform must be cuda or rocm, got \"" + o.platform + "\"");
  const Inputs in = read_inputs(o, format, read);

  std::vector<DeviceReplay> replays;
  std::size_t trace_events = 0;
  for (std::size_t k = 0; k < in.inputs.size(); ++k) {
    const ReplayInput& input = in.inputs[k];
    DeviceReplay& replay = replays.emplace_back();
    replay.metadata = input.metadata();
    const std::string device = in.inputs.size() > 1 ? " device " + std::to_string(replay.metadata.device) : "";
    Progress progress("replay" + device, input.trace() ? input.trace()->events.size() : 0, o.quiet);
    options.progress = [&progress](std::size_t done, std::size_t total) { progress.update(done, total); };
    replay.result = sim::replay(input, options);
    progress.finish();
    trace_events += replay.result.trace_events;
    if (o.min_capacity) {
      ReplayOptions search = options;
      Progress probes("min-capacity search" + device + " (replays)", 0, o.quiet);
      search.progress = [&probes](std::size_t done, std::size_t total) { probes.update(done, total); };
      replay.min_capacity = find_min_capacity(input, search);
      probes.finish();
    }
  }

  const TraceMetadata& metadata = replays.front().metadata;
  std::string provenance(to_string(metadata.provenance.kind));
  const bool compared_anything = std::any_of(replays.begin(), replays.end(),
                                             [](const DeviceReplay& r) { return r.result.events_total != 0; });
  // The label is the trace's; it says nothing was compared where nothing was (a state-only snapshot, a
  // request stream), so that "gpu-measured" never stands for a comparison that did not happen.
  if (!compared_anything) provenance += ", nothing compared";
  std::cout << "trace  " << o.trace << " (" << describe(format) << ", " << trace_events << " events";
  if (replays.size() > 1) std::cout << " on " << replays.size() << " devices";
  std::cout << ", " << provenance << ")\n";
  if (metadata.provenance.kind == ProvenanceKind::kSynthetic) std::cout << "       SYNTHETIC: generated data\n";
  print_replays(std::cout, replays, options.profile->name);
  // What reading the file inferred (how the start state was rebuilt, or why it was not): the reader's notes.
  for (const DeviceReplay& replay : replays) {
    if (replay.metadata.provenance.notes.empty()) continue;
    std::cout << "note: ";
    if (replays.size() > 1) std::cout << "device " << replay.metadata.device << ": ";
    std::cout << "reading the trace: " << replay.metadata.provenance.notes << "\n";
  }
  for (const std::string& skipped : in.skipped) std::cout << "note: " << skipped << "\n";
  if (!o.fallible_frames.empty()) {
    for (const Trace& trace : in.held) {
      const auto fallible = std::count_if(trace.events.begin(), trace.events.end(), [](const TraceEvent& e) {
        return e.action == TraceAction::kAlloc && (e.flags & kTraceFlagFallible) != 0;
      });
      if (in.held.size() > 1) std::cout << "device " << trace.metadata.device << ": ";
      std::cout << "note: " << fallible << " allocation" << (fallible == 1 ? " is" : "s are")
                << " fallible (--fallible-frame, or flagged in the file)";
      if (fallible == 0) std::cout << "; frames are recorded by _record_memory_history(stacks=\"python\" or \"all\")";
      std::cout << "\n";
    }
  }

  if (!o.json_path.empty()) {
    AtomicOutputFile out(o.json_path);
    out.write(replays_json(replays, o.trace).dump(1));
    out.write("\n");
    out.commit();
  }
  if (assets) {
    for (const DeviceReplay& replay : replays) {
      // One page per device: with several, FILE.html becomes FILE.device<N>.html.
      std::filesystem::path page = o.html_path;
      if (replays.size() > 1) {
        page.replace_filename(page.stem().string() + ".device" + std::to_string(replay.metadata.device) +
                              page.extension().string());
      }
      Trace summary;  // what the report shows of the trace besides the replay: its metadata and final state
      summary.metadata = replay.metadata;
      summary.final_segments = replay.result.recorded_final_segments;
      report::write_replay_report(replay.result, summary, *assets, page.string(), replay.min_capacity);
      if (!o.quiet) std::cout << "wrote " << page.string() << " (open it in a browser; it needs no network)\n";
    }
  }
  int exit_code = kExitOk;
  std::size_t unhandled = 0;
  for (const DeviceReplay& replay : replays) {
    const ReplayResult& r = replay.result;
    unhandled += r.unhandled_ooms;
    const std::string device = replays.size() > 1 ? " (device " + std::to_string(replay.metadata.device) + ")" : "";
    if (o.strict && r.events_total == 0) {
      // Asked to gate on fidelity with nothing to compare: a gate never passes having checked nothing.
      std::cout << "strict: FAILED" << device
                << ": the trace records no allocator decisions to compare (--strict checked nothing)\n";
      exit_code = kExitFailed;
    } else if (o.strict && (r.first_divergence || r.events_matched != r.events_total)) {
      std::cout << "strict: FAILED" << device << ": the replay does not reproduce the record\n";
      exit_code = kExitFailed;
    }
  }
  if (o.fail_on_oom && unhandled > 0) {
    std::cout << "fail-on-oom: FAILED: " << unhandled << " unhandled OOM" << (unhandled == 1 ? "" : "s") << "\n";
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
  cmd->add_option("--device", o->device,
                  "replay only this device of a snapshot (default: every device with trace entries, each on its own)")
      ->check(CLI::NonNegativeNumber);
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
