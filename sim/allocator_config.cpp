#include "offsim/sim/allocator_config.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <string>
#include <vector>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

// Tokens as c10::CachingAllocator::ConfigTokenizer (c10/core/AllocatorConfig.h) makes them: ',', ':', '['
// and ']' are tokens of their own, every std::isspace character is dropped (older lexArgs dropped only
// ' ', but then parsed numbers with stoi/stod, which skip leading whitespace), everything else
// accumulates.
std::vector<std::string> lex(std::string_view settings) {
  std::vector<std::string> tokens;
  std::string buffer;
  for (char c : settings) {
    if (c == ',' || c == ':' || c == '[' || c == ']') {
      if (!buffer.empty()) tokens.push_back(std::move(buffer));
      buffer.clear();
      tokens.emplace_back(1, c);
    } else if (std::isspace(static_cast<unsigned char>(c)) == 0) {
      buffer.push_back(c);
    }
  }
  if (!buffer.empty()) tokens.push_back(std::move(buffer));
  return tokens;
}

class Parser {
 public:
  Parser(std::string_view settings, const VersionProfile& profile)
      : settings_(settings), profile_(profile), tokens_(lex(settings)) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw ConfigError("PYTORCH_CUDA_ALLOC_CONF \"" + std::string(settings_) + "\": " + why);
  }

  std::size_t size() const { return tokens_.size(); }
  const std::string& at(std::size_t i) const { return tokens_[i]; }

  void expect(std::size_t i, char c) const {
    if (i >= tokens_.size() || tokens_[i] != std::string(1, c)) {
      fail(std::string("expected '") + c + "' " + (i < tokens_.size() ? "before \"" + tokens_[i] + "\"" : "at the end"));
    }
  }

  const std::string& value(std::size_t i, std::string_view key) const {
    if (i >= tokens_.size()) fail("expected a value for " + std::string(key));
    return tokens_[i];
  }

  std::uint64_t integer(std::size_t i, std::string_view key) const {
    const std::string& text = value(i, key);
    std::uint64_t out = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end != text.data() + text.size()) {
      fail(std::string(key) + " expects a non-negative integer, got \"" + text + "\"");
    }
    return out;
  }

  double real(std::size_t i, std::string_view key) const {
    const std::string& text = value(i, key);
    try {
      std::size_t used = 0;
      double out = std::stod(text, &used);
      if (used != text.size()) throw std::invalid_argument(text);
      return out;
    } catch (const std::exception&) {
      fail(std::string(key) + " expects a number, got \"" + text + "\"");
    }
  }

  bool boolean(std::size_t i, std::string_view key) const {
    const std::string& text = value(i, key);
    if (text == "True") return true;
    if (text == "False") return false;
    fail("Expected a single True/False argument for " + std::string(key) + ", got \"" + text + "\"");
  }

  const VersionProfile& profile() const { return profile_; }

 private:
  std::string_view settings_;
  const VersionProfile& profile_;
  std::vector<std::string> tokens_;
};

std::size_t parse_roundup(const Parser& p, std::size_t i, AllocatorConfig& config) {
  auto& table = config.roundup_power2_divisions;
  if (i < p.size() && p.at(i) == "[") {
    bool first = true;
    std::size_t last_index = 0;
    while (++i < p.size() && p.at(i) != "]") {
      const std::string& interval = p.at(i);
      p.expect(++i, ':');
      const std::uint64_t divisions = p.integer(++i, "roundup_power2_divisions");
      if (divisions != 0 && !std::has_single_bit(divisions)) {
        p.fail("For roundups, the divisons has to be power of 2 or 0 to disable roundup (got " +
               std::to_string(divisions) + ")");
      }
      if (interval == ">") {
        // Older parsers fill from the last explicit entry (overwriting it), newer from the next one.
        const std::size_t from = p.profile().roundup_tail_starts_after_last ? last_index + 1 : last_index;
        for (std::size_t k = from; k < table.size(); ++k) table[k] = divisions;
      } else {
        std::uint64_t start_mb = 0;
        auto [end, ec] = std::from_chars(interval.data(), interval.data() + interval.size(), start_mb);
        if (ec != std::errc() || end != interval.data() + interval.size() || !std::has_single_bit(start_mb)) {
          p.fail("For roundups, the intervals have to be power of 2 (got \"" + interval + "\")");
        }
        const std::size_t index = std::min<std::size_t>(std::bit_width(start_mb) - 1, table.size() - 1);
        if (first) {
          std::fill(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(index), divisions);
          first = false;
        }
        table[index] = divisions;
        last_index = index;
      }
      if (i + 1 >= p.size()) p.fail("unterminated roundup_power2_divisions list: expected ']'");
      if (p.at(i + 1) != "]") p.expect(++i, ',');
    }
    if (i >= p.size()) p.fail("unterminated roundup_power2_divisions list: expected ']'");
    return i;
  }
  const std::uint64_t divisions = p.integer(i, "roundup_power2_divisions");
  if (!std::has_single_bit(divisions)) {
    p.fail("For roundups, the divisons has to be power of 2 (got " + std::to_string(divisions) + ")");
  }
  table.fill(divisions);
  return i;
}

}  // namespace

