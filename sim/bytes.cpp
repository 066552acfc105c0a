#include "offsim/sim/bytes.hpp"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim {

std::string format_bytes(std::uint64_t bytes) {
  // Same thresholds as PyTorch's format_size() in CUDACachingAllocator.cpp (used in OOM messages).
  char buffer[64];
  if (bytes <= 1024) {
    std::snprintf(buffer, sizeof buffer, "%llu bytes", static_cast<unsigned long long>(bytes));
  } else if (bytes <= MiB) {
    std::snprintf(buffer, sizeof buffer, "%.2f KiB", static_cast<double>(bytes) / KiB);
  } else if (bytes <= GiB) {
    std::snprintf(buffer, sizeof buffer, "%.2f MiB", static_cast<double>(bytes) / MiB);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.2f GiB", static_cast<double>(bytes) / GiB);
  }
  return buffer;
}

std::uint64_t parse_bytes(std::string_view text, std::string_view what) {
  auto fail = [&](const char* why) {
    throw ConfigError(std::string(what) + ": cannot read \"" + std::string(text) + "\" as a byte size (" + why +
                      "; expected e.g. 1073741824, 20MiB, 44.98GiB or 1.5GB)");
  };
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const std::size_t number_start = i;
  bool seen_digit = false, seen_dot = false;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    if (text[i] == '.') {
      if (seen_dot) fail("two decimal points");
      seen_dot = true;
    } else {
      seen_digit = true;
    }
    ++i;
  }
  if (!seen_digit) fail("no number");
  const std::string number(text.substr(number_start, i - number_start));
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit;
  while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) unit += static_cast<char>(text[i++]);
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i != text.size()) fail("unexpected characters after the unit");

  double scale = 1;
  if (unit.empty() || unit == "B" || unit == "bytes") scale = 1;
  else if (unit == "KiB") scale = static_cast<double>(KiB);
  else if (unit == "MiB") scale = static_cast<double>(MiB);
  else if (unit == "GiB") scale = static_cast<double>(GiB);
  else if (unit == "TiB") scale = static_cast<double>(GiB) * 1024;
  else if (unit == "KB" || unit == "kB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  else fail("unknown unit");

  if (!seen_dot && scale == 1) {
    std::uint64_t exact = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), exact);
    if (error != std::errc() || end != number.data() + number.size()) fail("too large: above 2^64 - 1 bytes");
    return exact;
  }
  // strtod, not stod: a number too large for a double is HUGE_VAL here, not a std::out_of_range.
  const double value = std::strtod(number.c_str(), nullptr) * scale;
  if (!(value < 1.8e19)) fail("too large: above 2^64 - 1 bytes");
  return static_cast<std::uint64_t>(std::round(value));
}

}  // namespace offsim
