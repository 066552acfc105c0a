// Byte quantities: the allocator's constants, human-readable formatting and parsing of sizes such as
// "44.98GiB" (what drivers report is rarely a whole number of GiB).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace offsim {

inline constexpr std::uint64_t KiB = 1024;
inline constexpr std::uint64_t MiB = 1024 * KiB;
inline constexpr std::uint64_t GiB = 1024 * MiB;

/// "5.01 GiB", "31.12 MiB", "512 bytes": two decimals, binary units, as PyTorch's OOM message prints.
std::string format_bytes(std::uint64_t bytes);

/// Parses "1234", "1234B", "20MiB", "44.98GiB", "1.5 GB" (GB/MB/KB are decimal, GiB/MiB/KiB binary).
/// Fractional values are rounded to the nearest byte. Throws ConfigError naming `what` and the text.
std::uint64_t parse_bytes(std::string_view text, std::string_view what = "size");

}  // namespace offsim
