#include "offsim/sim/version_profile.hpp"

#include <array>
#include <optional>
#include <string>
#include <utility>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

// Release boundaries are inferred from the dates of the PRs that changed behaviour (spec section 12);
// the classic byte accounting is the same in all of them.
VersionProfile make(const char* name, bool tail_after_last, bool non_split_rounding, bool large_segment,
                    bool fraction_modern, bool reclaim_skips_es, bool rocm_es, bool oom_hint_2026) {
  VersionProfile p;
  p.name = name;
  p.roundup_tail_starts_after_last = tail_after_last;
  p.has_max_non_split_rounding = non_split_rounding;
  p.has_large_segment_size = large_segment;
  p.fraction_one_is_unlimited = fraction_modern;
  p.fraction_of_total_global_mem = fraction_modern;
  p.reclaim_skips_expandable = reclaim_skips_es;
  p.rocm_expandable_segments = rocm_es;
  p.oom_hint_links_alloc_conf_section = oom_hint_2026;
  return p;
}

// "2.9.1+rocm6.4" -> (2, 9); nullopt when the text does not start with major.minor.
std::optional<std::pair<int, int>> major_minor(std::string_view version) {
  int major = 0, minor = 0;
  std::size_t i = 0;
  auto number = [&](int& out) {
    const std::size_t begin = i;
    while (i < version.size() && i - begin < 4 && version[i] >= '0' && version[i] <= '9') out = out * 10 + (version[i++] - '0');
    return i > begin;
  };
  if (!number(major) || i >= version.size() || version[i++] != '.' || !number(minor)) return std::nullopt;
  return std::pair{major, minor};
}

const std::array<VersionProfile, 4>& profiles() {
  static const std::array<VersionProfile, 4> all = {
      make("2.4", false, false, false, false, false, false, false),  // eb42ad6e / 001074d2 era
      make("2.6", false, true, false, false, false, false, false),   // + max_non_split_rounding_mb (PR #136174)
      make("2.9", true, true, false, true, true, false, false),      // AcceleratorAllocatorConfig parser, PR #161035
      make("2.11", true, true, true, true, true, true, true),        // large_segment_size_mb (PR #172056), ROCm ES,
                                                                      // OOM hint link (PR #172327)
  };
  return all;
}

}  // namespace

std::span<const VersionProfile> VersionProfile::all() { return profiles(); }

const VersionProfile& VersionProfile::newest() { return profiles().back(); }

const VersionProfile& VersionProfile::by_name(std::string_view name) {
  if (name == "newest" || name == "latest") return newest();
  std::string known;
  for (const VersionProfile& p : profiles()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw ConfigError("unknown PyTorch version profile \"" + std::string(name) + "\" (known: " + known +
                    ", newest)");
}

const VersionProfile& VersionProfile::for_torch_version(std::string_view torch_version, std::string* note) {
  const auto version = major_minor(torch_version);
  const VersionProfile* chosen = nullptr;
  if (version) {
    for (const VersionProfile& p : all()) {
      const auto profile = major_minor(p.name);
      if (profile && *profile <= *version) chosen = &p;
    }
  }
  if (chosen != nullptr) {
    if (note != nullptr && chosen->name != std::to_string(version->first) + "." + std::to_string(version->second)) {
      *note = "torch " + std::string(torch_version) + " runs the allocator of profile " + chosen->name;
    }
    return *chosen;
  }
  if (note != nullptr) {
    *note = "torch " + (torch_version.empty() ? std::string("version not logged") : "\"" + std::string(torch_version) + "\"") +
            ": no allocator profile applies, the newest (" + newest().name + ") is used";
  }
  return newest();
}

}  // namespace offsim::sim
