#include "offsim/sim/snapshot_pickle.hpp"

#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/pickle_writer.hpp"

namespace offsim::sim {

Trace read_snapshot_pickle(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  ByteReader input(path);
  return read_snapshot_document(input, read_pickle, options);
}

Trace read_snapshot_pickle_bytes(std::string bytes, const std::string& source, const SnapshotReadOptions& options) {
  ByteReader input(source, std::move(bytes));
  return read_snapshot_document(input, read_pickle, options);
}

void write_snapshot_pickle(const std::filesystem::path& path, TraceEventSource& source) {
  write_snapshot_file<PickleWriter>(path, source);
}

void write_snapshot_pickle(const std::filesystem::path& path, const Trace& trace) {
  TraceVectorSource source(trace);
  write_snapshot_file<PickleWriter>(path, source);
}

std::string snapshot_pickle_bytes(const Trace& trace) { return snapshot_document_bytes<PickleWriter>(trace); }

}  // namespace offsim::sim
