// The three trace formats offsim reads and writes, recognised in one place: PyTorch's snapshot pickle
// (torch.cuda.memory._dump_snapshot), the same structure as JSON, and offsim's streaming .otrace.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "offsim/sim/snapshot_document.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

enum class TraceFormat { kSnapshotPickle, kSnapshotJson, kOffsimTrace };

/// "PyTorch snapshot pickle", "PyTorch snapshot JSON", "offsim trace".
std::string_view describe(TraceFormat format);

/// Recognises a file by its first bytes. Throws ParseError naming the file when it is none of the three.
TraceFormat detect_trace_format(const std::filesystem::path& path);
/// The format an output file gets from its extension (.pickle/.pkl, .json, .otrace); throws ConfigError.
TraceFormat trace_format_for_output(const std::filesystem::path& path);

/// Throws ConfigError naming `path` when `options` ask for what only a snapshot holds (stack frames, for
/// fallible_frames) and `path` is in `format` offsim's trace, which keeps none.
void require_snapshot_for(const std::filesystem::path& path, TraceFormat format, const SnapshotReadOptions& options);
/// Reads a whole trace of any format (snapshots: `options` picks the device and the rewind).
Trace read_trace(const std::filesystem::path& path, const SnapshotReadOptions& options = {});
/// Every device's trace in a file: each device of a snapshot with trace entries or segments (options.device
/// is not used), or the one trace of an offsim trace. What `offsim replay` replays by default.
std::vector<Trace> read_trace_devices(const std::filesystem::path& path, const SnapshotReadOptions& options = {});
/// Writes `source` in `format`, atomically.
void write_trace(const std::filesystem::path& path, TraceFormat format, TraceEventSource& source);

}  // namespace offsim::sim
