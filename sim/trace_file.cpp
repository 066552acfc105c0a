#include "offsim/sim/trace_file.hpp"

#include <cstring>

#include "offsim/sim/crc32.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/json_stream_writer.hpp"
#include "offsim/sim/json_value_reader.hpp"
#include "offsim/sim/snapshot_codec.hpp"

namespace offsim::sim {

namespace {

constexpr std::uint8_t kChunkTag = 'C';
constexpr std::uint8_t kEndTag = 'E';
constexpr std::uint8_t kActionMask = 0x0F;
constexpr std::uint8_t kStreamChangedBit = 0x10;
constexpr std::uint8_t kFallibleBit = 0x20;
constexpr std::uint8_t kReservedBits = 0xC0;
constexpr std::size_t kMinEncodedEvent = 4;         // head byte + three one-byte varints
constexpr std::uint32_t kMaxChunkPayload = 64U << 20U;  // a reader's bound; the writer stays near 1 MiB
constexpr std::uint32_t kMaxJsonBytes = 1U << 30U;

void put_u32(std::string& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}
void put_u64(std::string& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFU));
}
void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7FU) | 0x80U));
    value >>= 7U;
  }
  out.push_back(static_cast<char>(value));
}
std::uint64_t zigzag(std::int64_t value) {
  return (static_cast<std::uint64_t>(value) << 1U) ^ static_cast<std::uint64_t>(value >> 63);
}
std::int64_t unzigzag(std::uint64_t value) {
  return static_cast<std::int64_t>(value >> 1U) ^ -static_cast<std::int64_t>(value & 1U);
}

std::string header_json(const TraceMetadata& metadata, const std::vector<SegmentInfo>& initial_segments) {
  StringByteSink sink;
  JsonStreamWriter writer(sink);
  writer.begin_dict();
  writer.write_str("metadata");
  encode_metadata(writer, metadata);
  writer.write_str("initial_segments");
  encode_segments(writer, initial_segments);
  writer.end_dict();
  writer.finish();
  return sink.take();
}

std::string end_json(const std::vector<SegmentInfo>& final_segments) {
  StringByteSink sink;
  JsonStreamWriter writer(sink);
  writer.begin_dict();
  writer.write_str("final_segments");
  encode_segments(writer, final_segments);
  writer.end_dict();
  writer.finish();
  return sink.take();
}

