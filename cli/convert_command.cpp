// `offsim convert IN OUT [--device N]`: between PyTorch memory snapshots (the _dump_snapshot() pickle
// and its JSON form) and offsim's own trace format. The input format is recognised by its content, the
// output format by OUT's extension (.pickle/.pkl, .json, .otrace). An .otrace input is streamed to the
// output event by event; a snapshot is read whole (its trace entries are converted as they are read) so
// that its starting state can be reconstructed. Outputs are written atomically, and only once `offsim replay`
// accepts them (check_replayable).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "offsim/sim/trace_formats.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/json_value_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "offsim/sim/trace_file.hpp"
#include "progress.hpp"
#include "progress_source.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

namespace fs = std::filesystem;
using namespace offsim::sim;

struct ConvertOptions {
  std::string input;
  std::string output;
  std::optional<int> device;
  bool no_rewind = false;
  std::vector<std::string> fallible_frames;
};

// A snapshot's devices: the one asked for with --device, else the first with trace entries (or with data at
// all); says which device was kept and which were dropped, since an output holds one device.
Trace read_kept_device(const fs::path& input, SnapshotReadOptions read_options, const std::optional<int>& device) {
  if (device) {
    read_options.device = *device;
    return read_trace(input, read_options);
  }
  std::vector<Trace> devices = read_trace_devices(input, read_options);
  const auto with_events = std::find_if(devices.begin(), devices.end(), [](const Trace& t) { return !t.events.empty(); });
  const std::size_t kept = with_events != devices.end() ? static_cast<std::size_t>(with_events - devices.begin()) : 0;
  if (devices.size() > 1) {
    std::string dropped;
    for (std::size_t k = 0; k < devices.size(); ++k) {
      if (k == kept) continue;
      dropped += (dropped.empty() ? "" : ", ") + std::string("device ") + std::to_string(devices[k].metadata.device) +
                 " (" + std::to_string(devices[k].events.size()) + " events, " +
                 std::to_string(devices[k].final_segments.size()) + " segments)";
    }
    std::cout << "  kept device " << devices[kept].metadata.device << " (" << devices[kept].events.size()
              << " events); dropped " << dropped << ": an output holds one device, convert each with --device N\n";
  }
  return std::move(devices[kept]);
}

// What convert writes, `offsim replay` must accept: the output is written beside OUT, read back and replayed
// at its recorded conditions as replay would, and only then moved to OUT. A trace replay refuses (entries
// that do not lead to the recorded segments, settings it cannot simulate, a start state it cannot load) is
// refused here, naming the input, and OUT is left as it was.
void check_replayable(const fs::path& written, const fs::path& input, const fs::path& output) {
  try {
    const TraceFormat format = detect_trace_format(written);
    if (format == TraceFormat::kOffsimTrace) {
      const ReplayInput streamed([written] { return std::make_unique<TraceReader>(written); });
      (void)replay(streamed, ReplayOptions{});
    } else {
      for (const Trace& trace : read_trace_devices(written)) (void)replay(trace, ReplayOptions{});
    }
  } catch (const Error& error) {
    fs::remove(written);
    std::string why = error.what();
    const std::string prefix = written.string() + ":";
    if (why.rfind(prefix, 0) == 0) why = output.string() + why.substr(written.string().size());
    throw Error(input.string() + ": not converted: `offsim replay` would refuse the output (" + why + ")");
  }
}

