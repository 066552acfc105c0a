// offsim's own trace format (.otrace), made for streaming: a versioned header (magic, format version,
// JSON metadata with provenance and the initial segments), then chunks of compact event records
// (varints, addresses and times delta-coded within a chunk), each chunk with its own CRC-32 so that
// corruption is reported with the chunk's byte position, then an end record with the event count and the
// final segments. docs/trace_format.md specifies the bytes.
//
// TraceWriter appends events without holding them (one chunk of at most ~1 MiB is buffered) and writes
// the file atomically (nothing appears at the destination unless finish() succeeds). TraceReader yields
// events one at a time and holds one chunk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/byte_reader.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

inline constexpr char kTraceFileMagic[8] = {'\x89', 'O', 'T', 'R', 'A', 'C', 'E', '\n'};
inline constexpr std::uint32_t kTraceFileVersion = 1;
/// A chunk is closed at this many events or when its payload reaches kTraceChunkBytes.
inline constexpr std::uint32_t kTraceChunkEvents = 65536;
inline constexpr std::uint32_t kTraceChunkBytes = 1U << 20U;

class TraceWriter {
 public:
  /// Starts the file (header written at once to a temporary file beside `path`).
  TraceWriter(const std::filesystem::path& path, const TraceMetadata& metadata,
              const std::vector<SegmentInfo>& initial_segments);
  /// Without finish(), removes the temporary file: no partial trace is ever left at `path`.
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  void append(const TraceEvent& event);
  /// Writes the end record with `final_segments` (empty when unknown) and moves the file into place.
  void finish(const std::vector<SegmentInfo>& final_segments = {});

  std::uint64_t events_written() const { return events_written_; }
  std::uint64_t bytes_written() const { return output_.bytes_written(); }

 private:
  void flush_chunk();

  AtomicOutputFile output_;
  std::string chunk_;            // encoded payload of the open chunk
  std::uint32_t chunk_events_ = 0;
  std::uint64_t previous_addr_ = 0;
  std::int64_t previous_time_ = 0;
  StreamId previous_stream_ = 0;
  std::uint64_t events_written_ = 0;
  bool finished_ = false;
};

class TraceReader : public TraceEventSource {
 public:
  /// Opens `path` and reads the header. Throws ParseError(file, byte offset, what was expected) for a
  /// file that is not an offsim trace, a newer format version or a corrupt header.
  explicit TraceReader(const std::filesystem::path& path);
  /// The same over bytes in memory (tests); `source` names them.
  TraceReader(std::string source, std::string bytes);

  const TraceMetadata& metadata() const override { return metadata_; }
  const std::vector<SegmentInfo>& initial_segments() const override { return initial_segments_; }
  /// Next event; false after the end record was read and checked. Throws ParseError naming the chunk's
  /// byte offset for a checksum mismatch, a truncated file or an undecodable record.
  bool next(TraceEvent& event) override;
  const std::vector<SegmentInfo>& final_segments() const override { return final_segments_; }

  std::uint64_t events_read() const { return events_read_; }
  std::uint64_t bytes_read() const { return input_->offset(); }
  std::uint64_t file_size() const { return input_->size(); }
  double fraction_read() const override {
    return file_size() == 0 ? 0.0 : static_cast<double>(bytes_read()) / static_cast<double>(file_size());
  }

 private:
  void read_header();
  bool read_record();  // false after the end record
  [[noreturn]] void fail_in_chunk(const std::string& message) const;

  std::unique_ptr<ByteReader> input_;
  TraceMetadata metadata_;
  std::vector<SegmentInfo> initial_segments_;
  std::vector<SegmentInfo> final_segments_;
  std::vector<std::uint8_t> chunk_;
  std::size_t chunk_position_ = 0;
  std::uint32_t chunk_events_left_ = 0;
  std::uint64_t chunk_payload_offset_ = 0;  // file offset of chunk_[0]
  std::uint64_t previous_addr_ = 0;
  std::int64_t previous_time_ = 0;
  StreamId previous_stream_ = 0;
  std::uint64_t events_read_ = 0;
  bool ended_ = false;
};

/// Writes a whole trace source (streaming) or Trace to `path`, atomically.
void write_trace_file(const std::filesystem::path& path, TraceEventSource& source);
void write_trace_file(const std::filesystem::path& path, const Trace& trace);
/// Reads a whole trace file into memory.
Trace read_trace_file(const std::filesystem::path& path);

/// True when `first_bytes` start with the .otrace magic.
bool looks_like_trace_file(std::string_view first_bytes);

}  // namespace offsim::sim
