#include "offsim/sim/snapshot_codec.hpp"

#include <algorithm>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

using Kind = PickleValue::Kind;

std::string found(const PickleValue& value) {
  if (value.kind() == Kind::kReleased) return "a reference to a trace entry that was already streamed";
  return std::string(value.type_name());
}

std::optional<std::uint64_t> as_uint(const PickleValue& value) {
  if (value.kind() == Kind::kInt && value.as_int() >= 0) return static_cast<std::uint64_t>(value.as_int());
  if (value.kind() == Kind::kBigInt) return value.as_big_int().to_uint64();
  if (value.kind() == Kind::kBool) return value.as_bool() ? 1 : 0;  // Python bools are ints
  return std::nullopt;
}

std::uint64_t uint_of(const PickleValue& value, const DecodePlace& place) {
  if (auto number = as_uint(value)) return *number;
  if (value.kind() == Kind::kBigInt && !value.as_big_int().negative()) {
    place.fail("expected an int below 2^64, found " + value.as_big_int().to_decimal());
  }
  if (value.kind() == Kind::kInt || value.kind() == Kind::kBigInt) place.fail("expected an int >= 0, found a negative int");
  place.fail("expected an int >= 0, found " + found(value));
}

const std::string& str_of(const PickleValue& value, const DecodePlace& place) {
  if (value.kind() != Kind::kStr) place.fail("expected a str, found " + found(value));
  return value.as_str();
}

bool bool_of(const PickleValue& value, const DecodePlace& place) {
  if (value.kind() != Kind::kBool) place.fail("expected a bool, found " + found(value));
  return value.as_bool();
}

std::string optional_str(const PickleDict& dict, std::string_view key, const DecodePlace& place) {
  const PickleValue* value = dict.find(key);
  if (value == nullptr || value->is_none()) return {};
  return str_of(*value, place.at(key));
}

BlockState parse_block_state(const std::string& text, const DecodePlace& place) {
  if (text == "active_allocated") return BlockState::kActiveAllocated;
  // memory.py's docstring says "active_awaiting_free"; the allocator writes "active_pending_free".
  if (text == "active_pending_free" || text == "active_awaiting_free") return BlockState::kActivePendingFree;
  if (text == "inactive") return BlockState::kInactive;
  place.fail("unknown block state \"" + text + "\" (expected active_allocated, active_pending_free or inactive)");
}

std::string hex(std::uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

}  // namespace

namespace {
std::uint64_t offset_of(const PickleValue* value, std::uint64_t fallback) {
  if (value != nullptr) {
    if (const auto* info = value->container_info()) return info->offset;
  }
  return fallback;
}
}  // namespace

DecodePlace DecodePlace::at(std::string_view child, const PickleValue* value) const {
  return DecodePlace{source, offset_of(value, offset), this, child, std::nullopt};
}

DecodePlace DecodePlace::at(std::uint64_t position, const PickleValue* value) const {
  return DecodePlace{source, offset_of(value, offset), this, {}, position};
}

std::string DecodePlace::path() const {
  std::string text = parent != nullptr ? parent->path() : std::string();
  if (index) return text + "[" + std::to_string(*index) + "]";
  if (key.empty()) return text;
  return text.empty() ? std::string(key) : text + "." + std::string(key);
}

void DecodePlace::fail(const std::string& what) const {
  const std::string where = path();
  throw ParseError(source, offset, (where.empty() ? std::string("top level") : where) + ": " + what);
}

const PickleValue& require_key(const PickleDict& dict, std::string_view key, const DecodePlace& place) {
  const PickleValue* value = dict.find(key);
  if (value == nullptr) place.fail("missing key \"" + std::string(key) + "\"");
  return *value;
}

std::uint64_t require_uint(const PickleDict& dict, std::string_view key, const DecodePlace& place) {
  return uint_of(require_key(dict, key, place), place.at(key));
}

const PickleDict& require_dict(const PickleValue& value, const DecodePlace& place) {
  if (value.kind() != Kind::kDict) place.fail("expected a dict, found " + found(value));
  return value.as_dict();
}

const std::vector<PickleValue>& require_list(const PickleValue& value, const DecodePlace& place) {
  if (value.kind() == Kind::kList) return value.as_list().items;
  if (value.kind() == Kind::kTuple) return value.as_tuple().items;
  place.fail("expected a list, found " + found(value));
}

