#include "offsim/sim/snapshot_json.hpp"

#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/json_value_reader.hpp"
#include "offsim/sim/json_stream_writer.hpp"

namespace offsim::sim {

Trace read_snapshot_json(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  ByteReader input(path);
  return read_snapshot_document(input, read_json_value, options);
}

Trace read_snapshot_json_bytes(std::string bytes, const std::string& source, const SnapshotReadOptions& options) {
  ByteReader input(source, std::move(bytes));
  return read_snapshot_document(input, read_json_value, options);
}

void write_snapshot_json(const std::filesystem::path& path, TraceEventSource& source) {
  write_snapshot_file<JsonStreamWriter>(path, source);
}

void write_snapshot_json(const std::filesystem::path& path, const Trace& trace) {
  TraceVectorSource source(trace);
  write_snapshot_file<JsonStreamWriter>(path, source);
}

std::string snapshot_json_bytes(const Trace& trace) { return snapshot_document_bytes<JsonStreamWriter>(trace); }

}  // namespace offsim::sim
