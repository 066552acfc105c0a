// A JSON document that a user wrote (a scenario, a line of a decision log), kept with its text so that an
// error about any field can name the line and column where that field is written: FILE:LINE:COLUMN, as
// the snapshot reader names FILE:OFFSET. Parsing refuses what nlohmann_json would only report as an
// internal error (a number beyond a double's range such as 1e999) and nesting too deep to be data.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <variant>

namespace offsim::policies {

/// One step into a JSON document: an object member (by key) or an array element (by index).
using JsonPathStep = std::variant<std::string, std::size_t>;

/// 1-based line and column (in bytes) of a place in a document's text.
struct JsonPosition {
  std::size_t line = 1;
  std::size_t column = 1;
};

class JsonDocument {
 public:
  /// Deeper nesting is refused: no offsim format nests more than 8 levels.
  static constexpr std::size_t kMaxDepth = 64;

  /// Parses `text`; `first_line` is the line of the text's first byte in `source` (a decision log holds
  /// one document per line). Invalid JSON throws ParseError "source:line:column: not valid JSON: ...".
  static JsonDocument parse(std::string text, std::string source, std::size_t first_line = 1);
  /// A document built in memory (a generated scenario). It has no text of its own: positions refer to the
  /// document as `value.dump(2)` prints it, which is how offsim writes such documents to files.
  static JsonDocument from_value(const nlohmann::json& value, std::string source);

  const nlohmann::json& root() const { return *root_; }
  const std::string& source() const { return source_; }

  /// Where the value at `path` is written: the key of an object member, the first byte of an array
  /// element. A path that does not exist (a missing key) gives the position of its deepest existing part.
  JsonPosition locate(std::span<const JsonPathStep> path) const;

 private:
  JsonDocument() = default;

  std::unique_ptr<nlohmann::json> owned_;  // parsed documents own their value
  const nlohmann::json* root_ = nullptr;
  std::string source_;
  std::size_t first_line_ = 1;
  mutable std::string text_;  // dumped on first use for documents built in memory
};

}  // namespace offsim::policies
