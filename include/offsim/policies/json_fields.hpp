// Strict reading of the objects of a JsonDocument (scenarios, decision logs): every object declares the
// keys it knows, and a key it does not know is an error naming the nearest known one ("initialy_resident":
// did you mean "initially_resident"?), because a typo that is ignored silently runs something else than
// the user wrote. Every value is checked for its type and range before it is converted (no wrap-around
// of 4294967808 into an int), and every error is a ParseError "FILE:LINE:COLUMN: field: what".
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/policies/json_document.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

/// Largest byte count a user's file may hold: 1 EiB, PyTorch's own limit on one request
/// (CUDACachingAllocator.cpp, "Tried to allocate more than 1EB memory"); no device is larger.
inline constexpr std::uint64_t kMaxJsonBytes = std::uint64_t{1} << 60;

/// How a reader names fields in its messages.
struct JsonFieldNaming {
  std::string root;             // printed before the path ("scenario.stages[0].name"); may be empty
  bool quoted = false;          // `field "a.b": ...` (decision logs) instead of `a.b: ...` (scenarios)
  bool nulls_allowed = false;   // false: a null member is an error (leave the key out for the default)
};

class JsonFields {
 public:
  /// The document's root, which must be an object with only `keys`.
  JsonFields(const JsonDocument& document, JsonFieldNaming naming, std::vector<std::string_view> keys);

  /// Member `key`, which must be an object with only `keys` (an empty list: any key, read freely);
  /// `nullable` lists the keys that may be null where the naming refuses nulls.
  JsonFields object(std::string_view key, std::vector<std::string_view> keys,
                    std::vector<std::string_view> nullable = {}) const;
  /// Element `index` of the list member `key`, which must be an object with only `keys`.
  JsonFields element(std::string_view key, std::size_t index, std::vector<std::string_view> keys) const;

  /// Throws ParseError at `key` (empty: this object itself); `suffix` reaches inside the member
  /// ("ops", 3 for ops[3]).
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;
  [[noreturn]] void fail(std::string_view key, std::initializer_list<JsonPathStep> suffix, const std::string& what) const;
  /// "scenario.stages[0].steps": how messages name `key`.
  std::string name(std::string_view key) const;

  /// Present (null included).
  bool present(std::string_view key) const;
  /// Present and not null.
  bool has(std::string_view key) const;
  /// The raw member; missing throws "missing".
  const nlohmann::json& raw(std::string_view key) const;

  std::string string(std::string_view key) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  bool boolean(std::string_view key) const;
  std::optional<bool> optional_boolean(std::string_view key) const;
  /// An integer in [min, max]; 2^32 + 1 is refused, not wrapped, where max is below it.
  std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max) const;
  std::optional<std::int64_t> optional_integer(std::string_view key, std::int64_t min, std::int64_t max) const;
  /// A finite number in [min, max]; subnormals (1e-320) are refused as not meaningful.
  double number(std::string_view key, double min, double max) const;
  /// A byte count in [0, max]: an integer, or where `strings_allowed` a string such as "44.98GiB".
  std::uint64_t bytes(std::string_view key, bool strings_allowed, std::uint64_t max = kMaxJsonBytes) const;
  std::vector<std::string> strings(std::string_view key) const;
  /// A list of integers, each in [min, max].
  std::vector<std::int64_t> integers(std::string_view key, std::int64_t min, std::int64_t max) const;
  /// The string member parsed by `parse`, whose ConfigError becomes a ParseError at the member.
  template <typename Parse>
  auto parsed(std::string_view key, Parse&& parse) const {
    const std::string text = string(key);
    try {
      return parse(text);
    } catch (const ConfigError& e) {
      fail(key, e.what());
    }
  }

  const JsonDocument& document() const { return *document_; }
  const nlohmann::json& value() const { return *object_; }

 private:
  JsonFields(const JsonDocument& document, JsonFieldNaming naming, const nlohmann::json& object,
             std::vector<JsonPathStep> path, std::vector<std::string_view> keys, std::vector<std::string_view> nullable);
  const nlohmann::json& member(std::string_view key) const;  // declared and present
  void require_declared(std::string_view key) const;
  std::string describe(const std::vector<JsonPathStep>& path) const;

  const JsonDocument* document_;
  JsonFieldNaming naming_;
  const nlohmann::json* object_;
  std::vector<JsonPathStep> path_;
  std::vector<std::string_view> keys_;
};

/// The known name closest to `word` by edit distance, when close enough to be a likely typo.
std::optional<std::string_view> nearest_name(std::string_view word, const std::vector<std::string_view>& known);

/// " (did you mean "y"?)" when a known name is near `word`, else " (known: a, b, c)".
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& known);
/// "unknown family "x" (did you mean "y"?)" or "unknown family "x" (known: a, b, c)".
std::string unknown_name_message(std::string_view kind, std::string_view word, const std::vector<std::string_view>& known);

}  // namespace offsim::policies
