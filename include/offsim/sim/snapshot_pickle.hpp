// PyTorch memory snapshots as pickles: what torch.cuda.memory._dump_snapshot() writes (pickle.dump of
// torch.cuda.memory._snapshot(), Python's default protocol) and what torch::cuda::_memory_snapshot_pickled()
// writes (TorchScript pickler, protocol 2). See snapshot_document.hpp for what is read and written.
#pragma once

#include <filesystem>
#include <string>

#include "offsim/sim/snapshot_document.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

/// Reads one device's trace. Throws ParseError(file, byte offset, what was expected) for malformed input.
Trace read_snapshot_pickle(const std::filesystem::path& path, const SnapshotReadOptions& options = {});
/// The same from bytes in memory; `source` names them in messages.
Trace read_snapshot_pickle_bytes(std::string bytes, const std::string& source,
                                 const SnapshotReadOptions& options = {});

/// Writes a snapshot pickle that Python's pickle.load and PyTorch's memory_viz open, atomically.
void write_snapshot_pickle(const std::filesystem::path& path, TraceEventSource& source);
void write_snapshot_pickle(const std::filesystem::path& path, const Trace& trace);
/// The same into memory.
std::string snapshot_pickle_bytes(const Trace& trace);

}  // namespace offsim::sim
