// A whole memory snapshot document ({"segments", "device_traces", "allocator_settings", ...}) to and from a
// Trace, independent of whether it is stored as a pickle (snapshot_pickle.hpp) or as JSON
// (snapshot_json.hpp).
//
// Reading: trace entries are converted as the reader places them (SnapshotDecoder is the reader's
// PickleItemSink), so a snapshot's device_traces never exist as a value tree; everything else is small.
// Then one device is picked, and because a snapshot is partial (the ring buffer keeps the last
// max_entries entries and `segments` is the state at dump time) the state before the first recorded
// entry is reconstructed by undoing the entries from the dump-time state (segment_state.hpp), and the
// trace says so (metadata.reconstructed_initial_state and provenance notes).
//
// Writing: device_traces first (streamed from the source), then segments (the source's final state,
// known only after its last event), allocator_settings and offsim_metadata (offsim's provenance; PyTorch's
// viewer ignores unknown keys). Key order does not matter to pickle.load, json.load or MemoryViz.js.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/pickle_reader.hpp"
#include "offsim/sim/snapshot_codec.hpp"
#include "offsim/sim/structured_writer.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

struct SnapshotReadOptions {
  int device = 0;
  /// Reconstruct initial_segments by rewinding final_segments through the events (the default). Off, the
  /// trace has no initial state (final_segments is still filled).
  bool reconstruct_initial_state = true;
  /// Marks allocations fallible from their stacks: an `alloc` entry with a frame whose function or file name
  /// contains one of these texts (e.g. "tiled_decode" for diffusers' tiled-decode retry, "cudnn" for a
  /// convolution workspace) gets kTraceFlagFallible, so that its failure in a replay is a handled OOM.
  /// PyTorch records frames with _record_memory_history(stacks="python" or "all"); a snapshot without them
  /// matches nothing, and the trace's notes say so.
  std::vector<std::string> fallible_frames;
  /// Called now and then with the byte offset reached in the file (a progress display).
  std::function<void(std::uint64_t)> progress;
};

class SnapshotDecoder : public PickleItemSink {
 public:
  SnapshotDecoder(std::string source, SnapshotReadOptions options);

  /// Takes trace-entry dicts (dicts with an "action" key) out of any list and converts them at once.
  bool take(const PickleList& list, const PickleValue& item, std::uint64_t item_offset) override;

  /// Builds options.device's trace from the document root once the reader is done.
  Trace finish(const PickleValue& root);
  /// Builds the trace of `only`, or of every device with trace entries or segments (device 0 if none has
  /// any), each rewound on its own.
  std::vector<Trace> finish_devices(const PickleValue& root, std::optional<int> only);

 private:
  std::string source_;
  SnapshotReadOptions options_;
  SnapshotDecodeNotes notes_;
  // One device's entries, by the list that holds them (a device is known only once the document is read).
  struct DeviceEntries {
    std::vector<TraceEvent> events;
    std::uint64_t allocs_with_frames = 0;    // alloc entries with a non-empty frames list
    std::uint64_t flagged_by_frames = 0;     // of those, flagged fallible by options.fallible_frames
  };
  std::unordered_map<const PickleList*, DeviceEntries> entries_by_list_;

  void note_fallible_frames(TraceMetadata& metadata, const DeviceEntries* entries) const;
  /// Reconstructs trace.initial_segments from its final segments and events (options.reconstruct_initial_state).
  void rewind(Trace& trace) const;
};

/// Writes the snapshot document of `source` (one device: metadata().device; lists for lower devices are
/// empty) and finishes the writer.
void write_snapshot_document(StructuredWriter& writer, TraceEventSource& source);

/// A reader of one plain-value document: read_pickle or read_json_value.
using PlainValueParser = PickleValue (*)(ByteReader&, PickleItemSink*, const PickleReadLimits&);

/// Reads a snapshot document with `parse`, a SnapshotDecoder taking the trace entries as they are read.
Trace read_snapshot_document(ByteReader& input, PlainValueParser parse, const SnapshotReadOptions& options);
/// The same for every device with trace entries or segments (options.device is not used).
std::vector<Trace> read_snapshot_document_devices(ByteReader& input, PlainValueParser parse,
                                                  const SnapshotReadOptions& options);

/// Writes the document of `source` atomically to `path` with a `Writer` (PickleWriter, JsonStreamWriter).
template <typename Writer>
void write_snapshot_file(const std::filesystem::path& path, TraceEventSource& source) {
  AtomicOutputFile output(path);
  Writer writer(output);
  write_snapshot_document(writer, source);
  output.commit();
}

/// The document of `trace` in memory.
template <typename Writer>
std::string snapshot_document_bytes(const Trace& trace) {
  StringByteSink output;
  Writer writer(output);
  TraceVectorSource source(trace);
  write_snapshot_document(writer, source);
  return output.take();
}

/// Summary line of what a read snapshot contained, e.g. for `offsim convert`: events per action,
/// segments, and whether the initial state was reconstructed.
std::string describe_trace(const Trace& trace);

}  // namespace offsim::sim