SegmentInfo decode_segment(const PickleValue& value, const DecodePlace& place, SnapshotDecodeNotes& notes) {
  const PickleDict& dict = require_dict(value, place);
  SegmentInfo segment;
  const PickleValue& device = require_key(dict, "device", place);
  const std::uint64_t device_index = uint_of(device, place.at("device"));
  if (device_index > 1'000'000) place.at("device").fail("device index " + std::to_string(device_index) + " is not plausible");
  segment.device = static_cast<int>(device_index);
  segment.address = require_uint(dict, "address", place);
  segment.total_size = require_uint(dict, "total_size", place);
  if (segment.total_size == 0) place.at("total_size").fail("expected a segment size > 0");
  if (segment.address + segment.total_size < segment.address) place.fail("address + total_size overflows 64 bits");
  if (const PickleValue* stream = dict.find("stream")) segment.stream = uint_of(*stream, place.at("stream"));
  if (const PickleValue* type = dict.find("segment_type")) {
    const std::string& text = str_of(*type, place.at("segment_type"));
    if (text != "small" && text != "large") {
      place.at("segment_type").fail("expected \"small\" or \"large\", found \"" + text + "\"");
    }
    segment.is_small = text == "small";
  } else {
    segment.is_small = segment.total_size == kSmallBuffer;
  }
  if (const PickleValue* pool = dict.find("segment_pool_id"); pool != nullptr && !pool->is_none()) {
    const DecodePlace pool_place = place.at("segment_pool_id", pool);
    const auto& items = require_list(*pool, pool_place);
    if (items.size() != 2) pool_place.fail("expected two ints (owner, id), found " + std::to_string(items.size()) + " items");
    segment.pool_id = {uint_of(items[0], pool_place.at(std::uint64_t{0})), uint_of(items[1], pool_place.at(std::uint64_t{1}))};
  }
  if (const PickleValue* expandable = dict.find("is_expandable")) {
    segment.is_expandable = bool_of(*expandable, place.at("is_expandable"));
  }

  const PickleValue& blocks_value = require_key(dict, "blocks", place);
  const DecodePlace blocks_place = place.at("blocks", &blocks_value);
  const auto& blocks = require_list(blocks_value, blocks_place);
  std::uint64_t cursor = segment.address;
  const std::uint64_t end = segment.address + segment.total_size;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const DecodePlace block_place = blocks_place.at(std::uint64_t{i}, &blocks[i]);
    const PickleDict& block_dict = require_dict(blocks[i], block_place);
    BlockInfo block;
    block.size = require_uint(block_dict, "size", block_place);
    const PickleValue* address = block_dict.find("address");
    if (address == nullptr) address = block_dict.find("addr");  // the viewer's annotated form
    block.address = address != nullptr ? uint_of(*address, block_place.at("address")) : cursor;
    if (block.address != cursor) {
      block_place.fail("block at " + hex(block.address) + " does not follow the previous block (expected " + hex(cursor) +
                       "): blocks must tile their segment in address order");
    }
    if (block.size == 0 || block.address + block.size > end || block.address + block.size < block.address) {
      block_place.fail("block of " + std::to_string(block.size) + " bytes at " + hex(block.address) +
                       " does not fit in its segment [" + hex(segment.address) + ", " + hex(end) + ")");
    }
    block.state = parse_block_state(str_of(require_key(block_dict, "state", block_place), block_place.at("state")), block_place.at("state"));
    if (const PickleValue* requested = block_dict.find("requested_size")) {
      block.requested_size = uint_of(*requested, block_place.at("requested_size"));
    } else {
      // 2.0-era snapshots: the request lives in history[0].real_size (MemoryViz.js annotate_snapshot).
      ++notes.blocks_from_history;
      block.requested_size = block.size;
      if (const PickleValue* history = block_dict.find("history"); history != nullptr) {
        const DecodePlace history_place = block_place.at("history", history);
        const auto& entries = require_list(*history, history_place);
        if (!entries.empty()) {
          const PickleDict& first = require_dict(entries[0], history_place.at(std::uint64_t{0}, &entries[0]));
          if (first.find("real_size") != nullptr) {
            block.requested_size = require_uint(first, "real_size", history_place.at(std::uint64_t{0}, &entries[0]));
          }
        }
      }
    }
    cursor = block.address + block.size;
    if (block.state != BlockState::kInactive) {
      segment.active_size += block.size;
      segment.requested_size += block.requested_size;
      if (block.state == BlockState::kActiveAllocated) segment.allocated_size += block.size;
    }
    segment.blocks.push_back(block);
  }
  if (cursor != end) {
    blocks_place.fail("blocks cover " + std::to_string(cursor - segment.address) + " bytes of a " +
                      std::to_string(segment.total_size) + "-byte segment (expected them to tile it)");
  }
  // The recorded totals must agree with the blocks (they are sums over them in PyTorch).
  const auto check_total = [&](std::string_view key, std::uint64_t counted) {
    if (const PickleValue* recorded = dict.find(key)) {
      const std::uint64_t number = uint_of(*recorded, place.at(key));
      if (number != counted) {
        place.at(key).fail("records " + std::to_string(number) + " bytes but its blocks add up to " +
                                        std::to_string(counted));
      }
    }
  };
  check_total("allocated_size", segment.allocated_size);
  check_total("active_size", segment.active_size);
  return segment;
}

