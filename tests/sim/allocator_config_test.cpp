// AllocatorConfig::parse against PyTorch's own expectations: c10/test/core/AllocatorConfig_test.cpp
// (division tables, runtime re-parsing), test/test_cuda.py (test_allocator_settings' invalid strings,
// test_allocator_memory_fraction_setting), and the parser rules of c10/core/AllocatorConfig.cpp,
// c10/core/AllocatorConfig.h (ConfigTokenizer) and c10/cuda/CUDAAllocatorConfig.cpp, including what
// differs between version profiles.
#include <gtest/gtest.h>

#include <string>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim {
namespace {

const VersionProfile& profile(const char* name) { return VersionProfile::by_name(name); }

/// Parses `settings` expecting a ConfigError and returns its message.
std::string parse_error(const std::string& settings, const VersionProfile& p = VersionProfile::newest()) {
  try {
    (void)AllocatorConfig::parse(settings, p);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "\"" << settings << "\" was accepted by the " << p.name << " parser";
  return {};
}

/// The part of an error message after the quoted settings string, so that "names the key" cannot be
/// satisfied by the echo of the input alone.
std::string explanation(const std::string& message, const std::string& settings) {
  const std::string quoted = "\"" + settings + "\"";
  const auto at = message.find(quoted);
  return at == std::string::npos ? message : message.substr(at + quoted.size());
}

// ---------------------------------------------------------------------------------------------------
// c10/test/core/AllocatorConfig_test.cpp

TEST(AllocatorConfigTest, allocator_config_test) {
  std::string env =
      "max_split_size_mb:40,"
      "max_non_split_rounding_mb:30,"
      "garbage_collection_threshold:0.5,"
      "roundup_power2_divisions:[64:8,128:2,256:4,512:2,1024:4,>:1],"
      "expandable_segments:True,"
      "pinned_use_background_threads:True";
  AllocatorConfig config = AllocatorConfig::parse(env);
  EXPECT_EQ(config.source, env);
  EXPECT_EQ(config.max_split_size, 40 * MiB);
  EXPECT_EQ(config.max_non_split_rounding_size, 30 * MiB);
  EXPECT_EQ(config.garbage_collection_threshold, 0.5);
  EXPECT_EQ(config.divisions_for(32 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(64 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(128 * MiB), 2U);
  EXPECT_EQ(config.divisions_for(256 * MiB), 4U);
  EXPECT_EQ(config.divisions_for(512 * MiB), 2U);
  EXPECT_EQ(config.divisions_for(1024 * MiB), 4U);
  EXPECT_EQ(config.divisions_for(2048 * MiB), 1U);
  EXPECT_EQ(config.divisions_for(4096 * MiB), 1U);
  EXPECT_EQ(config.divisions_for(8192 * MiB), 1U);
  EXPECT_TRUE(config.expandable_segments);

  env =
      "max_split_size_mb:20,"
      "max_non_split_rounding_mb:40,"
      "garbage_collection_threshold:0.8";
  config = AllocatorConfig::parse(env, VersionProfile::newest(), &config);
  EXPECT_EQ(config.source, env);
  EXPECT_EQ(config.max_split_size, 20 * MiB);
  EXPECT_EQ(config.max_non_split_rounding_size, 40 * MiB);
  EXPECT_EQ(config.garbage_collection_threshold, 0.8);
  EXPECT_EQ(config.divisions_for(64 * MiB), 0U);  // the table is reset by every parse
  EXPECT_TRUE(config.expandable_segments);          // expandable_segments is not

  // roundup_power2_divisions knob array syntax
  env = "roundup_power2_divisions:[128:8,256:16,512:1,2048:8,>:2]";
  config = AllocatorConfig::parse(env, VersionProfile::newest(), &config);
  EXPECT_EQ(config.source, env);
  EXPECT_EQ(config.divisions_for(64 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(128 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(256 * MiB), 16U);
  EXPECT_EQ(config.divisions_for(512 * MiB), 1U);
  EXPECT_EQ(config.divisions_for(1024 * MiB), 0U);
  EXPECT_EQ(config.divisions_for(2048 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(4096 * MiB), 2U);
  EXPECT_EQ(config.max_split_size, kUnlimitedSplitSize);
  EXPECT_EQ(config.garbage_collection_threshold, 0.0);

  // roundup_power2_divisions single value syntax for backward compatibility
  env = "roundup_power2_divisions:4";
  config = AllocatorConfig::parse(env, VersionProfile::newest(), &config);
  EXPECT_EQ(config.divisions_for(64 * MiB), 4U);
  EXPECT_EQ(config.divisions_for(256 * MiB), 4U);
  EXPECT_EQ(config.divisions_for(2048 * MiB), 4U);

  env = "expandable_segments:False,";  // a trailing comma is accepted
  config = AllocatorConfig::parse(env, VersionProfile::newest(), &config);
  EXPECT_EQ(config.source, env);
  EXPECT_FALSE(config.expandable_segments);

  env = "pinned_use_background_threads:False";
  config = AllocatorConfig::parse(env, VersionProfile::newest(), &config);
  EXPECT_EQ(config.source, env);
}

TEST(AllocatorConfigTest, large_segment_size_test) {
  EXPECT_EQ(AllocatorConfig::parse("").large_segment_size, 20 * MiB);
  const AllocatorConfig config = AllocatorConfig::parse("large_segment_size_mb:15");
  EXPECT_EQ(config.large_segment_size, 15 * MiB);
  EXPECT_EQ(config.max_non_split_rounding_size, 15 * MiB);  // follows the segment size unless set
  // max_split_size_mb must be >= large_segment_size_mb, whatever the order of the keys.
  EXPECT_NE(parse_error("max_split_size_mb:20,large_segment_size_mb:25").find("max_split_size_mb"), std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("max_split_size_mb:25,large_segment_size_mb:25").max_split_size, 25 * MiB);
  EXPECT_EQ(AllocatorConfig::parse("large_segment_size_mb:15,max_split_size_mb:15").max_split_size, 15 * MiB);
  EXPECT_NE(parse_error("large_segment_size_mb:15,max_non_split_rounding_mb:14").find("max_non_split_rounding_mb"),
            std::string::npos);
  // large_segment_size_mb must be > 10 (the large-segment rule's 10 MiB boundary).
  EXPECT_NE(parse_error("large_segment_size_mb:10").find("large_segment_size_mb"), std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("large_segment_size_mb:11").large_segment_size, 11 * MiB);
}

// ---------------------------------------------------------------------------------------------------
// test/test_cuda.py

TEST(AllocatorConfigTest, test_allocator_settings_invalid) {
  // Each raises ValueError upstream; each message must name the offending key.
  const std::pair<const char*, const char*> cases[] = {
      {"foo:1,bar:2", "foo"},
      {"garbage_collection_threshold:1.2", "garbage_collection_threshold"},
      {"max_split_size_mb:2", "max_split_size_mb"},
      {"release_lock_on_cudamalloc:none", "release_lock_on_cudamalloc"},
      {"pinned_use_cuda_host_register:none", "pinned_use_cuda_host_register"},
      {"pinned_num_register_threads:none", "pinned_num_register_threads"},
      {"pinned_num_register_threads:1024", "pinned_num_register_threads"},
  };
  for (const auto& [settings, key] : cases) {
    SCOPED_TRACE(settings);
    const std::string message = parse_error(settings);
    EXPECT_NE(explanation(message, settings).find(key), std::string::npos) << message;
  }
}

TEST(AllocatorConfigTest, test_allocator_settings_valid_strings_reset_the_rest) {
  // test_allocator_settings' sequence of runtime settings.
  AllocatorConfig config = AllocatorConfig::parse("roundup_power2_divisions:4");
  config = AllocatorConfig::parse("garbage_collection_threshold:0.5", VersionProfile::newest(), &config);
  config = AllocatorConfig::parse("garbage_collection_threshold:0.5,max_split_size_mb:40", VersionProfile::newest(),
                                  &config);
  EXPECT_EQ(config.divisions_for(84 * MiB), 0U);
  EXPECT_EQ(config.max_split_size, 40 * MiB);
  config = AllocatorConfig::parse("garbage_collection_threshold:0.5,roundup_power2_divisions:[64:8,128:2,256:2,512:2,1024:1,>:1]",
                                  VersionProfile::newest(), &config);
  EXPECT_EQ(config.max_split_size, kUnlimitedSplitSize);
  EXPECT_EQ(config.divisions_for(84 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(400 * MiB), 2U);
  config = AllocatorConfig::parse("release_lock_on_cudamalloc:True", VersionProfile::newest(), &config);
  EXPECT_EQ(config.divisions_for(84 * MiB), 0U);
  EXPECT_EQ(config.garbage_collection_threshold, 0.0);
  ASSERT_EQ(config.not_modelled.size(), 1U);
  EXPECT_EQ(config.not_modelled[0], "release_lock_on_cudamalloc");
}

TEST(AllocatorConfigTest, test_allocator_memory_fraction_setting) {
  EXPECT_EQ(AllocatorConfig::parse("per_process_memory_fraction:0.0").per_process_memory_fraction, 0.0);
  EXPECT_EQ(AllocatorConfig::parse("per_process_memory_fraction:0.5").per_process_memory_fraction, 0.5);
  EXPECT_EQ(AllocatorConfig::parse("per_process_memory_fraction:1.0").per_process_memory_fraction, 1.0);
  EXPECT_FALSE(AllocatorConfig::parse("").per_process_memory_fraction.has_value());
  for (const char* bad : {"per_process_memory_fraction:-0.1", "per_process_memory_fraction:1.1"}) {
    EXPECT_NE(parse_error(bad).find("per_process_memory_fraction is invalid"), std::string::npos) << bad;
  }
  // A later settings change keeps the fraction (CUDAAllocatorConfig does not reset it).
  const AllocatorConfig first = AllocatorConfig::parse("per_process_memory_fraction:0.5");
  EXPECT_EQ(AllocatorConfig::parse("roundup_power2_divisions:2", VersionProfile::newest(), &first)
                .per_process_memory_fraction,
            0.5);
}

// ---------------------------------------------------------------------------------------------------
// Parser rules (c10/core/AllocatorConfig.cpp, AllocatorConfig.h, c10/cuda/CUDAAllocatorConfig.cpp)

TEST(AllocatorConfigTest, Defaults) {
  const AllocatorConfig config = AllocatorConfig::parse("");
  EXPECT_EQ(config.max_split_size, kUnlimitedSplitSize);
  EXPECT_EQ(config.max_non_split_rounding_size, 20 * MiB);
  EXPECT_EQ(config.garbage_collection_threshold, 0.0);
  EXPECT_FALSE(config.expandable_segments);
  EXPECT_EQ(config.backend, AllocatorBackend::kNative);
  for (std::uint64_t size : {std::uint64_t{512}, 1 * MiB, 64 * MiB, 64 * GiB}) EXPECT_EQ(config.divisions_for(size), 0U);
}

TEST(AllocatorConfigTest, DivisionTableIndexing) {
  // Entry 0 covers everything below 2 MiB, entry i covers [2^i, 2^(i+1)) MiB, entry 15 >= 32 GiB.
  const AllocatorConfig config = AllocatorConfig::parse("roundup_power2_divisions:[1:2,2:4,>:8]");
  EXPECT_EQ(config.divisions_for(1), 2U);
  EXPECT_EQ(config.divisions_for(512), 2U);
  EXPECT_EQ(config.divisions_for(2 * MiB - 1), 2U);
  EXPECT_EQ(config.divisions_for(2 * MiB), 4U);
  EXPECT_EQ(config.divisions_for(4 * MiB - 1), 4U);
  EXPECT_EQ(config.divisions_for(4 * MiB), 8U);
  EXPECT_EQ(config.divisions_for(64 * GiB), 8U);
  // The first explicit interval also fills every entry below it; intervals never mentioned stay 0.
  const AllocatorConfig first = AllocatorConfig::parse("roundup_power2_divisions:[256:4]");
  EXPECT_EQ(config.divisions_for(1 * MiB), 2U);
  EXPECT_EQ(first.divisions_for(1 * MiB), 4U);
  EXPECT_EQ(first.divisions_for(300 * MiB), 4U);
  EXPECT_EQ(first.divisions_for(512 * MiB), 0U);
  // An interval past 32 GiB lands in the last entry.
  const AllocatorConfig huge = AllocatorConfig::parse("roundup_power2_divisions:[65536:2]");
  EXPECT_EQ(huge.divisions_for(128 * GiB), 2U);
  EXPECT_EQ(huge.divisions_for(1 * GiB), 2U);
  // 0 disables rounding for an interval.
  EXPECT_EQ(AllocatorConfig::parse("roundup_power2_divisions:[64:0,>:4]").divisions_for(64 * MiB), 0U);
}

TEST(AllocatorConfigTest, ProfilesDifferInTheTailFill) {
  // `>` fills from the entry after the last explicit one since the 2025 parser (AcceleratorAllocatorConfig,
  // ~2.9); before, from the last explicit entry itself (overwriting it).
  const char* list = "roundup_power2_divisions:[128:8,256:16,512:1,2048:8,>:2]";
  for (const char* name : {"2.9", "2.11"}) {
    const AllocatorConfig c = AllocatorConfig::parse(list, profile(name));
    EXPECT_EQ(c.divisions_for(2048 * MiB), 8U) << name;
    EXPECT_EQ(c.divisions_for(4096 * MiB), 2U) << name;
  }
  for (const char* name : {"2.4", "2.6"}) {
    const AllocatorConfig c = AllocatorConfig::parse(list, profile(name));
    EXPECT_EQ(c.divisions_for(1024 * MiB), 0U) << name;
    EXPECT_EQ(c.divisions_for(2048 * MiB), 2U) << name;
    EXPECT_EQ(c.divisions_for(4096 * MiB), 2U) << name;
  }
  // A list that is only `>`: the newer parser leaves entry 0 (sizes below 2 MiB) untouched.
  EXPECT_EQ(AllocatorConfig::parse("roundup_power2_divisions:[>:4]").divisions_for(1 * MiB), 0U);
  EXPECT_EQ(AllocatorConfig::parse("roundup_power2_divisions:[>:4]").divisions_for(2 * MiB), 4U);
  EXPECT_EQ(AllocatorConfig::parse("roundup_power2_divisions:[>:4]", profile("2.4")).divisions_for(1 * MiB), 4U);
}

TEST(AllocatorConfigTest, ProfilesDifferInTheKeysTheyKnow) {
  // max_non_split_rounding_mb: PR #136174 (~2.6).
  EXPECT_NE(explanation(parse_error("max_non_split_rounding_mb:30", profile("2.4")), "max_non_split_rounding_mb:30")
                .find("max_non_split_rounding_mb"),
            std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("max_non_split_rounding_mb:30", profile("2.6")).max_non_split_rounding_size,
            30 * MiB);
  // large_segment_size_mb: PR #172056 (~2.11).
  EXPECT_NE(parse_error("large_segment_size_mb:30", profile("2.9")).find("large_segment_size_mb"), std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("large_segment_size_mb:30", profile("2.11")).large_segment_size, 30 * MiB);
  // per_process_memory_fraction: PR #161035 (~2.9).
  EXPECT_NE(parse_error("per_process_memory_fraction:0.5", profile("2.6")).find("per_process_memory_fraction"),
            std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("per_process_memory_fraction:0.5", profile("2.9")).per_process_memory_fraction, 0.5);
  // The minimum of max_split_size_mb is the fixed 20 MiB kLargeBuffer before large_segment_size_mb.
  EXPECT_NE(parse_error("max_split_size_mb:19", profile("2.4")).find("max_split_size_mb"), std::string::npos);
  EXPECT_EQ(AllocatorConfig::parse("max_split_size_mb:20", profile("2.4")).max_split_size, 20 * MiB);
}

TEST(AllocatorConfigTest, MaxNonSplitRoundingOnReparse) {
  // Up to the 2025 parser (c10/core/AllocatorConfig.cpp parseArgs) a re-parse resets max_split_size,
  // the division table and the GC threshold only; with large_segment_size_mb (2026) the non-split
  // rounding is reset to the large segment size too.
  const AllocatorConfig v29 = AllocatorConfig::parse("max_non_split_rounding_mb:40", profile("2.9"));
  EXPECT_EQ(AllocatorConfig::parse("garbage_collection_threshold:0.5", profile("2.9"), &v29).max_non_split_rounding_size,
            40 * MiB);
  const AllocatorConfig v211 = AllocatorConfig::parse("large_segment_size_mb:25,max_non_split_rounding_mb:40");
  const AllocatorConfig again = AllocatorConfig::parse("garbage_collection_threshold:0.5", profile("2.11"), &v211);
  EXPECT_EQ(again.large_segment_size, 25 * MiB);  // omitted: unchanged
  EXPECT_EQ(again.max_non_split_rounding_size, 25 * MiB);
}

TEST(AllocatorConfigTest, TokenizerIgnoresWhitespace) {
  // ConfigTokenizer drops every std::isspace character.
  const AllocatorConfig config =
      AllocatorConfig::parse(" max_split_size_mb : 40 ,\texpandable_segments:\tTrue ,roundup_power2_divisions: [ 64 : 8 ]\n");
  EXPECT_EQ(config.max_split_size, 40 * MiB);
  EXPECT_TRUE(config.expandable_segments);
  EXPECT_EQ(config.divisions_for(64 * MiB), 8U);
}

TEST(AllocatorConfigTest, BooleansAreExactlyTrueOrFalse) {
  EXPECT_TRUE(AllocatorConfig::parse("expandable_segments:True").expandable_segments);
  for (const char* bad : {"expandable_segments:true", "expandable_segments:1", "expandable_segments:",
                          "graph_capture_record_stream_reuse:yes", "throw_on_cudamalloc_oom:TRUE"}) {
    SCOPED_TRACE(bad);
    const std::string message = parse_error(bad);
    const std::string key = std::string(bad).substr(0, std::string(bad).find(':'));
    EXPECT_NE(explanation(message, bad).find(key), std::string::npos) << message;
  }
}

TEST(AllocatorConfigTest, DivisionsMustBePowersOfTwo) {
  for (const char* bad : {"roundup_power2_divisions:3", "roundup_power2_divisions:0", "roundup_power2_divisions:[64:3]",
                          "roundup_power2_divisions:[63:4]", "roundup_power2_divisions:[>:6]"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(parse_error(bad).find("power of 2"), std::string::npos);
  }
}

TEST(AllocatorConfigTest, MalformedStringsAreRejected) {
  for (const char* bad : {"max_split_size_mb", "max_split_size_mb:", "max_split_size_mb:forty",
                          "roundup_power2_divisions:[64:8", "roundup_power2_divisions:[64:8,",
                          "garbage_collection_threshold:half", "garbage_collection_threshold:0",
                          "garbage_collection_threshold:1.0", "backend:fancy", ":40", "max_split_size_mb:40;x:1",
                          "pinned_reserve_segment_size_mb:0", "pinned_reserve_segment_size_mb:lots"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW((void)AllocatorConfig::parse(bad), ConfigError);
  }
}

TEST(AllocatorConfigTest, BackendAndKeysThatDoNotChangeByteCounts) {
  EXPECT_EQ(AllocatorConfig::parse("backend:cudaMallocAsync").backend, AllocatorBackend::kCudaMallocAsync);
  EXPECT_EQ(AllocatorConfig::parse("backend:native").backend, AllocatorBackend::kNative);
  const AllocatorConfig config = AllocatorConfig::parse(
      "release_lock_on_cudamalloc:True,pinned_use_cuda_host_register:False,pinned_num_register_threads:8,"
      "graph_capture_record_stream_reuse:True,pinned_reserve_segment_size_mb:64");
  EXPECT_EQ(config.not_modelled.size(), 5U);
  EXPECT_EQ(AllocatorConfig::parse("pinned_num_register_threads:128").not_modelled.size(), 1U);
  EXPECT_NE(parse_error("pinned_num_register_threads:3").find("power of 2"), std::string::npos);
}

TEST(AllocatorConfigTest, MaxSplitSizeIsClampedNotOverflowed) {
  // val = min(val, SIZE_MAX / 1 MiB) before multiplying by 1 MiB.
  const AllocatorConfig config = AllocatorConfig::parse("max_split_size_mb:99999999999999999");
  EXPECT_EQ(config.max_split_size, (kUnlimitedSplitSize / MiB) * MiB);
}

// A torch release runs the newest profile not newer than it; build suffixes do not matter.
TEST(VersionProfileTest, ATorchVersionRunsTheNewestProfileNotNewerThanIt) {
  std::string note;
  EXPECT_EQ(VersionProfile::for_torch_version("2.11.0+cu130", &note).name, "2.11");
  EXPECT_EQ(note, "");
  EXPECT_EQ(VersionProfile::for_torch_version("2.10.0+cu128", &note).name, "2.9");
  EXPECT_EQ(note, "torch 2.10.0+cu128 runs the allocator of profile 2.9");
  EXPECT_EQ(VersionProfile::for_torch_version("2.5.1").name, "2.4");
  EXPECT_EQ(VersionProfile::for_torch_version("1.13.1", &note).name, VersionProfile::newest().name);
  EXPECT_NE(note.find("no allocator profile applies"), std::string::npos) << note;
  EXPECT_EQ(VersionProfile::for_torch_version("", &note).name, VersionProfile::newest().name);
  EXPECT_NE(note.find("version not logged"), std::string::npos) << note;
}

}  // namespace
}  // namespace offsim::sim
