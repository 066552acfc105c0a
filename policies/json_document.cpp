#include "offsim/policies/json_document.hpp"

#include <cstring>
#include <iterator>
#include <set>
#include <vector>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Feeds nlohmann's parser from memory while publishing how far it got, so that an error raised by the
// handler below can name its position (the parser itself tells positions only to parse_error).
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = char;

  CountingIterator() = default;
  CountingIterator(const char* at, const char** cursor) : at_(at), cursor_(cursor) {}
  char operator*() const { return *at_; }
  CountingIterator& operator++() {
    ++at_;
    if (cursor_ != nullptr) *cursor_ = at_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator previous = *this;
    ++*this;
    return previous;
  }
  bool operator==(const CountingIterator& other) const { return at_ == other.at_; }
  bool operator!=(const CountingIterator& other) const { return at_ != other.at_; }

 private:
  const char* at_ = nullptr;
  const char** cursor_ = nullptr;
};

JsonPosition position_in(const std::string& text, std::size_t offset, std::size_t first_line) {
  offset = std::min(offset, text.size());
  JsonPosition p;
  p.line = first_line;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      line_start = i + 1;
    }
  }
  p.column = offset - line_start + 1;
  return p;
}

[[noreturn]] void fail_at(const std::string& source, const std::string& text, std::size_t offset,
                          std::size_t first_line, const std::string& what) {
  const JsonPosition p = position_in(text, offset, first_line);
  throw ParseError(source, p.line, p.column, what);
}

// nlohmann_json's DOM builder, plus what a user's file must not do: nest deeper than kMaxDepth, repeat a
// key (the DOM would silently keep the last one), or hold a number a double cannot (1e999: nlohmann
// raises out_of_range.406, which is not a parse_error).
class CheckedDomBuilder {
 public:
  CheckedDomBuilder(json& result, const std::string& source, const std::string& text, std::size_t first_line,
                    const char* const* cursor)
      : dom_(result, /*allow_exceptions=*/true), source_(source), text_(text), first_line_(first_line), cursor_(cursor) {}

  bool null() { return dom_.null(); }
  bool boolean(bool value) { return dom_.boolean(value); }
  bool number_integer(json::number_integer_t value) { return dom_.number_integer(value); }
  bool number_unsigned(json::number_unsigned_t value) { return dom_.number_unsigned(value); }
  bool number_float(json::number_float_t value, const json::string_t& text) { return dom_.number_float(value, text); }
  bool string(json::string_t& value) { return dom_.string(value); }
  bool binary(json::binary_t& value) { return dom_.binary(value); }
  bool start_object(std::size_t elements) {
    open();
    keys_.emplace_back();
    return dom_.start_object(elements);
  }
  bool key(json::string_t& value) {
    if (!keys_.back().insert(value).second) {
      fail("duplicate key \"" + value + "\" (JSON keeps only one of them; write it once)");
    }
    return dom_.key(value);
  }
  bool end_object() {
    --depth_;
    keys_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t elements) {
    open();
    return dom_.start_array(elements);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const nlohmann::detail::exception& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error ..." -> "syntax error ...";
    // the position goes in front, as everywhere else.
    std::string message = error.what();
    if (const auto bracket = message.find("] "); message.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
      message = message.substr(bracket + 2);
    }
    if (const auto colon = message.find(": "); message.rfind("parse error", 0) == 0 && colon != std::string::npos) {
      message = message.substr(colon + 2);
    }
    fail_at(source_, text_, position == 0 ? 0 : position - 1, first_line_, "not valid JSON: " + message);
  }

 private:
  void open() {
    if (++depth_ > JsonDocument::kMaxDepth) {
      fail("nests deeper than " + std::to_string(JsonDocument::kMaxDepth) + " levels (no offsim format nests more than 8)");
    }
  }
  [[noreturn]] void fail(const std::string& what) const {
    const std::size_t read = static_cast<std::size_t>(*cursor_ - text_.data());
    fail_at(source_, text_, read == 0 ? 0 : read - 1, first_line_, what);
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  const std::string& source_;
  const std::string& text_;
  std::size_t first_line_;
  const char* const* cursor_;
  std::size_t depth_ = 0;
  std::vector<std::set<std::string>> keys_;
};

// Walks the text of a valid document to the place a path names (only when an error is reported).
class PathScanner {
 public:
  explicit PathScanner(const std::string& text) : t_(text) {}