std::optional<TraceEvent> decode_trace_entry(const PickleValue& value, const DecodePlace& place,
                                             SnapshotDecodeNotes& notes) {
  const PickleDict& dict = require_dict(value, place);
  const std::string& action = str_of(require_key(dict, "action", place), place.at("action"));
  TraceEvent event;
  if (auto parsed = parse_trace_action(action)) {
    event.action = *parsed;
  } else if (action == "free") {
    // 2.0-era traces had one "free" entry; the viewer treats it like free_completed.
    event.action = TraceAction::kFreeCompleted;
    ++notes.legacy_free_entries;
  } else if (action == "annotate") {
    ++notes.annotate_entries;
    return std::nullopt;
  } else {
    place.at("action").fail("unknown action \"" + action +
                            "\" (expected alloc, free_requested, free_completed, segment_alloc, segment_free, "
                            "segment_map, segment_unmap, oom or snapshot)");
  }
  if (event.action == TraceAction::kOom) {
    // PyTorch stores the device's free bytes under device_free instead of addr for oom entries.
    event.addr = dict.find("device_free") != nullptr ? require_uint(dict, "device_free", place)
                                                     : require_uint(dict, "addr", place);
  } else {
    event.addr = require_uint(dict, "addr", place);
  }
  event.size = require_uint(dict, "size", place);
  if (event.action == TraceAction::kAlloc && event.size >= kMaxTraceRequest) {
    place.at("size").fail("an alloc of " + std::to_string(event.size) + " bytes is 1 EiB or more, which PyTorch refuses "
                          "before recording it (\"Tried to allocate more than 1EB memory\")");
  }
  if (const PickleValue* stream = dict.find("stream")) {
    event.stream = uint_of(*stream, place.at("stream"));
  } else {
    ++notes.entries_without_stream;
  }
  if (const PickleValue* time = dict.find("time_us"); time != nullptr && !time->is_none()) {
    if (time->kind() == Kind::kBigInt) {
      place.at("time_us").fail("expected microseconds in int64's range (below 2^63), found " +
                               time->as_big_int().to_decimal());
    }
    if (time->kind() != Kind::kInt) place.at("time_us").fail("expected an int, found " + found(*time));
    event.time_us = time->as_int();
  } else {
    ++notes.entries_without_time;
  }
  if (const PickleValue* flags = dict.find("offsim_flags")) {
    const std::uint64_t bits = uint_of(*flags, place.at("offsim_flags"));
    if ((bits & ~std::uint64_t{kTraceFlagFallible}) != 0) {
      place.at("offsim_flags").fail("unknown flag bits " + std::to_string(bits) + " (expected 0 or 1 = fallible)");
    }
    event.flags = static_cast<std::uint8_t>(bits);
  }
  return event;
}

TraceMetadata decode_metadata(const PickleValue& value, const DecodePlace& place) {
  const PickleDict& dict = require_dict(value, place);
  TraceMetadata metadata;
  metadata.label = optional_str(dict, "label", place);
  metadata.alloc_conf = optional_str(dict, "alloc_conf", place);
  if (const PickleValue* total = dict.find("device_total_bytes")) {
    metadata.device_total_bytes = uint_of(*total, place.at("device_total_bytes"));
  }
  if (const PickleValue* device = dict.find("device")) {
    const std::uint64_t index = uint_of(*device, place.at("device"));
    if (index > 1'000'000) place.at("device").fail("device index " + std::to_string(index) + " is not plausible");
    metadata.device = static_cast<int>(index);
  }
  if (const PickleValue* flag = dict.find("reconstructed_initial_state")) {
    metadata.reconstructed_initial_state = bool_of(*flag, place.at("reconstructed_initial_state"));
  }
  if (const PickleValue* provenance_value = dict.find("provenance")) {
    const DecodePlace provenance_place = place.at("provenance", provenance_value);
    const PickleDict& provenance = require_dict(*provenance_value, provenance_place);
    Provenance& out = metadata.provenance;
    if (const PickleValue* kind = provenance.find("kind")) {
      const std::string& text = str_of(*kind, provenance_place.at("kind"));
      auto parsed = parse_provenance_kind(text);
      if (!parsed) {
        provenance_place.at("kind").fail("unknown provenance \"" + text +
                                         "\" (expected gpu-measured, published, cpu-recorded or synthetic)");
      }
      out.kind = *parsed;
    }
    out.source = optional_str(provenance, "source", provenance_place);
    out.citation = optional_str(provenance, "citation", provenance_place);
    out.gpu = optional_str(provenance, "gpu", provenance_place);
    out.torch_version = optional_str(provenance, "torch_version", provenance_place);
    out.driver = optional_str(provenance, "driver", provenance_place);
    out.command = optional_str(provenance, "command", provenance_place);
    out.date = optional_str(provenance, "date", provenance_place);
    out.license = optional_str(provenance, "license", provenance_place);
    out.notes = optional_str(provenance, "notes", provenance_place);
  }
  return metadata;
}

