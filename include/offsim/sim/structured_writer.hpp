// Writing a tree of plain values (dict, list, tuple, str, int, float, bool, None) front to back without
// holding it, so that one snapshot writer streams a trace of any length into a pickle
// (pickle_writer.hpp) or into JSON (json_stream_writer.hpp).
#pragma once

#include <cstdint>
#include <string_view>

#include "offsim/sim/pickle_value.hpp"

namespace offsim::sim {

class StructuredWriter {
 public:
  virtual ~StructuredWriter() = default;
  /// A dict's items are written as key, value, key, value, ... between begin_dict and end_dict.
  virtual void begin_dict() = 0;
  virtual void end_dict() = 0;
  virtual void begin_list() = 0;
  virtual void end_list() = 0;
  /// JSON has no tuples; the JSON writer writes a list (as Python's json module does).
  virtual void begin_tuple() = 0;
  virtual void end_tuple() = 0;
  virtual void write_str(std::string_view text) = 0;  // text must be UTF-8
  virtual void write_int(std::int64_t value) = 0;
  virtual void write_uint(std::uint64_t value) = 0;
  virtual void write_big_int(const PickleBigInt& value) = 0;
  /// Python bytes; JSON cannot hold them and throws offsim::Error.
  virtual void write_bytes(std::string_view data) = 0;
  virtual void write_float(double value) = 0;
  virtual void write_bool(bool value) = 0;
  virtual void write_none() = 0;
  /// Ends the output after the single root value; throws std::logic_error if containers are still open.
  virtual void finish() = 0;
};

/// Writes a whole value tree (recursion is bounded by the reader's depth limit). Throws offsim::Error for
/// values plain data cannot hold (a GLOBAL, a released memo entry, a non-finite float in JSON).
void write_value(StructuredWriter& writer, const PickleValue& value);

}  // namespace offsim::sim
