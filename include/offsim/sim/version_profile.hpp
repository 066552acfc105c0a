// Allocator behaviour that changed between PyTorch releases (spec section 12). A profile is selected by
// a release name ("2.4", "2.11"); everything else about the simulation is release-independent because
// the classic byte accounting has not changed since 2.1.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace offsim::sim {

struct VersionProfile {
  std::string name;  // "2.11"
  /// roundup_power2_divisions list: `>` fills entries after the last explicit one (2025 parser, ~2.9).
  /// Older parsers also overwrote the last explicit entry.
  bool roundup_tail_starts_after_last = true;
  /// max_non_split_rounding_mb exists (PR #136174, ~2.6); before it rule B used a fixed 20 MiB.
  bool has_max_non_split_rounding = true;
  /// large_segment_size_mb exists (PR #172056, ~2.11).
  bool has_large_segment_size = true;
  /// per_process_memory_fraction key and "fraction 1.0 removes the limit" (PR #161035, ~2.9).
  /// Older: any set_per_process_memory_fraction call sets a limit (1.0 too) and enables GC.
  bool fraction_one_is_unlimited = true;
  /// Memory fraction is taken of totalGlobalMem (newer) instead of cudaMemGetInfo total (older).
  bool fraction_of_total_global_mem = true;
  /// release_available_cached_blocks and GC skip expandable-segment blocks (2025).
  bool reclaim_skips_expandable = true;
  /// Expandable segments on ROCm (HIP VMM, PR #177974: ROCm builds of 2.11).
  bool rocm_expandable_segments = true;
  /// The OOM message's closing hint links docs.pytorch.org's PYTORCH_CUDA_ALLOC_CONF section (PR #172327,
  /// January 2026: ~2.11); before, pytorch.org's "environment-variables" anchor.
  bool oom_hint_links_alloc_conf_section = true;

  /// Known profiles, oldest first. "newest" is an alias of the last.
  static std::span<const VersionProfile> all();
  /// Throws ConfigError listing the known names.
  static const VersionProfile& by_name(std::string_view name);
  static const VersionProfile& newest();
  /// The profile a torch release runs: the newest one not newer than `torch_version` ("2.10.0+cu128" ->
  /// 2.9; profiles mark the releases where allocator behaviour changed), or the newest when the text has
  /// no major.minor or predates every profile. `note`, when given, is set when the name differs from
  /// the version.
  static const VersionProfile& for_torch_version(std::string_view torch_version, std::string* note = nullptr);
};

}  // namespace offsim::sim
