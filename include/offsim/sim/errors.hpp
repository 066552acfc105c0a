// Error types raised by offsim. Every message names the input and what was wrong; the CLI catches
// offsim::Error once and prints it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace offsim {

/// Base of every error offsim raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A PYTORCH_CUDA_ALLOC_CONF string, a version profile name or another setting is invalid.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// The allocator was used wrongly: free of an unknown or already freed pointer, absurd size, ...
/// (PyTorch raises or asserts in these cases; the simulator raises this instead of aborting.)
class AllocatorUsageError : public Error {
 public:
  using Error::Error;
};

/// A size that is no size: negative, or a device allocation of 1 EiB or more. The message names the call.
class InvalidSizeError : public AllocatorUsageError {
 public:
  using AllocatorUsageError::AllocatorUsageError;
};

/// free of an address whose block was freed already (and not handed out again since).
class DoubleFreeError : public AllocatorUsageError {
 public:
  using AllocatorUsageError::AllocatorUsageError;
};

/// A self-check of the simulated allocator found an inconsistent state. Always a simulator bug.
class InvariantViolation : public Error {
 public:
  using Error::Error;
};

/// Malformed input file. `source` is the file (or "<string>"), `offset` the byte offset or record
/// index where reading stopped (a line for text formats, then with the 1-based column: "FILE:LINE:COLUMN"),
/// `expected` what the reader wanted there.
class ParseError : public Error {
 public:
  ParseError(std::string source, std::uint64_t offset, const std::string& what_was_wrong)
      : Error(source + ":" + std::to_string(offset) + ": " + what_was_wrong),
        source_(std::move(source)),
        offset_(offset) {}
  ParseError(std::string source, std::uint64_t line, std::uint64_t column, const std::string& what_was_wrong)
      : Error(source + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + what_was_wrong),
        source_(std::move(source)),
        offset_(line),
        column_(column) {}
  const std::string& source() const noexcept { return source_; }
  std::uint64_t offset() const noexcept { return offset_; }
  /// 0 when the position is a byte offset or a record index.
  std::uint64_t column() const noexcept { return column_; }

 private:
  std::string source_;
  std::uint64_t offset_;
  std::uint64_t column_ = 0;
};

}  // namespace offsim