int run(const ConvertOptions& options) {
  const fs::path input = options.input;
  const fs::path output = options.output;
  const TraceFormat from = detect_trace_format(input);
  const TraceFormat to = from_command_line([&] { return trace_format_for_output(output); });
  // Written here first, then checked and renamed over OUT (same folder: the rename is atomic).
  const fs::path staged = output.parent_path() / ("." + output.filename().string() + ".offsim-convert" + output.extension().string());
  std::size_t final_segments = 0;
  std::uint64_t events = 0;
  SnapshotReadOptions read_options;
  read_options.reconstruct_initial_state = !options.no_rewind;
  read_options.fallible_frames = options.fallible_frames;
  require_snapshot_for(input, from, read_options);
  if (from == TraceFormat::kOffsimTrace) {
    TraceReader reader(input);
    if (options.device && *options.device != reader.metadata().device) {
      throw ConfigError("--device " + std::to_string(*options.device) + ": " + input.string() +
                        " holds the trace of device " + std::to_string(reader.metadata().device) + " only");
    }
    std::cout << "reading " << input.string() << " (" << describe(from) << ", "
              << format_bytes(reader.file_size()) << "), streaming to " << output.string() << "\n";
    Progress progress("convert (events)", 0, false);
    ProgressSource watched(reader, progress);
    write_trace(staged, to, watched);
    progress.finish();
    events = reader.events_read();
    final_segments = reader.final_segments().size();
    std::cout << "  " << events << " events, " << reader.initial_segments().size() << " segments at the start, "
              << final_segments << " at the end\n";
  } else {
    Progress reading("read (bytes)", fs::file_size(input), false);
    read_options.progress = [&reading](std::uint64_t offset) { reading.update(offset); };
    const Trace trace = read_kept_device(input, read_options, options.device);
    reading.finish();
    std::cout << "read " << input.string() << " (" << describe(from) << "): " << describe_trace(trace) << "\n";
    if (trace.metadata.reconstructed_initial_state) {
      std::cout << "  note: a snapshot holds the allocator state at dump time and only the last trace entries (ring "
                   "buffer); the state before the first entry was reconstructed by undoing the entries, as PyTorch's "
                   "memory_viz does\n";
    }
    if (!trace.metadata.alloc_conf.empty()) std::cout << "  allocator settings: " << trace.metadata.alloc_conf << "\n";
    if (!options.fallible_frames.empty()) std::cout << "  notes: " << trace.metadata.provenance.notes << "\n";
    TraceVectorSource source(trace);
    write_trace(staged, to, source);
    events = trace.events.size();
    final_segments = trace.final_segments.size();
  }
  {
    // Whatever happens from here, the staged file does not outlive the command.
    struct Unstage {
      const fs::path& path;
      ~Unstage() {
        std::error_code ignored;
        fs::remove(path, ignored);
      }
    } unstage{staged};
    check_replayable(staged, input, output);
    fs::rename(staged, output);
  }
  if (to != TraceFormat::kOffsimTrace && final_segments == 0 && events > 0) {
    std::cout << "  note: the input records no final allocator state, so the snapshot's segments list is empty "
                 "(memory_viz still draws the Active Memory Timeline from the events)\n";
  }
  std::cout << "wrote " << output.string() << " (" << describe(to) << ", " << format_bytes(fs::file_size(output))
            << ")\n";
  return kExitOk;
}

}  // namespace

void add_convert_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* command = app.add_subcommand(
      "convert", "Convert between PyTorch memory snapshots (_dump_snapshot pickle, JSON) and offsim traces (.otrace)");
  command->add_option("IN", options->input, "input: snapshot pickle, snapshot JSON or .otrace (recognised by content)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("OUT", options->output, "output: .pickle/.pkl, .json or .otrace (chosen by extension)")->required();
  command->add_option("--device", options->device,
                      "device whose trace to read from a snapshot (default: the first with trace entries; convert says "
                      "which it kept and which it dropped)")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--no-rewind", options->no_rewind,
                    "do not reconstruct the starting state from the dump-time segments (the trace then has none)");
  command->add_option("--fallible-frame", options->fallible_frames,
                      "flag allocations fallible whose stack has a frame (function or file name) containing TEXT "
                      "(snapshot input; the flag is kept in every output format; repeatable)")
      ->allow_extra_args(false);
  command->callback([options, &exit_code] { exit_code = run(*options); });
}

}  // namespace offsim::cli