std::vector<SegmentInfo> decode_segment_list(const PickleDict& dict, std::string_view key, const DecodePlace& place) {
  const PickleValue& value = require_key(dict, key, place);
  const DecodePlace list_place = place.at(key, &value);
  SnapshotDecodeNotes ignored;
  std::vector<SegmentInfo> segments;
  const auto& items = require_list(value, list_place);
  for (std::size_t i = 0; i < items.size(); ++i) {
    segments.push_back(decode_segment(items[i], list_place.at(std::uint64_t{i}, &items[i]), ignored));
  }
  sort_and_check_disjoint(segments, list_place);
  return segments;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- writer

TraceWriter::TraceWriter(const std::filesystem::path& path, const TraceMetadata& metadata,
                         const std::vector<SegmentInfo>& initial_segments)
    : output_(path) {
  const std::string json = header_json(metadata, initial_segments);
  if (json.size() > kMaxJsonBytes) throw Error(path.string() + ": header of " + std::to_string(json.size()) + " bytes is too large");
  std::string header(kTraceFileMagic, sizeof kTraceFileMagic);
  put_u32(header, kTraceFileVersion);
  put_u32(header, static_cast<std::uint32_t>(json.size()));
  header += json;
  put_u32(header, crc32(header.data() + sizeof kTraceFileMagic, header.size() - sizeof kTraceFileMagic, 0));
  output_.write(header);
  chunk_.reserve(kTraceChunkBytes + 64);
}

TraceWriter::~TraceWriter() = default;

void TraceWriter::append(const TraceEvent& event) {
  if (finished_) throw Error(output_.destination().string() + ": append after finish");
  if ((event.flags & ~kTraceFlagFallible) != 0) {
    throw Error(output_.destination().string() + ": event " + std::to_string(events_written_) +
                " has flag bits this format cannot store (" + std::to_string(event.flags) + ")");
  }
  const bool stream_changed = event.stream != previous_stream_;
  std::uint8_t head = static_cast<std::uint8_t>(event.action);
  if (stream_changed) head |= kStreamChangedBit;
  if ((event.flags & kTraceFlagFallible) != 0) head |= kFallibleBit;
  chunk_.push_back(static_cast<char>(head));
  put_varint(chunk_, zigzag(static_cast<std::int64_t>(event.addr - previous_addr_)));
  put_varint(chunk_, event.size);
  put_varint(chunk_, zigzag(static_cast<std::int64_t>(static_cast<std::uint64_t>(event.time_us) -
                                                      static_cast<std::uint64_t>(previous_time_))));
  if (stream_changed) put_varint(chunk_, event.stream);
  previous_addr_ = event.addr;
  previous_time_ = event.time_us;
  previous_stream_ = event.stream;
  ++chunk_events_;
  ++events_written_;
  if (chunk_events_ == kTraceChunkEvents || chunk_.size() >= kTraceChunkBytes) flush_chunk();
}

void TraceWriter::flush_chunk() {
  if (chunk_events_ == 0) return;
  std::string record;
  record.reserve(chunk_.size() + 16);
  record.push_back(static_cast<char>(kChunkTag));
  put_u32(record, chunk_events_);
  put_u32(record, static_cast<std::uint32_t>(chunk_.size()));
  record += chunk_;
  put_u32(record, crc32(record));
  output_.write(record);
  chunk_.clear();
  chunk_events_ = 0;
  // Every chunk decodes on its own: delta state starts over.
  previous_addr_ = 0;
  previous_time_ = 0;
  previous_stream_ = 0;
}

void TraceWriter::finish(const std::vector<SegmentInfo>& final_segments) {
  if (finished_) throw Error(output_.destination().string() + ": finished twice");
  flush_chunk();
  const std::string json = end_json(final_segments);
  if (json.size() > kMaxJsonBytes) throw Error(output_.destination().string() + ": final segments too large");
  std::string record;
  record.push_back(static_cast<char>(kEndTag));
  put_u64(record, events_written_);
  put_u32(record, static_cast<std::uint32_t>(json.size()));
  record += json;
  put_u32(record, crc32(record));
  output_.write(record);
  output_.commit();
  finished_ = true;
}

// ---------------------------------------------------------------------------------------------- reader

TraceReader::TraceReader(const std::filesystem::path& path) : input_(std::make_unique<ByteReader>(path)) {
  read_header();
}

TraceReader::TraceReader(std::string source, std::string bytes)
    : input_(std::make_unique<ByteReader>(std::move(source), std::move(bytes))) {
  read_header();
}

void TraceReader::read_header() {
  ByteReader& in = *input_;
  char magic[sizeof kTraceFileMagic] = {};
  if (in.size() < sizeof kTraceFileMagic) in.fail(0, "not an offsim trace: shorter than the 8-byte magic \\x89OTRACE\\n");
  in.read(magic, sizeof magic, "the magic bytes");
  if (std::memcmp(magic, kTraceFileMagic, sizeof magic) != 0) {
    in.fail(0, "not an offsim trace: expected the magic bytes \\x89OTRACE\\n");
  }
  const auto version = static_cast<std::uint32_t>(in.read_le(4, "the format version"));
  if (version == 0 || version > kTraceFileVersion) {
    in.fail(8, "format version " + std::to_string(version) + (version == 0 ? " is invalid" : " is newer than this offsim reads") +
                   " (expected " + std::to_string(kTraceFileVersion) + ")");
  }
  const auto json_length = static_cast<std::uint32_t>(in.read_le(4, "the header length"));
  if (json_length > kMaxJsonBytes || json_length + std::uint64_t{4} > in.remaining()) {
    in.fail(12, "header length " + std::to_string(json_length) + " runs past the end of the file (" +
                    std::to_string(in.remaining()) + " bytes left)");
  }
  std::string checked(8, '\0');
  for (int i = 0; i < 4; ++i) checked[static_cast<std::size_t>(i)] = static_cast<char>((version >> (8 * i)) & 0xFFU);
  for (int i = 0; i < 4; ++i) checked[static_cast<std::size_t>(4 + i)] = static_cast<char>((json_length >> (8 * i)) & 0xFFU);
  const std::uint64_t json_offset = in.offset();
  std::string json = in.read_string(json_length, "the header JSON");
  const auto stored = static_cast<std::uint32_t>(in.read_le(4, "the header checksum"));
  const std::uint32_t computed = crc32(json, crc32(checked));
  if (stored != computed) {
    in.fail(json_offset + json_length, "header checksum mismatch (stored " + std::to_string(stored) + ", computed " +
                                           std::to_string(computed) + "): the header is corrupt");
  }
  ByteReader block(in.source(), std::move(json), json_offset);
  const PickleValue root = read_json_value(block);
  const DecodePlace place{in.source(), json_offset, nullptr, "header", std::nullopt};
  const PickleDict& dict = require_dict(root, place);
  metadata_ = decode_metadata(require_key(dict, "metadata", place), place.at("metadata", dict.find("metadata")));
  initial_segments_ = decode_segment_list(dict, "initial_segments", place);
}

void TraceReader::fail_in_chunk(const std::string& message) const {
  input_->fail(chunk_payload_offset_ + chunk_position_, message);
}

bool TraceReader::read_record() {
  ByteReader& in = *input_;
  const std::uint64_t record_offset = in.offset();
  if (in.at_end()) {
    in.fail(record_offset, "unexpected end of file after " + std::to_string(events_read_) +
                               " events, expected a chunk or the end record (the writer did not finish)");
  }
  const std::uint8_t tag = in.read_u8("a record tag");
  if (tag == kChunkTag) {
    std::uint8_t fields[8];
    in.read(fields, sizeof fields, "the chunk's event count and length");
    const std::uint32_t count = static_cast<std::uint32_t>(fields[0]) | static_cast<std::uint32_t>(fields[1]) << 8U |
                                static_cast<std::uint32_t>(fields[2]) << 16U | static_cast<std::uint32_t>(fields[3]) << 24U;
    const std::uint32_t length = static_cast<std::uint32_t>(fields[4]) | static_cast<std::uint32_t>(fields[5]) << 8U |
                                 static_cast<std::uint32_t>(fields[6]) << 16U | static_cast<std::uint32_t>(fields[7]) << 24U;
    if (count == 0 || length > kMaxChunkPayload || std::uint64_t{count} * kMinEncodedEvent > length) {
      in.fail(record_offset, "chunk header is corrupt (" + std::to_string(count) + " events in " + std::to_string(length) +
                                 " bytes; expected 1 or more events of at least 4 bytes, at most 64 MiB)");
    }
    if (std::uint64_t{length} + 4 > in.remaining()) {
      in.fail(record_offset, "chunk of " + std::to_string(length) + " bytes runs past the end of the file (" +
                                 std::to_string(in.remaining()) + " bytes left): the file is truncated");
    }
    chunk_payload_offset_ = in.offset();
    chunk_.resize(length);
    in.read(chunk_.data(), length, "the chunk payload");
    const auto stored = static_cast<std::uint32_t>(in.read_le(4, "the chunk checksum"));
    std::uint32_t computed = crc32(&tag, 1, 0);
    computed = crc32(fields, sizeof fields, computed);
    computed = crc32(chunk_.data(), chunk_.size(), computed);
    if (stored != computed) {
      in.fail(record_offset, "chunk checksum mismatch (events " + std::to_string(events_read_) + " to " +
                                 std::to_string(events_read_ + count - 1) + "): the chunk is corrupt");
    }
    chunk_position_ = 0;
    chunk_events_left_ = count;
    previous_addr_ = 0;
    previous_time_ = 0;
    previous_stream_ = 0;
    return true;
  }
  if (tag == kEndTag) {
    const std::uint64_t total = in.read_le(8, "the end record's event count");
    const auto json_length = static_cast<std::uint32_t>(in.read_le(4, "the end record's JSON length"));
    if (json_length > kMaxJsonBytes || json_length + std::uint64_t{4} > in.remaining()) {
      in.fail(record_offset, "end record length " + std::to_string(json_length) + " runs past the end of the file");
    }
    const std::uint64_t json_offset = in.offset();
    std::string json = in.read_string(json_length, "the end record JSON");
    const auto stored = static_cast<std::uint32_t>(in.read_le(4, "the end record checksum"));
    std::string checked(1, static_cast<char>(kEndTag));
    for (int i = 0; i < 8; ++i) checked.push_back(static_cast<char>((total >> (8 * i)) & 0xFFU));
    for (int i = 0; i < 4; ++i) checked.push_back(static_cast<char>((json_length >> (8 * i)) & 0xFFU));
    if (stored != crc32(json, crc32(checked))) in.fail(record_offset, "end record checksum mismatch: the end record is corrupt");
    if (total != events_read_) {
      in.fail(record_offset, "end record counts " + std::to_string(total) + " events but the chunks held " +
                                 std::to_string(events_read_));
    }
    if (!in.at_end()) in.fail(in.offset(), std::to_string(in.remaining()) + " bytes after the end record (expected the end of the file)");
    ByteReader block(in.source(), std::move(json), json_offset);
    const PickleValue root = read_json_value(block);
    const DecodePlace place{in.source(), json_offset, nullptr, "end record", std::nullopt};
    final_segments_ = decode_segment_list(require_dict(root, place), "final_segments", place);
    return false;
  }
  in.fail(record_offset, "unknown record tag " + std::to_string(tag) + " (expected 'C' for a chunk or 'E' for the end)");
}

bool TraceReader::next(TraceEvent& event) {
  if (ended_) return false;
  while (chunk_events_left_ == 0) {
    if (chunk_position_ != chunk_.size()) fail_in_chunk("chunk has bytes after its last event");
    if (!read_record()) {
      ended_ = true;
      return false;
    }
  }
  const std::uint8_t* data = chunk_.data();
  const std::size_t size = chunk_.size();
  std::size_t position = chunk_position_;
  const auto varint = [&](const char* what) -> std::uint64_t {
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (position == size) {
        chunk_position_ = position;
        fail_in_chunk(std::string("event record ends inside its ") + what);
      }
      const std::uint8_t byte = data[position++];
      if (shift == 63 && byte > 1) {
        chunk_position_ = position - 1;
        fail_in_chunk(std::string("varint ") + what + " overflows 64 bits");
      }
      value |= static_cast<std::uint64_t>(byte & 0x7FU) << shift;
      if ((byte & 0x80U) == 0) return value;
    }
  };
  if (position == size) fail_in_chunk("chunk ends before its declared event count");
  const std::uint8_t head = data[position];
  const std::uint8_t action = head & kActionMask;
  if (action >= kTraceActionCount || (head & kReservedBits) != 0) {
    fail_in_chunk("event head byte " + std::to_string(head) + " is invalid (expected an action code 0-" +
                  std::to_string(kTraceActionCount - 1) + " and reserved bits 0)");
  }
  ++position;
  previous_addr_ += static_cast<std::uint64_t>(unzigzag(varint("address delta")));
  const std::uint64_t size_value = varint("size");
  if (action == static_cast<std::uint8_t>(TraceAction::kAlloc) && size_value >= kMaxTraceRequest) [[unlikely]] {
    fail_in_chunk("event " + std::to_string(events_read_) + ": an alloc of " + std::to_string(size_value) + " bytes is 1 EiB or more, which PyTorch refuses before "
                  "recording it (\"Tried to allocate more than 1EB memory\")");
  }
  previous_time_ = static_cast<std::int64_t>(static_cast<std::uint64_t>(previous_time_) +
                                             static_cast<std::uint64_t>(unzigzag(varint("time delta"))));
  if ((head & kStreamChangedBit) != 0) previous_stream_ = varint("stream");
  chunk_position_ = position;
  event.addr = previous_addr_;
  event.size = size_value;
  event.stream = previous_stream_;
  event.time_us = previous_time_;
  event.action = static_cast<TraceAction>(action);
  event.flags = (head & kFallibleBit) != 0 ? kTraceFlagFallible : kTraceFlagNone;
  --chunk_events_left_;
  ++events_read_;
  return true;
}

// ---------------------------------------------------------------------------------------------- whole files

void write_trace_file(const std::filesystem::path& path, TraceEventSource& source) {
  TraceWriter writer(path, source.metadata(), source.initial_segments());
  TraceEvent event;
  while (source.next(event)) writer.append(event);
  writer.finish(source.final_segments());
}

void write_trace_file(const std::filesystem::path& path, const Trace& trace) {
  TraceVectorSource source(trace);
  write_trace_file(path, source);
}

Trace read_trace_file(const std::filesystem::path& path) {
  TraceReader reader(path);
  return collect_trace(reader);
}

bool looks_like_trace_file(std::string_view first_bytes) {
  return first_bytes.size() >= sizeof kTraceFileMagic &&
         std::memcmp(first_bytes.data(), kTraceFileMagic, sizeof kTraceFileMagic) == 0;
}

}  // namespace offsim::sim