void sort_and_check_disjoint(std::vector<SegmentInfo>& segments, const DecodePlace& place) {
  std::sort(segments.begin(), segments.end(), [](const SegmentInfo& a, const SegmentInfo& b) { return a.address < b.address; });
  for (std::size_t i = 1; i < segments.size(); ++i) {
    if (segments[i - 1].address + segments[i - 1].total_size > segments[i].address) {
      place.fail("segment at " + hex(segments[i - 1].address) + " (" + std::to_string(segments[i - 1].total_size) +
                 " bytes) overlaps the segment at " + hex(segments[i].address));
    }
  }
}

void encode_segment(StructuredWriter& writer, const SegmentInfo& segment) {
  writer.begin_dict();
  writer.write_str("device");
  writer.write_int(segment.device);
  writer.write_str("address");
  writer.write_uint(segment.address);
  writer.write_str("total_size");
  writer.write_uint(segment.total_size);
  writer.write_str("allocated_size");
  writer.write_uint(segment.allocated_size);
  writer.write_str("active_size");
  writer.write_uint(segment.active_size);
  writer.write_str("requested_size");
  writer.write_uint(segment.requested_size);
  writer.write_str("stream");
  writer.write_uint(segment.stream);
  writer.write_str("segment_type");
  writer.write_str(segment.is_small ? "small" : "large");
  writer.write_str("segment_pool_id");
  writer.begin_tuple();
  writer.write_uint(segment.pool_id.first);
  writer.write_uint(segment.pool_id.second);
  writer.end_tuple();
  writer.write_str("is_expandable");
  writer.write_bool(segment.is_expandable);
  writer.write_str("frames");
  writer.begin_list();
  writer.end_list();
  writer.write_str("blocks");
  writer.begin_list();
  for (const BlockInfo& block : segment.blocks) {
    writer.begin_dict();
    writer.write_str("address");
    writer.write_uint(block.address);
    writer.write_str("size");
    writer.write_uint(block.size);
    writer.write_str("requested_size");
    writer.write_uint(block.requested_size);
    writer.write_str("state");
    writer.write_str(to_string(block.state));
    writer.write_str("frames");
    writer.begin_list();
    writer.end_list();
    writer.end_dict();
  }
  writer.end_list();
  writer.end_dict();
}

void encode_segments(StructuredWriter& writer, const std::vector<SegmentInfo>& segments) {
  writer.begin_list();
  for (const SegmentInfo& segment : segments) encode_segment(writer, segment);
  writer.end_list();
}

void encode_trace_entry(StructuredWriter& writer, const TraceEvent& event) {
  writer.begin_dict();
  writer.write_str("action");
  writer.write_str(to_string(event.action));
  writer.write_str(event.action == TraceAction::kOom ? "device_free" : "addr");
  writer.write_uint(event.addr);
  writer.write_str("size");
  writer.write_uint(event.size);
  writer.write_str("stream");
  writer.write_uint(event.stream);
  writer.write_str("time_us");
  writer.write_int(event.time_us);
  writer.write_str("frames");
  writer.begin_list();
  writer.end_list();
  if (event.flags != kTraceFlagNone) {
    writer.write_str("offsim_flags");
    writer.write_uint(event.flags);
  }
  writer.end_dict();
}

void encode_metadata(StructuredWriter& writer, const TraceMetadata& metadata) {
  const auto field = [&](std::string_view key, const std::string& text) {
    writer.write_str(key);
    writer.write_str(text);
  };
  writer.begin_dict();
  field("label", metadata.label);
  field("alloc_conf", metadata.alloc_conf);
  writer.write_str("device");
  writer.write_int(metadata.device);
  writer.write_str("device_total_bytes");
  writer.write_uint(metadata.device_total_bytes);
  writer.write_str("reconstructed_initial_state");
  writer.write_bool(metadata.reconstructed_initial_state);
  writer.write_str("provenance");
  writer.begin_dict();
  const Provenance& provenance = metadata.provenance;
  field("kind", std::string(to_string(provenance.kind)));
  field("source", provenance.source);
  field("citation", provenance.citation);
  field("gpu", provenance.gpu);
  field("torch_version", provenance.torch_version);
  field("driver", provenance.driver);
  field("command", provenance.command);
  field("date", provenance.date);
  field("license", provenance.license);
  field("notes", provenance.notes);
  writer.end_dict();
  writer.end_dict();
}

}  // namespace offsim::sim
