// `offsim convert IN OUT [--device N]`: between PyTorch memory snapshots (the _dump_snapshot() pickle
// and its JSON form) and offsim's own trace format. The input format is recognised by its content, the
// output format by OUT's extension (.pickle/.pkl, .json, .otrace). An .otrace input is streamed to the
// output event by event; a snapshot is read whole (its trace entries are converted as they are read) so
// that its starting state can be reconstructed. Outputs are written atomically.
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

int run(const ConvertOptions& options) {
  const fs::path input = options.input;
  const fs::path output = options.output;
  const TraceFormat from = detect_trace_format(input);
  const TraceFormat to = from_command_line([&] { return trace_format_for_output(output); });
  std::size_t final_segments = 0;
  std::uint64_t events = 0;
  SnapshotReadOptions read_options;
  read_options.device = options.device.value_or(0);
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
    write_trace(output, to, watched);
    progress.finish();
    events = reader.events_read();
    final_segments = reader.final_segments().size();
    std::cout << "  " << events << " events, " << reader.initial_segments().size() << " segments at the start, "
              << final_segments << " at the end\n";
  } else {
    Progress reading("read (bytes)", fs::file_size(input), false);
    read_options.progress = [&reading](std::uint64_t offset) { reading.update(offset); };
    const Trace trace = from == TraceFormat::kSnapshotPickle ? read_snapshot_pickle(input, read_options)
                                                             : read_snapshot_json(input, read_options);
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
    write_trace(output, to, source);
    events = trace.events.size();
    final_segments = trace.final_segments.size();
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
  command->add_option("--device", options->device, "device whose trace to read from a snapshot (default 0)")
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
