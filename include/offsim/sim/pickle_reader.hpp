// A pickle reader for plain data, without Python or libtorch: the opcodes that Python's pickle
// (protocols 2-5) emits for dict/list/tuple/str/bytes/int/float/bool/None, and what the TorchScript
// pickler emits (torch/csrc/jit/serialization/pickler.cpp, used by
// torch::cuda::_memory_snapshot_pickled(): protocol 2, BINPUT/LONG_BINPUT memo, LONG1 with 8 bytes for
// int64, one MARK..APPENDS per list, and in older releases every dict and list wrapped as
// GLOBAL torch.jit._pickle.restore_type_tag + REDUCE).
//
// It is a stack machine like pickle's own Unpickler, with bounds: nesting depth, memo indices, lengths
// checked against the bytes that remain, and no reference cycles (a container cannot change once it has
// been placed in another one; plain-data pickles never need that). Everything else (objects, sets,
// persistent ids, protocol-0 text opcodes, out-of-band buffers) is rejected with a ParseError naming the
// file, the byte offset and what was expected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/pickle_value.hpp"

namespace offsim::sim {

struct PickleReadLimits {
  std::uint32_t max_depth = 128;  // a memory snapshot nests 6 deep (root, traces, device, entry, frames, frame)
};

/// Receives list items as the reader places them into lists (APPEND/APPENDS), so that a consumer can
/// convert and drop them instead of keeping a whole list in memory (device_traces of a large snapshot).
/// The reader also offers items early when one MARK region of a list grows long, because the TorchScript
/// pickler writes a whole list as one MARK ... APPENDS; if such a region then ends in anything other than
/// APPENDS into that list, reading fails.
class PickleItemSink {
 public:
  virtual ~PickleItemSink() = default;
  /// `item` (which started at byte `item_offset`) is going into `list`. Return true to take it: the list
  /// then only counts it (PickleContainerInfo::streamed_items) and the memo entry that refers to the item
  /// is released, so later references to it read as PickleValue::released().
  virtual bool take(const PickleList& list, const PickleValue& item, std::uint64_t item_offset) = 0;
};

/// Reads one pickle from `input`, which must end right after the STOP opcode.
PickleValue read_pickle(ByteReader& input, PickleItemSink* sink = nullptr, const PickleReadLimits& limits = {});
PickleValue read_pickle_file(const std::filesystem::path& path, PickleItemSink* sink = nullptr,
                             const PickleReadLimits& limits = {});
/// `source` names the bytes in messages.
PickleValue read_pickle_bytes(std::string bytes, std::string source = "<bytes>", PickleItemSink* sink = nullptr,
                              const PickleReadLimits& limits = {});

/// True when `first_bytes` start like a pickle of protocol 2 or later (PROTO opcode 0x80, version 2..5).
bool looks_like_pickle(std::string_view first_bytes);

}  // namespace offsim::sim
