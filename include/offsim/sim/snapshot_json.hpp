// PyTorch memory snapshots in JSON form: the same document as the pickle ({"segments", "device_traces",
// "allocator_settings"}), e.g. json.dump(pickle.load(f)); MemoryViz.js opens it too (it tries JSON
// before pickle). Tuples (segment_pool_id) are lists in JSON.
#pragma once

#include <filesystem>
#include <string>

#include "offsim/sim/snapshot_document.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

/// Reads one device's trace. Throws ParseError(file, byte offset, what was expected) for malformed input.
Trace read_snapshot_json(const std::filesystem::path& path, const SnapshotReadOptions& options = {});
/// The same from bytes in memory; `source` names them in messages.
Trace read_snapshot_json_bytes(std::string bytes, const std::string& source,
                               const SnapshotReadOptions& options = {});

/// Writes a snapshot JSON file that Python's json.load and PyTorch's memory_viz open, atomically.
void write_snapshot_json(const std::filesystem::path& path, TraceEventSource& source);
void write_snapshot_json(const std::filesystem::path& path, const Trace& trace);
/// The same into memory.
std::string snapshot_json_bytes(const Trace& trace);

}  // namespace offsim::sim