  std::size_t find(std::span<const JsonPathStep> path) {
    whitespace();
    std::size_t found = i_;
    for (const JsonPathStep& step : path) {
      whitespace();
      const std::size_t at = std::holds_alternative<std::string>(step) ? member(std::get<std::string>(step))
                                                                       : element(std::get<std::size_t>(step));
      if (at == kNone) break;
      found = at;
    }
    return found;
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  char peek() const { return i_ < t_.size() ? t_[i_] : '\0'; }
  void whitespace() {
    while (i_ < t_.size() && std::strchr(" \t\r\n", t_[i_]) != nullptr && t_[i_] != '\0') ++i_;
  }
  void skip_string() {
    ++i_;  // the opening quote
    while (i_ < t_.size() && t_[i_] != '"') i_ += t_[i_] == '\\' ? 2 : 1;
    ++i_;
  }
  void skip_value() {
    whitespace();
    const char c = peek();
    if (c == '"') {
      skip_string();
    } else if (c == '{' || c == '[') {
      int depth = 0;
      while (i_ < t_.size()) {
        const char d = t_[i_];
        if (d == '"') {
          skip_string();
          continue;
        }
        ++i_;
        if (d == '{' || d == '[') ++depth;
        if ((d == '}' || d == ']') && --depth == 0) break;
      }
    } else {
      while (i_ < t_.size() && std::strchr(",}] \t\r\n", t_[i_]) == nullptr) ++i_;
    }
  }
  // With i_ at a value: the offset of the member's key, leaving i_ at the member's value.
  std::size_t member(const std::string& wanted) {
    if (peek() != '{') return kNone;
    ++i_;
    for (;;) {
      whitespace();
      if (peek() != '"') return kNone;
      const std::size_t key_start = i_;
      skip_string();
      const std::string key = json::parse(t_.substr(key_start, i_ - key_start)).get<std::string>();
      whitespace();
      ++i_;  // ':'
      whitespace();
      if (key == wanted) return key_start;
      skip_value();
      whitespace();
      if (peek() != ',') return kNone;
      ++i_;
    }
  }
  std::size_t element(std::size_t wanted) {
    if (peek() != '[') return kNone;
    ++i_;
    for (std::size_t k = 0;; ++k) {
      whitespace();
      if (peek() == ']' || i_ >= t_.size()) return kNone;
      if (k == wanted) return i_;
      skip_value();
      whitespace();
      if (peek() != ',') return kNone;
      ++i_;
    }
  }

  const std::string& t_;
  std::size_t i_ = 0;
};

}  // namespace

JsonDocument JsonDocument::parse(std::string text, std::string source, std::size_t first_line) {
  JsonDocument doc;
  doc.owned_ = std::make_unique<json>();
  doc.source_ = std::move(source);
  doc.first_line_ = first_line;
  doc.text_ = std::move(text);
  const char* cursor = doc.text_.data();
  CheckedDomBuilder builder(*doc.owned_, doc.source_, doc.text_, first_line, &cursor);
  const char* begin = doc.text_.data();
  json::sax_parse(CountingIterator(begin, &cursor), CountingIterator(begin + doc.text_.size(), nullptr), &builder,
                  json::input_format_t::json, /*strict=*/true);
  doc.root_ = doc.owned_.get();
  return doc;
}

JsonDocument JsonDocument::from_value(const json& value, std::string source) {
  JsonDocument doc;
  doc.root_ = &value;
  doc.source_ = std::move(source);
  return doc;
}

JsonPosition JsonDocument::locate(std::span<const JsonPathStep> path) const {
  if (text_.empty() && root_ != nullptr) text_ = root_->dump(2);
  PathScanner scanner(text_);
  return position_in(text_, scanner.find(path), first_line_);
}

}  // namespace offsim::policies
