// An output file that appears complete or not at all: bytes go to a temporary file in the destination's
// directory, and commit() flushes, fsyncs and renames it over the destination. Destroyed without
// commit() (an exception while writing), it removes the temporary file and leaves any earlier file at
// the destination untouched.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "offsim/sim/byte_sink.hpp"

namespace offsim::sim {

class AtomicOutputFile : public ByteSink {
 public:
  /// Creates the temporary file. Throws offsim::Error naming the destination when it cannot.
  explicit AtomicOutputFile(std::filesystem::path destination);
  ~AtomicOutputFile() override;
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  void write(std::string_view bytes) override;
  /// Makes the file visible at the destination. Throws offsim::Error naming it on any failure.
  void commit();

  const std::filesystem::path& destination() const { return destination_; }
  const std::filesystem::path& temporary() const { return temporary_; }
  std::uint64_t bytes_written() const { return bytes_written_; }

 private:
  [[noreturn]] void fail(const std::string& what);

  std::filesystem::path destination_;
  std::filesystem::path temporary_;
  std::FILE* file_ = nullptr;
  std::uint64_t bytes_written_ = 0;
  bool committed_ = false;
};

}  // namespace offsim::sim
