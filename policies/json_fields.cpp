#include "offsim/policies/json_fields.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "offsim/sim/bytes.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

std::string comma_list(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + std::string(names[i]);
  return out;
}

// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring): a
// swapped pair of letters ("invokeia") counts as one edit, as a typist makes it.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string type_of(const json& v) {
  if (v.is_number_float()) return "a number (" + v.dump() + ")";
  if (v.is_number()) return "an integer (" + v.dump() + ")";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "null";
  if (v.is_array()) return "a list";
  return "an object";
}

// 3 rather than 3.0 for whole numbers, as a user writes them.
std::string plain(double x) {
  if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  return json(x).dump();
}

}  // namespace

std::optional<std::string_view> nearest_name(std::string_view word, const std::vector<std::string_view>& known) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (std::string_view name : known) {
    const std::size_t distance = edit_distance(word, name);
    if (distance < best_distance) {
      best_distance = distance;
      best = name;
    }
  }
  // A typo changes a few letters; a third of the word (at least 2) still reads as the same name.
  if (!best || best_distance > std::max<std::size_t>(2, std::max(word.size(), best->size()) / 3)) return std::nullopt;
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& known) {
  if (const auto near = nearest_name(word, known)) return " (did you mean \"" + std::string(*near) + "\"?)";
  return " (known: " + comma_list(known) + ")";
}

std::string unknown_name_message(std::string_view kind, std::string_view word, const std::vector<std::string_view>& known) {
  return "unknown " + std::string(kind) + " \"" + std::string(word) + "\"" + did_you_mean(word, known);
}

JsonFields::JsonFields(const JsonDocument& document, JsonFieldNaming naming, std::vector<std::string_view> keys)
    : JsonFields(document, std::move(naming), document.root(), {}, std::move(keys), {}) {}

JsonFields::JsonFields(const JsonDocument& document, JsonFieldNaming naming, const json& object,
                       std::vector<JsonPathStep> path, std::vector<std::string_view> keys,
                       std::vector<std::string_view> nullable)
    : document_(&document), naming_(std::move(naming)), object_(&object), path_(std::move(path)), keys_(std::move(keys)) {
  if (!object_->is_object()) fail("", "must be a JSON object, got " + type_of(*object_));
  if (keys_.empty()) return;  // free-form: its reader looks up what it needs
  for (const auto& [key, value] : object_->items()) {
    if (std::find(keys_.begin(), keys_.end(), key) == keys_.end()) fail(key, "unknown key" + did_you_mean(key, keys_));
    const bool may_be_null = std::find(nullable.begin(), nullable.end(), key) != nullable.end();
    if (value.is_null() && !naming_.nulls_allowed && !may_be_null) {
      fail(key, "must not be null (leave the key out to use the default)");
    }
  }
}

std::string JsonFields::describe(const std::vector<JsonPathStep>& path) const {
  std::string out = naming_.root;
  for (const JsonPathStep& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      out += (out.empty() ? "" : ".") + *key;
    } else {
      out += "[" + std::to_string(std::get<std::size_t>(step)) + "]";
    }
  }
  return out;
}

std::string JsonFields::name(std::string_view key) const {
  std::vector<JsonPathStep> path = path_;
  if (!key.empty()) path.emplace_back(std::string(key));
  return describe(path);
}

void JsonFields::fail(std::string_view key, const std::string& what) const { fail(key, {}, what); }

void JsonFields::fail(std::string_view key, std::initializer_list<JsonPathStep> suffix, const std::string& what) const {
  std::vector<JsonPathStep> path = path_;
  if (!key.empty()) path.emplace_back(std::string(key));
  path.insert(path.end(), suffix.begin(), suffix.end());
  const std::string field = describe(path);
  const JsonPosition at = document_->locate(path);
  std::string message;
  if (!field.empty()) message = naming_.quoted ? "field \"" + field + "\": " : field + ": ";
  throw ParseError(document_->source(), at.line, at.column, message + what);
}

void JsonFields::require_declared(std::string_view key) const {
  // A reader asking for a key it did not declare is a bug in offsim, not in the file.
  if (!keys_.empty() && std::find(keys_.begin(), keys_.end(), key) == keys_.end()) {
    throw std::logic_error("JsonFields: \"" + std::string(key) + "\" is read but not declared for " + name(""));
  }
}

bool JsonFields::present(std::string_view key) const {
  require_declared(key);
  return object_->contains(key);
}

bool JsonFields::has(std::string_view key) const { return present(key) && !object_->at(key).is_null(); }

const json& JsonFields::raw(std::string_view key) const {
  if (!present(key)) fail(key, "missing");
  return object_->find(key).value();
}

const json& JsonFields::member(std::string_view key) const { return raw(key); }

