// Streaming JSON output of plain values, the JSON form of a memory snapshot. memory_viz opens it as it
// is: MemoryViz.js unpickle() first tries JSON.parse and only then falls back to the pickle reader.
// Tuples become arrays and non-str dict keys are written as strings, as Python's json module does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/byte_sink.hpp"
#include "offsim/sim/structured_writer.hpp"

namespace offsim::sim {

class JsonStreamWriter : public StructuredWriter {
 public:
  explicit JsonStreamWriter(ByteSink& sink) : sink_(sink) {}

  void begin_dict() override;
  void end_dict() override;
  void begin_list() override;
  void end_list() override;
  void begin_tuple() override { begin_list(); }
  void end_tuple() override { end_list(); }
  void write_str(std::string_view text) override;
  void write_int(std::int64_t value) override;
  void write_uint(std::uint64_t value) override;
  void write_big_int(const PickleBigInt& value) override;
  /// Throws offsim::Error: JSON has no bytes.
  void write_bytes(std::string_view data) override;
  /// Throws offsim::Error for NaN and infinities (not JSON).
  void write_float(double value) override;
  void write_bool(bool value) override;
  void write_none() override;
  void finish() override;

 private:
  struct Open {
    bool is_dict;
    std::uint64_t count = 0;  // values written (keys count too in dicts)
  };
  /// Separator before a value; true when the value is a dict key (must be written as a string).
  bool before_value();
  void after_value();
  void scalar(std::string_view text);
  void quoted(std::string_view text);

  ByteSink& sink_;
  std::string buffer_;
  std::vector<Open> open_;
  bool root_written_ = false;
};

}  // namespace offsim::sim
