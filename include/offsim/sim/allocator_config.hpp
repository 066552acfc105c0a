// PYTORCH_CUDA_ALLOC_CONF parsed with PyTorch's syntax and errors
// (c10/core/AllocatorConfig.cpp, c10/cuda/CUDAAllocatorConfig.cpp; spec sections 2.2-2.3).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim {

inline constexpr std::uint64_t kMinBlockSize = 512;
inline constexpr std::uint64_t kSmallSize = 1 * MiB;
inline constexpr std::uint64_t kSmallBuffer = 2 * MiB;
inline constexpr std::uint64_t kMinLargeAlloc = 10 * MiB;
inline constexpr std::uint64_t kRoundLarge = 2 * MiB;
inline constexpr std::uint64_t kDefaultLargeSegmentSize = 20 * MiB;
inline constexpr std::uint64_t kUnlimitedSplitSize = std::numeric_limits<std::uint64_t>::max();

enum class AllocatorBackend : std::uint8_t { kNative, kCudaMallocAsync };

struct AllocatorConfig {
  std::uint64_t max_split_size = kUnlimitedSplitSize;
  std::uint64_t max_non_split_rounding_size = kDefaultLargeSegmentSize;
  std::uint64_t large_segment_size = kDefaultLargeSegmentSize;
  /// roundup_power2_divisions table: entry 0 covers sizes < 2 MiB, entry i covers [2^i, 2^(i+1)) MiB,
  /// entry 15 everything >= 32 GiB. 0 or 1 = no power-of-two rounding.
  std::array<std::uint64_t, 16> roundup_power2_divisions{};
  double garbage_collection_threshold = 0.0;
  bool expandable_segments = false;
  std::optional<double> per_process_memory_fraction;
  AllocatorBackend backend = AllocatorBackend::kNative;
  /// Keys that were accepted but do not change byte counts (pinned memory, locking), e.g.
  /// "release_lock_on_cudamalloc".
  std::vector<std::string> not_modelled;
  /// The string this config was parsed from (allocator_settings["PYTORCH_CUDA_ALLOC_CONF"]).
  std::string source;

  /// Parses a settings string the way PyTorch does for `profile`. Applying a string to an existing
  /// config (torch._C._accelerator_setAllocatorSettings) resets max_split_size, the divisions table and
  /// the GC threshold first but keeps expandable_segments; pass that config as `previous`.
  /// Throws ConfigError naming the key and the value.
  static AllocatorConfig parse(std::string_view settings, const VersionProfile& profile = VersionProfile::newest(),
                               const AllocatorConfig* previous = nullptr);

  /// Divisions that apply to a request of `size` bytes. Inline: it runs on every malloc.
  std::uint64_t divisions_for(std::uint64_t size) const {
    // Intervals start at 1 MiB: index = floor(log2(size)) - 20, clamped to the table.
    const int log_size = size == 0 ? 0 : static_cast<int>(std::bit_width(size)) - 1;
    const int index = std::clamp(log_size - 20, 0, static_cast<int>(roundup_power2_divisions.size()) - 1);
    return roundup_power2_divisions[static_cast<std::size_t>(index)];
  }

  /// The block size a request of `size` bytes gets (round_size upstream, spec section 2.1): at least 512,
  /// a multiple of 512, or the next power-of-two division where roundup_power2_divisions applies.
  /// Inline: it runs on every malloc.
  std::uint64_t round_size(std::uint64_t size) const {
    if (size < kMinBlockSize) return kMinBlockSize;
    const std::uint64_t divisions = divisions_for(size);
    if (divisions > 1 && size > kMinBlockSize * divisions) return roundup_power2_next_division(size, divisions);
    return kMinBlockSize * ((size + kMinBlockSize - 1) / kMinBlockSize);
  }

  static std::uint64_t roundup_power2_next_division(std::uint64_t size, std::uint64_t divisions) {
    if (std::has_single_bit(size)) return size;
    const std::uint64_t floor_pow2 = std::bit_floor(size);
    const std::uint64_t step = floor_pow2 >> (std::bit_width(divisions) - 1);
    if (step == 0) return 2 * floor_pow2;
    const std::uint64_t low = size / step * step;
    return low == size ? size : low + step;
  }
};

}  // namespace offsim::sim