AllocatorConfig AllocatorConfig::parse(std::string_view settings, const VersionProfile& profile,
                                       const AllocatorConfig* previous) {
  AllocatorConfig config;
  if (previous != nullptr) {
    // parseArgs resets only these; expandable_segments and the rest keep their values.
    config = *previous;
    config.max_split_size = kUnlimitedSplitSize;
    config.roundup_power2_divisions.fill(0);
    config.garbage_collection_threshold = 0.0;
    config.not_modelled.clear();
    if (profile.has_large_segment_size) config.max_non_split_rounding_size = config.large_segment_size;
  }
  config.source = std::string(settings);
  Parser p(settings, profile);

  // large_segment_size_mb is applied before the other keys (PR #172056) because the minimums of
  // max_split_size_mb and max_non_split_rounding_mb depend on it.
  for (std::size_t i = 0; i + 2 < p.size(); ++i) {
    if (p.at(i) == "large_segment_size_mb" && profile.has_large_segment_size && p.at(i + 1) == ":") {
      const std::uint64_t mb = p.integer(i + 2, "large_segment_size_mb");
      if (mb <= kMinLargeAlloc / MiB) {
        p.fail("large_segment_size_mb must be > " + std::to_string(kMinLargeAlloc / MiB) + ", got " + std::to_string(mb));
      }
      config.large_segment_size = mb * MiB;
      config.max_non_split_rounding_size = config.large_segment_size;
    }
  }
  const std::uint64_t min_split_mb = config.large_segment_size / MiB;

  for (std::size_t i = 0; i < p.size(); ++i) {
    const std::string key = p.at(i);
    p.expect(++i, ':');
    ++i;
    if (key == "max_split_size_mb") {
      const std::uint64_t mb = p.integer(i, key);
      if (mb < min_split_mb) {
        p.fail("CachingAllocator option max_split_size_mb too small, must be >= " + std::to_string(min_split_mb));
      }
      config.max_split_size = std::min(mb, kUnlimitedSplitSize / MiB) * MiB;
    } else if (key == "max_non_split_rounding_mb" && profile.has_max_non_split_rounding) {
      const std::uint64_t mb = p.integer(i, key);
      if (mb < min_split_mb) {
        p.fail("CachingAllocator option max_non_split_rounding_mb too small, must be >= " + std::to_string(min_split_mb));
      }
      config.max_non_split_rounding_size = std::min(mb, kUnlimitedSplitSize / MiB) * MiB;
    } else if (key == "large_segment_size_mb" && profile.has_large_segment_size) {
      (void)p.integer(i, key);  // applied above
    } else if (key == "garbage_collection_threshold") {
      const double threshold = p.real(i, key);
      if (!(threshold > 0.0 && threshold < 1.0)) {
        // Upstream's message says "garbage_collect_threshold"; name the key as the user wrote it too.
        p.fail("garbage_collection_threshold: garbage_collect_threshold is invalid, set it in (0.0, 1.0), got " +
               p.at(i));
      }
      config.garbage_collection_threshold = threshold;
    } else if (key == "roundup_power2_divisions") {
      i = parse_roundup(p, i, config);
    } else if (key == "expandable_segments") {
      config.expandable_segments = p.boolean(i, key);
    } else if (key == "per_process_memory_fraction" && profile.fraction_one_is_unlimited) {
      const double fraction = p.real(i, key);
      if (!(fraction >= 0.0 && fraction <= 1.0)) p.fail("per_process_memory_fraction is invalid, got " + p.at(i));
      config.per_process_memory_fraction = fraction;
    } else if (key == "backend") {
      const std::string& name = p.value(i, key);
      if (name == "native") config.backend = AllocatorBackend::kNative;
      else if (name == "cudaMallocAsync" || name == "hipMallocAsync") config.backend = AllocatorBackend::kCudaMallocAsync;
      else p.fail("Unknown allocator backend \"" + name + "\", options are native and cudaMallocAsync");
    } else if (key == "release_lock_on_cudamalloc" || key == "release_lock_on_hipmalloc" ||
               key == "pinned_use_cuda_host_register" || key == "pinned_use_hip_host_register" ||
               key == "pinned_use_background_threads" || key == "graph_capture_record_stream_reuse" ||
               key == "throw_on_cudamalloc_oom") {
      (void)p.boolean(i, key);
      config.not_modelled.push_back(key);
    } else if (key == "pinned_num_register_threads") {
      const std::uint64_t threads = p.integer(i, key);
      if (!std::has_single_bit(threads)) {
        p.fail("pinned_num_register_threads: Number of register threads has to be power of 2, got " +
               std::to_string(threads));
      }
      if (threads > 128) {
        p.fail("pinned_num_register_threads: Number of register threads should be less than or equal to 128, got " +
               std::to_string(threads));
      }
      config.not_modelled.push_back(key);
    } else if (key == "pinned_reserve_segment_size_mb") {
      // CUDAAllocatorConfig::parsePinnedReserveSegmentSize: an integer > 0.
      if (p.integer(i, key) == 0) {
        p.fail("pinned_reserve_segment_size_mb: Pinned reserve segment size has to be greater than 0");
      }
      config.not_modelled.push_back(key);
    } else if (key == "expandable_segments_reserve") {
      (void)p.value(i, key);
      config.not_modelled.push_back(key);
    } else {
      p.fail("Unrecognized CachingAllocator option: " + key);
    }
    if (i + 1 < p.size()) p.expect(++i, ',');
  }
  return config;
}

}  // namespace offsim::sim
