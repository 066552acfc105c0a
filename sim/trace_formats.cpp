#include "offsim/sim/trace_formats.hpp"

#include <fstream>

#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/json_value_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "offsim/sim/trace_file.hpp"

namespace offsim::sim {

std::string_view describe(TraceFormat format) {
  switch (format) {
    case TraceFormat::kSnapshotPickle: return "PyTorch snapshot pickle";
    case TraceFormat::kSnapshotJson: return "PyTorch snapshot JSON";
    case TraceFormat::kOffsimTrace: return "offsim trace";
  }
  return "";
}

TraceFormat detect_trace_format(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open for reading");
  std::string head(16, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  if (looks_like_trace_file(head)) return TraceFormat::kOffsimTrace;
  if (looks_like_pickle(head)) return TraceFormat::kSnapshotPickle;
  if (looks_like_json(head)) return TraceFormat::kSnapshotJson;
  throw ParseError(path.string(), 0,
                   "unrecognised format: expected a PyTorch memory snapshot pickle (bytes 0x80 0x02..0x05), its JSON "
                   "form ('{') or an offsim trace (\\x89OTRACE\\n)");
}

TraceFormat trace_format_for_output(const std::filesystem::path& path) {
  const std::string extension = path.extension().string();
  if (extension == ".pickle" || extension == ".pkl") return TraceFormat::kSnapshotPickle;
  if (extension == ".json") return TraceFormat::kSnapshotJson;
  if (extension == ".otrace") return TraceFormat::kOffsimTrace;
  throw ConfigError(path.string() + ": cannot tell the output format from the extension \"" + extension +
                    "\" (expected .pickle or .pkl, .json, or .otrace)");
}

void require_snapshot_for(const std::filesystem::path& path, TraceFormat format, const SnapshotReadOptions& options) {
  if (format == TraceFormat::kOffsimTrace && !options.fallible_frames.empty()) {
    throw ConfigError(path.string() + ": an offsim trace keeps no stack frames, so allocations cannot be marked "
                      "fallible by frame; mark them when converting the snapshot it came from "
                      "(offsim convert --fallible-frame)");
  }
}

Trace read_trace(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  switch (detect_trace_format(path)) {
    case TraceFormat::kOffsimTrace:
      require_snapshot_for(path, TraceFormat::kOffsimTrace, options);
      return read_trace_file(path);
    case TraceFormat::kSnapshotPickle: return read_snapshot_pickle(path, options);
    case TraceFormat::kSnapshotJson: return read_snapshot_json(path, options);
  }
  return {};
}

std::vector<Trace> read_trace_devices(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  const TraceFormat format = detect_trace_format(path);
  if (format == TraceFormat::kOffsimTrace) {
    std::vector<Trace> one;
    one.push_back(read_trace(path, options));
    return one;
  }
  ByteReader input(path);
  return read_snapshot_document_devices(input, format == TraceFormat::kSnapshotPickle ? read_pickle : read_json_value,
                                        options);
}

void write_trace(const std::filesystem::path& path, TraceFormat format, TraceEventSource& source) {
  switch (format) {
    case TraceFormat::kSnapshotPickle: write_snapshot_pickle(path, source); return;
    case TraceFormat::kSnapshotJson: write_snapshot_json(path, source); return;
    case TraceFormat::kOffsimTrace: write_trace_file(path, source); return;
  }
}

}  // namespace offsim::sim
