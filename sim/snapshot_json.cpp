#include "offsim/sim/snapshot_json.hpp"

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/json_value_reader.hpp"
#include "offsim/sim/json_stream_writer.hpp"

namespace offsim::sim {

namespace {
Trace read_from(ByteReader& input, const SnapshotReadOptions& options) {
  SnapshotDecoder decoder(input.source(), options);
  const PickleValue root = read_json_value(input, &decoder);
  return decoder.finish(root);
}
}  // namespace

Trace read_snapshot_json(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  ByteReader input(path);
  return read_from(input, options);
}

Trace read_snapshot_json_bytes(std::string bytes, const std::string& source, const SnapshotReadOptions& options) {
  ByteReader input(source, std::move(bytes));
  return read_from(input, options);
}

void write_snapshot_json(const std::filesystem::path& path, TraceEventSource& source) {
  AtomicOutputFile output(path);
  JsonStreamWriter writer(output);
  write_snapshot_document(writer, source);
  output.commit();
}

void write_snapshot_json(const std::filesystem::path& path, const Trace& trace) {
  TraceVectorSource source(trace);
  write_snapshot_json(path, source);
}

std::string snapshot_json_bytes(const Trace& trace) {
  StringByteSink output;
  JsonStreamWriter writer(output);
  TraceVectorSource source(trace);
  write_snapshot_document(writer, source);
  return output.take();
}

}  // namespace offsim::sim
