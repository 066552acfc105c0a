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
