#include "offsim/sim/json_stream_writer.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {
constexpr std::size_t kFlushBytes = 1U << 20U;
}

bool JsonStreamWriter::before_value() {
  if (open_.empty()) {
    if (root_written_) throw std::logic_error("JsonStreamWriter: JSON holds one root value");
    return false;
  }
  Open& top = open_.back();
  if (top.is_dict) {
    if (top.count % 2 == 1) {
      buffer_.push_back(':');
      return false;
    }
    if (top.count > 0) buffer_.push_back(',');
    return true;
  }
  if (top.count > 0) buffer_.push_back(',');
  return false;
}

void JsonStreamWriter::after_value() {
  if (open_.empty()) {
    root_written_ = true;
    return;
  }
  ++open_.back().count;
  if (buffer_.size() >= kFlushBytes) {
    sink_.write(buffer_);
    buffer_.clear();
  }
}

void JsonStreamWriter::scalar(std::string_view text) {
  if (before_value()) {
    quoted(text);  // a non-str dict key, written as Python's json.dumps does
  } else {
    buffer_.append(text);
  }
  after_value();
}

void JsonStreamWriter::quoted(std::string_view text) {
  buffer_.push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"': buffer_ += "\\\""; break;
      case '\\': buffer_ += "\\\\"; break;
      case '\n': buffer_ += "\\n"; break;
      case '\r': buffer_ += "\\r"; break;
      case '\t': buffer_ += "\\t"; break;
      case '\b': buffer_ += "\\b"; break;
      case '\f': buffer_ += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
          buffer_ += escape;
        } else {
          buffer_.push_back(c);
        }
    }
  }
  buffer_.push_back('"');
}

void JsonStreamWriter::begin_dict() {
  if (before_value()) throw Error("JSON: a dict cannot be a dict key");
  buffer_.push_back('{');
  open_.push_back(Open{true});
}

void JsonStreamWriter::end_dict() {
  if (open_.empty() || !open_.back().is_dict) throw std::logic_error("JsonStreamWriter: end_dict without begin_dict");
  if (open_.back().count % 2 != 0) throw std::logic_error("JsonStreamWriter: dict ended after a key without its value");
  buffer_.push_back('}');
  open_.pop_back();
  after_value();
}

void JsonStreamWriter::begin_list() {
  if (before_value()) throw Error("JSON: a list or tuple cannot be a dict key");
  buffer_.push_back('[');
  open_.push_back(Open{false});
}

void JsonStreamWriter::end_list() {
  if (open_.empty() || open_.back().is_dict) throw std::logic_error("JsonStreamWriter: end_list without begin_list");
  buffer_.push_back(']');
  open_.pop_back();
  after_value();
}

void JsonStreamWriter::write_str(std::string_view text) {
  before_value();
  quoted(text);
  after_value();
}

void JsonStreamWriter::write_int(std::int64_t value) { scalar(std::to_string(value)); }
void JsonStreamWriter::write_uint(std::uint64_t value) { scalar(std::to_string(value)); }
void JsonStreamWriter::write_big_int(const PickleBigInt& value) { scalar(value.to_decimal()); }

void JsonStreamWriter::write_bytes(std::string_view data) {
  throw Error("JSON cannot hold a bytes value (" + std::to_string(data.size()) + " bytes); write a pickle instead");
}

void JsonStreamWriter::write_float(double value) {
  if (!std::isfinite(value)) throw Error("JSON cannot hold the float " + std::to_string(value));
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", value);
  std::string formatted = text;
  if (formatted.find_first_of(".eE") == std::string::npos) formatted += ".0";  // stays a float when read back
  scalar(formatted);
}

void JsonStreamWriter::write_bool(bool value) { scalar(value ? "true" : "false"); }
void JsonStreamWriter::write_none() { scalar("null"); }

void JsonStreamWriter::finish() {
  if (!open_.empty()) throw std::logic_error("JsonStreamWriter: finish() with containers still open");
  if (!root_written_) throw std::logic_error("JsonStreamWriter: finish() before the root value");
  buffer_.push_back('\n');
  sink_.write(buffer_);
  buffer_.clear();
}

}  // namespace offsim::sim
