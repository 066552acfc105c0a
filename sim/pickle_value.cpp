#include "offsim/sim/pickle_value.hpp"

#include <algorithm>
#include <array>

namespace offsim::sim {

std::optional<std::uint64_t> PickleBigInt::to_uint64() const {
  if (negative()) return std::nullopt;
  std::size_t used = twos_complement.size();
  while (used > 0 && twos_complement[used - 1] == 0) --used;  // a positive value may carry a 0x00 sign byte
  if (used > 8) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = used; i-- > 0;) value = (value << 8U) | twos_complement[i];
  return value;
}

std::string PickleBigInt::to_decimal() const {
  // Magnitude in little-endian bytes, then repeated division by 10 (values here are at most a few words).
  std::vector<std::uint8_t> magnitude = twos_complement;
  const bool is_negative = negative();
  if (is_negative) {  // two's complement negate: invert and add one
    unsigned carry = 1;
    for (auto& byte : magnitude) {
      const unsigned sum = static_cast<unsigned>(static_cast<std::uint8_t>(~byte)) + carry;
      byte = static_cast<std::uint8_t>(sum & 0xFFU);
      carry = sum >> 8U;
    }
  }
  std::vector<char> digits;  // least significant first
  auto is_zero = [&] { return std::all_of(magnitude.begin(), magnitude.end(), [](auto b) { return b == 0; }); };
  while (!is_zero()) {
    unsigned remainder = 0;
    for (std::size_t i = magnitude.size(); i-- > 0;) {
      const unsigned current = (remainder << 8U) | magnitude[i];
      magnitude[i] = static_cast<std::uint8_t>(current / 10);
      remainder = current % 10;
    }
    digits.push_back(static_cast<char>('0' + remainder));
  }
  if (digits.empty()) digits.push_back('0');
  if (is_negative) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

const PickleValue* PickleDict::find(std::string_view key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first.kind() == PickleValue::Kind::kStr && it->first.as_str() == key) return &it->second;
  }
  return nullptr;
}

PickleValue PickleValue::big_integer(PickleBigInt value) {
  const auto& bytes = value.twos_complement;
  if (bytes.size() <= 8) {
    std::uint64_t raw = 0;
    for (std::size_t i = bytes.size(); i-- > 0;) raw = (raw << 8U) | bytes[i];
    if (!bytes.empty() && value.negative() && bytes.size() < 8) {
      raw |= ~std::uint64_t{0} << (8 * bytes.size());  // sign-extend
    }
    return integer(static_cast<std::int64_t>(raw));
  }
  return PickleValue(Storage(std::in_place_index<3>, std::move(value)));
}

PickleValue PickleValue::new_tuple(std::vector<PickleValue> items) {
  auto tuple = std::make_shared<PickleTuple>();
  tuple->items = std::move(items);
  return PickleValue(Storage(std::in_place_index<8>, std::move(tuple)));
}

PickleContainerInfo* PickleValue::container_info() const {
  switch (kind()) {
    case Kind::kList: return &as_list().info;
    case Kind::kTuple: return &as_tuple().info;
    case Kind::kDict: return &as_dict().info;
    default: return nullptr;
  }
}

bool PickleValue::same_object(const PickleValue& other) const {
  if (kind() != other.kind()) return false;
  switch (kind()) {
    case Kind::kList: return &as_list() == &other.as_list();
    case Kind::kTuple: return &as_tuple() == &other.as_tuple();
    case Kind::kDict: return &as_dict() == &other.as_dict();
    default: return *this == other;
  }
}

std::string_view PickleValue::type_name() const { return to_string(kind()); }

std::string_view to_string(PickleValue::Kind kind) {
  constexpr std::array<std::string_view, 12> kNames = {
      "NoneType", "bool", "int", "int", "float", "str", "bytes", "list", "tuple", "dict", "global", "released value"};
  return kNames[static_cast<std::size_t>(kind)];
}

bool operator==(const PickleValue& a, const PickleValue& b) {
  using Kind = PickleValue::Kind;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kList: return a.as_list().items == b.as_list().items;
    case Kind::kTuple: return a.as_tuple().items == b.as_tuple().items;
    case Kind::kDict: return a.as_dict().entries == b.as_dict().entries;
    case Kind::kGlobal: return a.as_global() == b.as_global();
    default: return a.storage_ == b.storage_;
  }
}

}  // namespace offsim::sim
