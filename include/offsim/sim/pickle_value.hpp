// The plain-Python value subset that memory snapshots are made of (dict, list, tuple, str, bytes, int
// including big ints, float, bool, None), as read from a pickle or a JSON file. Containers have reference
// semantics like Python objects: the pickle memo and the value tree share them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace offsim::sim {

class PickleValue;

/// An int that does not fit in int64: two's-complement bytes, little-endian, as pickle's LONG1/LONG4
/// store them (at least one byte; no redundant sign bytes).
struct PickleBigInt {
  std::vector<std::uint8_t> twos_complement;

  bool negative() const { return !twos_complement.empty() && (twos_complement.back() & 0x80U) != 0; }
  /// The value when it is in [0, 2^64), e.g. an address or a size written as LONG1 with 9 bytes.
  std::optional<std::uint64_t> to_uint64() const;
  /// Decimal digits ("-" prefixed when negative), for messages and JSON.
  std::string to_decimal() const;
  friend bool operator==(const PickleBigInt&, const PickleBigInt&) = default;
};

/// A str or bytes payload (pickle keeps the two apart; JSON has only str).
struct PickleBytes {
  std::string data;
  friend bool operator==(const PickleBytes&, const PickleBytes&) = default;
};

/// Bookkeeping shared by containers. A container is open (its items may still change) until it is placed
/// inside another container; after that it is sealed. The pickle reader refuses to change a sealed
/// container, which rules out reference cycles (Python pickles of plain data never need them) and keeps
/// `depth` exact.
struct PickleContainerInfo {
  std::uint64_t offset = 0;  // byte offset in the input where the container started (for messages)
  bool sealed = false;
  std::uint32_t depth = 1;               // 1 + the deepest contained container
  std::optional<std::uint32_t> memo_slot;  // last memo index that refers to it (for release)
  /// Items a streaming consumer took out of this list instead of storing them (see PickleItemSink).
  std::uint64_t streamed_items = 0;
};

struct PickleList {
  std::vector<PickleValue> items;
  PickleContainerInfo info;
};

struct PickleTuple {
  std::vector<PickleValue> items;
  PickleContainerInfo info;
};

/// Entries in insertion order. Setting a key twice keeps both entries and `find` returns the last one,
/// which is what Python's dict would hold; keeping both avoids a hash table per dict.
struct PickleDict {
  std::vector<std::pair<PickleValue, PickleValue>> entries;
  PickleContainerInfo info;

  const PickleValue* find(std::string_view key) const;
};

/// `module.name` pushed by GLOBAL / STACK_GLOBAL. Only the callables named in pickle_reader.hpp are
/// accepted; this value only lives on the reader's stack until REDUCE applies it.
struct PickleGlobal {
  std::string module;
  std::string name;
  friend bool operator==(const PickleGlobal&, const PickleGlobal&) = default;
};

/// A memo entry whose value a streaming consumer has taken (see PickleItemSink). Reading it again
/// yields this marker; consumers reject it where they need the value and ignore it elsewhere (frames).
struct PickleReleased {
  friend bool operator==(const PickleReleased&, const PickleReleased&) = default;
};

class PickleValue {
 public:
  enum class Kind : std::uint8_t {
    kNone, kBool, kInt, kBigInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kGlobal, kReleased
  };

  PickleValue() = default;
  static PickleValue none() { return PickleValue(); }
  static PickleValue boolean(bool value) { return PickleValue(Storage(std::in_place_index<1>, value)); }
  static PickleValue integer(std::int64_t value) { return PickleValue(Storage(std::in_place_index<2>, value)); }
  static PickleValue big_integer(PickleBigInt value);  // normalises to integer() when it fits int64
  static PickleValue floating(double value) { return PickleValue(Storage(std::in_place_index<4>, value)); }
  static PickleValue str(std::string value) { return PickleValue(Storage(std::in_place_index<5>, std::move(value))); }
  static PickleValue bytes(std::string value) {
    return PickleValue(Storage(std::in_place_index<6>, PickleBytes{std::move(value)}));
  }
  static PickleValue new_list() { return PickleValue(Storage(std::in_place_index<7>, std::make_shared<PickleList>())); }
  static PickleValue new_tuple(std::vector<PickleValue> items);
  static PickleValue new_dict() { return PickleValue(Storage(std::in_place_index<9>, std::make_shared<PickleDict>())); }
  static PickleValue global(std::string module, std::string name) {
    return PickleValue(
        Storage(std::in_place_index<10>, std::make_shared<const PickleGlobal>(PickleGlobal{std::move(module), std::move(name)})));
  }
  static PickleValue released() { return PickleValue(Storage(std::in_place_index<11>, PickleReleased{})); }

  Kind kind() const { return static_cast<Kind>(storage_.index()); }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_container() const { return kind() == Kind::kList || kind() == Kind::kTuple || kind() == Kind::kDict; }

  bool as_bool() const { return std::get<1>(storage_); }
  std::int64_t as_int() const { return std::get<2>(storage_); }
  const PickleBigInt& as_big_int() const { return std::get<3>(storage_); }
  double as_float() const { return std::get<4>(storage_); }
  const std::string& as_str() const { return std::get<5>(storage_); }
  const std::string& as_bytes() const { return std::get<6>(storage_).data; }
  PickleList& as_list() const { return *std::get<7>(storage_); }
  PickleTuple& as_tuple() const { return *std::get<8>(storage_); }
  PickleDict& as_dict() const { return *std::get<9>(storage_); }
  const PickleGlobal& as_global() const { return *std::get<10>(storage_); }

  /// The container's bookkeeping; nullptr for scalars.
  PickleContainerInfo* container_info() const;
  /// Same object (containers) or equal value (scalars).
  bool same_object(const PickleValue& other) const;

  /// Python's spelling of the type, for messages: "dict", "list", "int", "NoneType", ...
  std::string_view type_name() const;

  /// Structural equality (containers compared by content, not identity).
  friend bool operator==(const PickleValue& a, const PickleValue& b);

 private:
  using Storage = std::variant<std::monostate, bool, std::int64_t, PickleBigInt, double, std::string, PickleBytes,
                               std::shared_ptr<PickleList>, std::shared_ptr<PickleTuple>,
                               std::shared_ptr<PickleDict>, std::shared_ptr<const PickleGlobal>, PickleReleased>;
  explicit PickleValue(Storage storage) : storage_(std::move(storage)) {}
  Storage storage_;
};

std::string_view to_string(PickleValue::Kind kind);

}  // namespace offsim::sim
