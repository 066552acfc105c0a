#include "chart_util.hpp"

#include <algorithm>
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

nlohmann::json spaced_ticks(int length_px) {
  return {{"tickCount", std::max(2, length_px / 90)}, {"labelOverlap", true}, {"labelSeparation", 8}};
}

nlohmann::json wrap_lines(const std::string& text, std::size_t max_chars) {
  nlohmann::json lines = nlohmann::json::array();
  max_chars = std::max<std::size_t>(max_chars, 8);
  std::size_t begin = 0;
  while (text.size() - begin > max_chars) {
    // The last break opportunity within the line; a line shorter than half the limit is not worth it.
    std::size_t cut = std::string::npos;
    for (std::size_t i = begin + max_chars; i > begin + max_chars / 2; --i) {
      const char c = text[i - 1];
      if (c == ' ' || c == '-' || c == '_' || c == '/' || c == ',') {
        cut = i;
        break;
      }
    }
    if (cut == std::string::npos) cut = begin + max_chars;
    std::string line = text.substr(begin, cut - begin);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines.push_back(line);
    begin = cut;
    while (begin < text.size() && text[begin] == ' ') ++begin;
  }
  if (begin < text.size() || lines.empty()) lines.push_back(text.substr(begin));
  return lines;
}

nlohmann::json wrap_to_width(const std::string& text, int width_px, double font_px, bool bold) {
  std::size_t chars = 8;
  while (text_width_px(chars + 1, font_px, bold) <= width_px) ++chars;
  return wrap_lines(text, chars);
}

nlohmann::json exact_bytes_tooltip(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title + " (bytes)"}, {"format", ",d"}};
}

nlohmann::json gib_tooltip(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title + " (GiB)"}, {"format", ".3f"}};
}

}  // namespace offsim::report::detail
