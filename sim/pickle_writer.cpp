#include "offsim/sim/pickle_writer.hpp"

#include <bit>
#include <limits>
#include <stdexcept>

namespace offsim::sim {

namespace {
constexpr std::uint32_t kBatchSize = 1000;       // Lib/pickle.py _BATCHSIZE
constexpr std::size_t kFlushBytes = 1U << 20U;
constexpr std::size_t kMemoizedStringMax = 64;   // keys and action names; long strings are rarely repeated
constexpr std::size_t kMemoizedStringsCap = 1U << 16U;
}  // namespace

PickleWriter::PickleWriter(ByteSink& sink) : sink_(sink) {
  op(0x80);  // PROTO
  op(4);
}

void PickleWriter::put_le(std::uint64_t value, unsigned width) {
  for (unsigned i = 0; i < width; ++i) buffer_.push_back(static_cast<char>((value >> (8U * i)) & 0xFFU));
}

void PickleWriter::flush_if_large() {
  if (buffer_.size() >= kFlushBytes) {
    sink_.write(buffer_);
    buffer_.clear();
  }
}

void PickleWriter::before_value() {
  if (finished_) throw std::logic_error("PickleWriter: value written after finish()");
  if (open_.empty()) {
    if (root_written_) throw std::logic_error("PickleWriter: a pickle holds one root value");
    return;
  }
  Open& top = open_.back();
  if (top.kind != Container::kTuple && !top.mark_open) {
    op('(');  // MARK
    top.mark_open = true;
  }
}

void PickleWriter::after_value() {
  if (open_.empty()) {
    root_written_ = true;
    return;
  }
  Open& top = open_.back();
  if (top.kind == Container::kTuple) return;
  ++top.in_batch;
  const std::uint32_t per_batch = top.kind == Container::kDict ? 2 * kBatchSize : kBatchSize;
  if (top.in_batch == per_batch) {
    op(top.kind == Container::kDict ? 'u' : 'e');  // SETITEMS / APPENDS
    top.mark_open = false;
    top.in_batch = 0;
  }
  flush_if_large();
}

void PickleWriter::begin_dict() {
  before_value();
  op('}');  // EMPTY_DICT
  open_.push_back(Open{Container::kDict});
}

void PickleWriter::end_dict() {
  if (open_.empty() || open_.back().kind != Container::kDict) throw std::logic_error("PickleWriter: end_dict without begin_dict");
  const Open top = open_.back();
  if (top.in_batch % 2 != 0) throw std::logic_error("PickleWriter: dict ended after a key without its value");
  if (top.mark_open) op('u');
  open_.pop_back();
  after_value();
}

void PickleWriter::begin_list() {
  before_value();
  op(']');  // EMPTY_LIST
  open_.push_back(Open{Container::kList});
}

void PickleWriter::end_list() {
  if (open_.empty() || open_.back().kind != Container::kList) throw std::logic_error("PickleWriter: end_list without begin_list");
  if (open_.back().mark_open) op('e');
  open_.pop_back();
  after_value();
}

void PickleWriter::begin_tuple() {
  before_value();
  op('(');  // MARK ... TUPLE
  open_.push_back(Open{Container::kTuple});
}

void PickleWriter::end_tuple() {
  if (open_.empty() || open_.back().kind != Container::kTuple) throw std::logic_error("PickleWriter: end_tuple without begin_tuple");
  op('t');
  open_.pop_back();
  after_value();
}

void PickleWriter::write_str(std::string_view text) {
  before_value();
  const bool memoizable = text.size() <= kMemoizedStringMax;
  if (memoizable) {
    if (auto it = memo_.find(std::string(text)); it != memo_.end()) {
      if (it->second <= 0xFF) {
        op('h');  // BINGET
        put_le(it->second, 1);
      } else {
        op('j');  // LONG_BINGET
        put_le(it->second, 4);
      }
      after_value();
      return;
    }
  }
  if (text.size() <= 0xFF) {
    op(0x8c);  // SHORT_BINUNICODE
    put_le(text.size(), 1);
  } else if (text.size() <= std::numeric_limits<std::uint32_t>::max()) {
    op('X');  // BINUNICODE
    put_le(text.size(), 4);
  } else {
    op(0x8d);  // BINUNICODE8
    put_le(text.size(), 8);
  }
  buffer_.append(text);
  if (memoizable && memo_.size() < kMemoizedStringsCap) {
    op(0x94);  // MEMOIZE
    memo_.emplace(std::string(text), next_memo_++);
  }
  after_value();
}

void PickleWriter::write_int(std::int64_t value) {
  before_value();
  // Lib/pickle.py save_long: BININT1 / BININT2 for small non-negative values, BININT for int32, else LONG1.
  if (value >= 0 && value <= 0xFF) {
    op('K');
    put_le(static_cast<std::uint64_t>(value), 1);
  } else if (value >= 0 && value <= 0xFFFF) {
    op('M');
    put_le(static_cast<std::uint64_t>(value), 2);
  } else if (value >= std::numeric_limits<std::int32_t>::min() && value <= std::numeric_limits<std::int32_t>::max()) {
    op('J');
    put_le(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)), 4);
  } else {
    // Minimal two's complement, as encode_long: drop redundant sign bytes.
    const auto raw = static_cast<std::uint64_t>(value);
    unsigned width = 8;
    while (width > 1) {
      const auto top = static_cast<std::uint8_t>(raw >> (8U * (width - 1)));
      const auto next_sign = static_cast<std::uint8_t>((raw >> (8U * (width - 2))) & 0x80U);
      if ((top == 0x00 && next_sign == 0) || (top == 0xFF && next_sign != 0)) {
        --width;
      } else {
        break;
      }
    }
    op(0x8a);  // LONG1
    put_le(width, 1);
    put_le(raw, width);
  }
  after_value();
}

