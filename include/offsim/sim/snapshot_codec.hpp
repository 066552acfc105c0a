// The mapping between PyTorch's memory-snapshot vocabulary (torch.cuda.memory._snapshot(), spec section
// 9.2) and offsim's data model, in both directions, for one segment, one trace entry and offsim's trace
// metadata. Pickle and JSON snapshots and offsim's own format all use it, so a field means the same
// thing everywhere.
//
// Decoding checks types and ranges and throws ParseError(source, byte offset of the enclosing container,
// "<path>: expected ..."). Fields that older PyTorch releases did not write are accepted as the viewer
// (MemoryViz.js annotate_snapshot) accepts them: a block without requested_size takes its 2.0-era
// history[0].real_size or else its size; a block without address follows the previous block; a segment
// without segment_type is small when it is 2 MiB; a missing segment_pool_id is the default pool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/pickle_value.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/structured_writer.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

/// What a decoder needs to name a problem: the file, the value's path inside the document and the byte
/// offset of the enclosing container. Places chain to their parent and build the path text only when a
/// problem is reported, so decoding millions of trace entries allocates nothing for it. A place must
/// not outlive its parent; `key` must outlive the place (literals and dict keys do).
struct DecodePlace {
  const std::string& source;
  std::uint64_t offset = 0;
  const DecodePlace* parent = nullptr;
  std::string_view key;                // a dict key, or empty when `index` is used
  std::optional<std::uint64_t> index;  // a list position

  DecodePlace at(std::string_view child, const PickleValue* value = nullptr) const;
  DecodePlace at(std::uint64_t position, const PickleValue* value = nullptr) const;
  /// "segments[3].blocks[2]"; "top level" for the root.
  std::string path() const;
  [[noreturn]] void fail(const std::string& what) const;
};

/// Counts of lenient decoding, reported in the trace's provenance notes.
struct SnapshotDecodeNotes {
  std::uint64_t legacy_free_entries = 0;     // 2.0-era "free" action, read as free_completed
  std::uint64_t annotate_entries = 0;        // "annotate" entries (no allocator effect), skipped
  std::uint64_t entries_without_time = 0;    // no time_us (before ~2.4): time 0
  std::uint64_t entries_without_stream = 0;  // no stream: default stream 0
  std::uint64_t blocks_from_history = 0;     // 2.0-era blocks: requested_size from history / size
};

/// `value` must be a dict in snapshot Segment form. `device` filters nothing; it is only checked.
SegmentInfo decode_segment(const PickleValue& value, const DecodePlace& place, SnapshotDecodeNotes& notes);
/// A snapshot TraceEntry dict; nullopt for entries that have no allocator meaning ("annotate").
std::optional<TraceEvent> decode_trace_entry(const PickleValue& value, const DecodePlace& place,
                                             SnapshotDecodeNotes& notes);
/// offsim's metadata dict (encode_metadata's form). Unknown keys are ignored, known keys type-checked.
TraceMetadata decode_metadata(const PickleValue& value, const DecodePlace& place);

/// Segments of one device must be disjoint; throws via `place` naming the first overlap. Sorts by address.
void sort_and_check_disjoint(std::vector<SegmentInfo>& segments, const DecodePlace& place);

void encode_segment(StructuredWriter& writer, const SegmentInfo& segment);
/// Writes frames=[] (offsim keeps no stacks) and, for oom, device_free instead of addr, as PyTorch does.
void encode_trace_entry(StructuredWriter& writer, const TraceEvent& event);
void encode_metadata(StructuredWriter& writer, const TraceMetadata& metadata);
void encode_segments(StructuredWriter& writer, const std::vector<SegmentInfo>& segments);

/// Unsigned integer field of a dict (int, or a big int below 2^64); throws via `place` when missing,
/// negative or of another type.
std::uint64_t require_uint(const PickleDict& dict, std::string_view key, const DecodePlace& place);
const PickleValue& require_key(const PickleDict& dict, std::string_view key, const DecodePlace& place);
const PickleDict& require_dict(const PickleValue& value, const DecodePlace& place);
const std::vector<PickleValue>& require_list(const PickleValue& value, const DecodePlace& place);

}  // namespace offsim::sim
