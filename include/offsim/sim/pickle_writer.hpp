// A streaming pickle writer for plain data. Output is protocol 4 without FRAMEs (framing is optional in
// protocol 4), using only opcodes that both Python's pickle.load and the JavaScript unpickler in
// torch/utils/viz/MemoryViz.js accept: PROTO 4, EMPTY_DICT/EMPTY_LIST, MARK + SETITEMS/APPENDS in
// batches of 1000 (as Python's pickler batches), MARK + TUPLE, SHORT_BINUNICODE/BINUNICODE with MEMOIZE
// and BINGET/LONG_BINGET for repeated strings (dict keys, action names), BININT1/BININT2/BININT/LONG1
// chosen as Python chooses them, BINFLOAT, NEWTRUE/NEWFALSE, NONE, STOP. (MemoryViz.js rejects
// protocol 5 and has no SHORT_BINBYTES; bytes values are written with SHORT_BINBYTES/BINBYTES for Python
// only.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "offsim/sim/byte_sink.hpp"
#include "offsim/sim/structured_writer.hpp"

namespace offsim::sim {

class PickleWriter : public StructuredWriter {
 public:
  /// Writes PROTO 4 at once. `sink` must outlive the writer.
  explicit PickleWriter(ByteSink& sink);
  ~PickleWriter() override = default;

  void begin_dict() override;
  void end_dict() override;
  void begin_list() override;
  void end_list() override;
  void begin_tuple() override;
  void end_tuple() override;
  void write_str(std::string_view text) override;
  void write_int(std::int64_t value) override;
  void write_uint(std::uint64_t value) override;
  void write_big_int(const PickleBigInt& value) override;
  void write_bytes(std::string_view data) override;
  void write_float(double value) override;
  void write_bool(bool value) override;
  void write_none() override;
  /// Writes STOP and flushes everything to the sink.
  void finish() override;

 private:
  enum class Container : std::uint8_t { kList, kDict, kTuple };
  struct Open {
    Container kind;
    bool mark_open = false;
    std::uint32_t in_batch = 0;   // items (lists) or key+value halves (dicts) since the last MARK
  };
  void before_value();
  void after_value();
  void op(std::uint8_t opcode) { buffer_.push_back(static_cast<char>(opcode)); }
  void put_le(std::uint64_t value, unsigned width);
  void flush_if_large();

  ByteSink& sink_;
  std::string buffer_;
  std::vector<Open> open_;
  std::unordered_map<std::string, std::uint32_t> memo_;  // string -> memo index
  std::uint32_t next_memo_ = 0;
  bool root_written_ = false;
  bool finished_ = false;
};

}  // namespace offsim::sim