void PickleWriter::write_uint(std::uint64_t value) {
  if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    write_int(static_cast<std::int64_t>(value));
    return;
  }
  before_value();
  op(0x8a);  // LONG1 with a 0x00 sign byte
  put_le(9, 1);
  put_le(value, 8);
  buffer_.push_back('\0');
  after_value();
}

void PickleWriter::write_big_int(const PickleBigInt& value) {
  before_value();
  if (value.twos_complement.size() <= 0xFF) {
    op(0x8a);  // LONG1
    put_le(value.twos_complement.size(), 1);
  } else {
    op(0x8b);  // LONG4
    put_le(value.twos_complement.size(), 4);
  }
  buffer_.append(reinterpret_cast<const char*>(value.twos_complement.data()), value.twos_complement.size());
  after_value();
}

void PickleWriter::write_bytes(std::string_view data) {
  before_value();
  if (data.size() <= 0xFF) {
    op('C');  // SHORT_BINBYTES
    put_le(data.size(), 1);
  } else if (data.size() <= std::numeric_limits<std::uint32_t>::max()) {
    op('B');  // BINBYTES
    put_le(data.size(), 4);
  } else {
    op(0x8e);  // BINBYTES8
    put_le(data.size(), 8);
  }
  buffer_.append(data);
  after_value();
}

void PickleWriter::write_float(double value) {
  before_value();
  op('G');  // BINFLOAT, big-endian IEEE 754
  const auto bits = std::bit_cast<std::uint64_t>(value);
  for (int shift = 56; shift >= 0; shift -= 8) buffer_.push_back(static_cast<char>((bits >> shift) & 0xFFU));
  after_value();
}

void PickleWriter::write_bool(bool value) {
  before_value();
  op(value ? 0x88 : 0x89);
  after_value();
}

void PickleWriter::write_none() {
  before_value();
  op('N');
  after_value();
}

void PickleWriter::finish() {
  if (!open_.empty()) throw std::logic_error("PickleWriter: finish() with containers still open");
  if (!root_written_) throw std::logic_error("PickleWriter: finish() before the root value");
  if (finished_) return;
  op('.');  // STOP
  sink_.write(buffer_);
  buffer_.clear();
  finished_ = true;
}

}  // namespace offsim::sim
