// Helpers shared by the chart builders: units (charts in GiB, tooltips with exact bytes), addresses, and
// the colours that mean the same thing in every chart.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace offsim::report::detail {

inline constexpr double kGiB = 1073741824.0;
inline constexpr double kMiB = 1048576.0;

inline double gib(std::uint64_t bytes) { return static_cast<double>(bytes) / kGiB; }
inline double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }

/// "0x7f3a00000000"
std::string hex_address(std::uint64_t address);
/// "5.01 GiB (5379194880 bytes)": the human size and the exact one, for tooltips and tables.
std::string bytes_with_exact(std::uint64_t bytes);
/// A JSON number that may be null, as bytes.
std::uint64_t bytes_or(const nlohmann::json& value, std::uint64_t fallback = 0);

/// Tooltip entry of a byte count field: exact, with thousands separators.
nlohmann::json exact_bytes_tooltip(const std::string& field, const std::string& title);
/// Tooltip entry of a GiB field, three decimals.
nlohmann::json gib_tooltip(const std::string& field, const std::string& title);

/// Width of the report's content box in CSS pixels (html_page.cpp: body max-width 1280 px, 24 px padding each
/// side): a chart wider than this is cut off or scrolls.
inline constexpr int kPageContentWidth = 1232;

/// Rough width of `chars` characters of the report's sans-serif at `font_px`, erring wide (DejaVu Sans, which
/// headless Chromium uses, averages 0.53 em per character of ids like "invokeai@8e71a8a5", 0.62 em in bold).
inline int text_width_px(std::size_t chars, double font_px, bool bold = false) {
  return static_cast<int>(static_cast<double>(chars) * font_px * (bold ? 0.68 : 0.6)) + 1;
}

/// Axis properties that keep a quantitative axis's labels apart on a chart `length_px` long: about one tick per
/// 90 px (Vega's default of one per 40 px puts "1,000" and "1,100" edge to edge on a run of a few thousand
/// allocator calls), and any label that would still come within 8 px of the previous one hidden.
nlohmann::json spaced_ticks(int length_px);

/// `text` as lines of at most `max_chars` characters, broken after a space, '-', '_', '/' or ',' where one
/// is near (else mid-word): a JSON array of strings, which Vega draws as multi-line text.
nlohmann::json wrap_lines(const std::string& text, std::size_t max_chars);

/// `text` wrapped to lines that fit `width_px` at `font_px` (text_width_px's estimate): titles and subtitles
/// that carry an OOM message are read in full, not cut at the chart's edge.
nlohmann::json wrap_to_width(const std::string& text, int width_px, double font_px, bool bold = false);

// Verdict colours (matrix and tables): pass, FAIL, over (P5 reported), n/a.
inline constexpr const char* kPassColour = "#8fd19e";
inline constexpr const char* kFailColour = "#e8605a";
inline constexpr const char* kOverColour = "#f6c85f";
inline constexpr const char* kNotApplicableColour = "#e6e8ee";
inline constexpr const char* kReservedColour = "#1f5fa8";
inline constexpr const char* kAllocatedColour = "#e07b28";
inline constexpr const char* kCapacityColour = "#a4221a";
inline constexpr const char* kOomColour = "#d62728";
inline constexpr const char* kEvictionColour = "#7b3fa0";

}  // namespace offsim::report::detail
