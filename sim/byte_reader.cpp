#include "offsim/sim/byte_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

ByteReader::ByteReader(const std::filesystem::path& path, std::size_t buffer_bytes)
    : source_(path.string()), buffer_capacity_(buffer_bytes == 0 ? 1 : buffer_bytes) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw Error(source_ + ": is a directory, expected a file");
  }
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    throw Error(source_ + ": cannot open for reading: " + std::strerror(errno));
  }
  const auto bytes = std::filesystem::file_size(path, error);
  if (error) {
    std::fclose(file_);
    throw Error(source_ + ": cannot read its size: " + error.message());
  }
  size_ = bytes;
  buffer_.reserve(buffer_capacity_);
}

ByteReader::ByteReader(std::string source, std::string bytes, std::uint64_t base_offset)
    : source_(std::move(source)),
      buffer_(bytes.begin(), bytes.end()),
      consumed_before_buffer_(base_offset),
      size_(base_offset + bytes.size()) {}

ByteReader::~ByteReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool ByteReader::refill() {
  if (file_ == nullptr) return false;
  consumed_before_buffer_ += buffer_.size();
  position_ = 0;
  buffer_.resize(buffer_capacity_);
  const std::size_t got = std::fread(buffer_.data(), 1, buffer_capacity_, file_);
  buffer_.resize(got);
  if (got == 0 && std::ferror(file_) != 0) {
    fail(offset(), std::string("read error: ") + std::strerror(errno));
  }
  return got > 0;
}

void ByteReader::read(void* out, std::size_t count, std::string_view what) {
  auto* destination = static_cast<std::uint8_t*>(out);
  while (count > 0) {
    if (position_ == buffer_.size() && !refill()) fail_eof(what);
    const std::size_t chunk = std::min(count, buffer_.size() - position_);
    std::memcpy(destination, buffer_.data() + position_, chunk);
    destination += chunk;
    position_ += chunk;
    count -= chunk;
  }
}

std::string ByteReader::read_string(std::uint64_t count, std::string_view what) {
  if (count > remaining()) {
    fail(offset(), std::string(what) + " of " + std::to_string(count) + " bytes runs past the end of the file (" +
                       std::to_string(remaining()) + " bytes left)");
  }
  std::string result(static_cast<std::size_t>(count), '\0');
  read(result.data(), result.size(), what);
  return result;
}

std::uint64_t ByteReader::read_le(unsigned width, std::string_view what) {
  std::uint8_t bytes[8] = {};
  read(bytes, width, what);
  std::uint64_t value = 0;
  for (unsigned i = width; i-- > 0;) value = (value << 8U) | bytes[i];
  return value;
}

void ByteReader::skip(std::uint64_t count, std::string_view what) {
  if (count > remaining()) {
    fail(offset(), std::string(what) + " of " + std::to_string(count) + " bytes runs past the end of the file");
  }
  while (count > 0) {
    if (position_ == buffer_.size() && !refill()) fail_eof(what);
    const std::uint64_t chunk = std::min<std::uint64_t>(count, buffer_.size() - position_);
    position_ += static_cast<std::size_t>(chunk);
    count -= chunk;
  }
}

void ByteReader::fail(std::uint64_t at, const std::string& message) const { throw ParseError(source_, at, message); }

void ByteReader::fail_eof(std::string_view what) const {
  fail(offset(), "unexpected end of file, expected " + std::string(what));
}

}  // namespace offsim::sim