JsonFields JsonFields::object(std::string_view key, std::vector<std::string_view> keys,
                              std::vector<std::string_view> nullable) const {
  const json& v = member(key);
  std::vector<JsonPathStep> path = path_;
  path.emplace_back(std::string(key));
  return JsonFields(*document_, naming_, v, std::move(path), std::move(keys), std::move(nullable));
}

JsonFields JsonFields::element(std::string_view key, std::size_t index, std::vector<std::string_view> keys) const {
  const json& list = member(key);
  if (!list.is_array()) fail(key, "must be a list, got " + type_of(list));
  if (index >= list.size()) fail(key, "has no element " + std::to_string(index));
  std::vector<JsonPathStep> path = path_;
  path.emplace_back(std::string(key));
  path.emplace_back(index);
  return JsonFields(*document_, naming_, list[index], std::move(path), std::move(keys), {});
}

std::string JsonFields::string(std::string_view key) const {
  const json& v = member(key);
  if (!v.is_string()) fail(key, "must be a string, got " + type_of(v));
  return v.get<std::string>();
}

std::optional<std::string> JsonFields::optional_string(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return string(key);
}

bool JsonFields::boolean(std::string_view key) const {
  const json& v = member(key);
  if (!v.is_boolean()) fail(key, "must be true or false, got " + type_of(v));
  return v.get<bool>();
}

std::optional<bool> JsonFields::optional_boolean(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return boolean(key);
}

std::int64_t JsonFields::integer(std::string_view key, std::int64_t min, std::int64_t max) const {
  const json& v = member(key);
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v.is_number_integer()) fail(key, "must be " + range + ", got " + type_of(v));
  // Unsigned values above int64's range would wrap in get<int64_t>.
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
    fail(key, "must be " + range + ", got " + v.dump());
  }
  const std::int64_t n = v.get<std::int64_t>();
  if (n < min || n > max) fail(key, "must be " + range + ", got " + v.dump());
  return n;
}

std::optional<std::int64_t> JsonFields::optional_integer(std::string_view key, std::int64_t min, std::int64_t max) const {
  if (!has(key)) return std::nullopt;
  return integer(key, min, max);
}

double JsonFields::number(std::string_view key, double min, double max) const {
  const json& v = member(key);
  if (!v.is_number()) fail(key, "must be a number, got " + type_of(v));
  const double x = v.get<double>();
  if (std::fpclassify(x) == FP_SUBNORMAL) {
    fail(key, v.dump() + " is below the smallest normal double (2.2e-308): not a meaningful setting");
  }
  if (!std::isfinite(x) || x < min || x > max) {
    fail(key, "must be a number from " + plain(min) + " to " + plain(max) + ", got " + v.dump());
  }
  return x;
}

std::uint64_t JsonFields::bytes(std::string_view key, bool strings_allowed, std::uint64_t max) const {
  const json& v = member(key);
  std::uint64_t b = 0;
  if (v.is_number_unsigned()) {
    b = v.get<std::uint64_t>();
  } else if (v.is_number_integer()) {
    fail(key, "must be >= 0 bytes, got " + v.dump());
  } else if (v.is_string() && strings_allowed) {
    try {
      b = parse_bytes(v.get<std::string>(), "byte count");
    } catch (const ConfigError& e) {
      fail(key, e.what());
    }
  } else {
    fail(key, strings_allowed ? "must be a byte count (an integer or a string such as \"44.98GiB\"), got " + type_of(v)
                              : "must be an integer number of bytes, got " + type_of(v));
  }
  if (b > max) {
    fail(key, v.dump() + " is above " + (max == kMaxJsonBytes ? std::string("1 EiB") : format_bytes(max)) +
                  ": not a byte count of any device" +
                  (max == kMaxJsonBytes ? " (PyTorch refuses requests of 1 EiB or more)" : ""));
  }
  return b;
}

std::vector<std::string> JsonFields::strings(std::string_view key) const {
  const json& v = member(key);
  if (!v.is_array()) fail(key, "must be a list of strings, got " + type_of(v));
  std::vector<std::string> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) fail(key, {i}, "must be a string, got " + type_of(v[i]));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<std::int64_t> JsonFields::integers(std::string_view key, std::int64_t min, std::int64_t max) const {
  const json& v = member(key);
  if (!v.is_array()) fail(key, "must be a list of integers, got " + type_of(v));
  std::vector<std::int64_t> out;
  out.reserve(v.size());
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    if (!e.is_number_integer()) fail(key, {i}, "must be " + range + ", got " + type_of(e));
    if ((e.is_number_unsigned() && e.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
        e.get<std::int64_t>() < min || e.get<std::int64_t>() > max) {
      fail(key, {i}, "must be " + range + ", got " + e.dump());
    }
    out.push_back(e.get<std::int64_t>());
  }
  return out;
}

}  // namespace offsim::policies
