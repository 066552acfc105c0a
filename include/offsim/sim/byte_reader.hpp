// Sequential reading of a file (through a fixed buffer) or of bytes in memory, always knowing the byte
// offset, so that every reader can say where it stopped and what it expected there. Lengths read from
// the input are checked against the bytes that remain before anything is allocated for them, so a
// corrupt length field cannot ask for gigabytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace offsim::sim {

class ByteReader {
 public:
  /// Opens `path` for reading. Throws offsim::Error naming the file when it cannot be opened.
  explicit ByteReader(const std::filesystem::path& path, std::size_t buffer_bytes = std::size_t{1} << 20);
  /// Reads `bytes` (kept by the reader); `source` names it in messages ("<string>", a test name).
  /// `base_offset` is added to every offset reported, for bytes cut out of a larger file.
  ByteReader(std::string source, std::string bytes, std::uint64_t base_offset = 0);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  const std::string& source() const { return source_; }
  std::uint64_t offset() const { return consumed_before_buffer_ + position_; }
  std::uint64_t size() const { return size_; }
  std::uint64_t remaining() const { return size_ - offset(); }
  bool at_end() { return position_ == buffer_.size() && !refill(); }

  /// Next byte without consuming it; -1 at the end.
  int peek() {
    if (position_ == buffer_.size() && !refill()) return -1;
    return buffer_[position_];
  }
  /// Consumes one byte; at the end throws ParseError "unexpected end of file, expected <what>".
  std::uint8_t read_u8(std::string_view what) {
    if (position_ == buffer_.size() && !refill()) fail_eof(what);
    return buffer_[position_++];
  }
  /// Consumes exactly `count` bytes into `out`.
  void read(void* out, std::size_t count, std::string_view what);
  /// Consumes `count` bytes as a string; throws before allocating when fewer remain.
  std::string read_string(std::uint64_t count, std::string_view what);
  /// Little-endian unsigned integer of `width` bytes (1..8).
  std::uint64_t read_le(unsigned width, std::string_view what);
  void skip(std::uint64_t count, std::string_view what);

  /// Throws ParseError(source, offset, message).
  [[noreturn]] void fail(std::uint64_t offset, const std::string& message) const;
  [[noreturn]] void fail_eof(std::string_view what) const;

 private:
  bool refill();

  std::string source_;
  std::FILE* file_ = nullptr;
  std::vector<std::uint8_t> buffer_;
  std::size_t buffer_capacity_ = 0;
  std::size_t position_ = 0;
  std::uint64_t consumed_before_buffer_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace offsim::sim
