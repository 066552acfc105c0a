#include "offsim/sim/json_value_reader.hpp"

#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

// Feeds nlohmann's parser one byte at a time from a ByteReader, so that the reader's offset says how far
// the parser got (the lexer looks at most one byte ahead).
class ByteReaderIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = char;

  explicit ByteReaderIterator(ByteReader* reader = nullptr) : reader_(reader) {}
  char operator*() const { return static_cast<char>(reader_->peek()); }
  ByteReaderIterator& operator++() {
    reader_->read_u8("more JSON");
    return *this;
  }
  ByteReaderIterator operator++(int) {
    ByteReaderIterator previous = *this;
    ++*this;
    return previous;
  }
  bool operator==(const ByteReaderIterator& other) const { return ended() == other.ended(); }
  bool operator!=(const ByteReaderIterator& other) const { return !(*this == other); }

 private:
  bool ended() const { return reader_ == nullptr || reader_->at_end(); }
  ByteReader* reader_;
};

class ValueBuilder {
 public:
  using json = nlohmann::json;
  ValueBuilder(ByteReader& input, PickleItemSink* sink, const PickleReadLimits& limits)
      : in_(input), sink_(sink), limits_(limits) {}

  bool null() { return add(PickleValue::none()); }
  bool boolean(bool value) { return add(PickleValue::boolean(value)); }
  bool number_integer(json::number_integer_t value) { return add(PickleValue::integer(value)); }
  bool number_unsigned(json::number_unsigned_t value) {
    if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return add(PickleValue::integer(static_cast<std::int64_t>(value)));
    }
    PickleBigInt big;
    for (int i = 0; i < 8; ++i) big.twos_complement.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    big.twos_complement.push_back(0);  // sign byte: the value is positive
    return add(PickleValue::big_integer(std::move(big)));
  }
  bool number_float(json::number_float_t value, const json::string_t& /*text*/) {
    return add(PickleValue::floating(value));
  }
  bool string(json::string_t& value) { return add(PickleValue::str(std::move(value))); }
  bool binary(json::binary_t& /*value*/) { fail("binary values are not JSON"); }
  bool start_object(std::size_t /*elements*/) { return open(PickleValue::new_dict()); }
  bool key(json::string_t& value) {
    pending_keys_.push_back(PickleValue::str(std::move(value)));
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t /*elements*/) { return open(PickleValue::new_list()); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const nlohmann::detail::exception& error) {
    std::string message = error.what();
    if (const auto bracket = message.find("] "); message.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
      message = message.substr(bracket + 2);
    }
    // nlohmann counts characters read; the parser stopped at the last one it read.
    in_.fail(position == 0 ? 0 : position - 1, "invalid JSON: " + message);
  }

  PickleValue take_root() { return std::move(root_); }

 private:
  struct Open {
    PickleValue container;
    std::uint64_t offset;
  };

  [[noreturn]] void fail(const std::string& message) const { in_.fail(in_.offset(), message); }

  std::uint64_t token_offset() const { return in_.offset() == 0 ? 0 : in_.offset() - 1; }

  bool open(PickleValue container) {
    if (open_.size() + 1 > limits_.max_depth) {
      fail("JSON nests more than " + std::to_string(limits_.max_depth) + " levels deep");
    }
    container.container_info()->offset = token_offset();
    open_.push_back(Open{std::move(container), token_offset()});
    return true;
  }

  bool close() {
    Open finished = std::move(open_.back());
    open_.pop_back();
    const auto* info = finished.container.container_info();
    return place(std::move(finished.container), finished.offset, info->depth);
  }

  bool add(PickleValue value) { return place(std::move(value), token_offset(), 0); }

  bool place(PickleValue value, std::uint64_t offset, std::uint32_t depth) {
    if (open_.empty()) {
      root_ = std::move(value);
      return true;
    }
    PickleValue& parent = open_.back().container;
    PickleContainerInfo* parent_info = parent.container_info();
    parent_info->depth = std::max(parent_info->depth, depth + 1);
    if (auto* info = value.container_info()) info->sealed = true;
    if (parent.kind() == PickleValue::Kind::kList) {
      PickleList& list = parent.as_list();
      if (sink_ != nullptr && sink_->take(list, value, offset)) {
        ++list.info.streamed_items;
      } else {
        list.items.push_back(std::move(value));
      }
    } else {
      parent.as_dict().entries.emplace_back(std::move(pending_keys_.back()), std::move(value));
      pending_keys_.pop_back();
    }
    return true;
  }

  ByteReader& in_;
  PickleItemSink* sink_;
  PickleReadLimits limits_;
  std::vector<Open> open_;
  std::vector<PickleValue> pending_keys_;
  PickleValue root_;
};

}  // namespace

PickleValue read_json_value(ByteReader& input, PickleItemSink* sink, const PickleReadLimits& limits) {
  ValueBuilder builder(input, sink, limits);
  nlohmann::json::sax_parse(ByteReaderIterator(&input), ByteReaderIterator(), &builder,
                            nlohmann::json::input_format_t::json, /*strict=*/true);
  return builder.take_root();
}

bool looks_like_json(std::string_view first_bytes) {
  for (const char c : first_bytes) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' || c == '[';
  }
  return false;
}

}  // namespace offsim::sim
