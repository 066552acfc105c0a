#include "offsim/sim/snapshot_pickle.hpp"

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/pickle_writer.hpp"

namespace offsim::sim {

namespace {
Trace read_from(ByteReader& input, const SnapshotReadOptions& options) {
  SnapshotDecoder decoder(input.source(), options);
  const PickleValue root = read_pickle(input, &decoder);
  return decoder.finish(root);
}
}  // namespace

Trace read_snapshot_pickle(const std::filesystem::path& path, const SnapshotReadOptions& options) {
  ByteReader input(path);
  return read_from(input, options);
}

Trace read_snapshot_pickle_bytes(std::string bytes, const std::string& source, const SnapshotReadOptions& options) {
  ByteReader input(source, std::move(bytes));
  return read_from(input, options);
}

void write_snapshot_pickle(const std::filesystem::path& path, TraceEventSource& source) {
  AtomicOutputFile output(path);
  PickleWriter writer(output);
  write_snapshot_document(writer, source);
  output.commit();
}

void write_snapshot_pickle(const std::filesystem::path& path, const Trace& trace) {
  TraceVectorSource source(trace);
  write_snapshot_pickle(path, source);
}

std::string snapshot_pickle_bytes(const Trace& trace) {
  StringByteSink output;
  PickleWriter writer(output);
  TraceVectorSource source(trace);
  write_snapshot_document(writer, source);
  return output.take();
}

}  // namespace offsim::sim
