#include "chart_util.hpp"

#include <cstdio>

#include "offsim/sim/bytes.hpp"

namespace offsim::report::detail {

std::string hex_address(std::uint64_t address) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(address));
  return buf;
}

std::string bytes_with_exact(std::uint64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

std::uint64_t bytes_or(const nlohmann::json& value, std::uint64_t fallback) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    return v < 0 ? fallback : static_cast<std::uint64_t>(v);
  }
  return fallback;
}

nlohmann::json exact_bytes_tooltip(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title + " (bytes)"}, {"format", ",d"}};
}

nlohmann::json gib_tooltip(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title + " (GiB)"}, {"format", ".3f"}};
}

}  // namespace offsim::report::detail
