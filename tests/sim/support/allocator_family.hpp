// The allocator configurations ("families") that the property suites run random workloads under,
// each on the same small simulated GPU so that OOMs and the reclaim chain are exercised often.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/version_profile.hpp"
#include "sim/support/allocator_op_gen.hpp"

namespace offsim::sim::test {

struct AllocatorFamily {
  std::string name;
  std::string settings;                     // PYTORCH_CUDA_ALLOC_CONF
  std::optional<double> initial_fraction;   // set_memory_fraction before the workload
  OpMix mix;
  std::string profile = "newest";
  /// totalGlobalMem when it differs from cudaMemGetInfo's total (fraction base and ES address space).
  std::uint64_t total_global_mem = 0;

  /// 384 MiB as the driver reports it, 16 MiB of it taken by the context: a few dozen segments.
  DeviceSpec device() const {
    DeviceSpec spec;
    spec.name = "property-test GPU";
    spec.total_bytes = 384 * MiB;
    spec.total_global_mem = total_global_mem;
    spec.context_bytes = 16 * MiB;
    return spec;
  }
  const VersionProfile& version() const { return VersionProfile::by_name(profile); }
};

inline const std::vector<AllocatorFamily>& allocator_families() {
  const OpMix one_stream{{0}, {1, 2}, true};
  const OpMix three_streams{{0, 1, 2}, {0, 1, 2, 3}, true};
  // Settings that are safe to change at runtime: max_split_size stays unlimited (shrinking it at
  // runtime can leave split oversize blocks that upstream would hand to cudaFree, spec section 15).
  const OpMix runtime_settings{{0, 1}, {0, 1, 2},
                               true,
                               {"expandable_segments:True", "expandable_segments:False", "roundup_power2_divisions:4",
                                "garbage_collection_threshold:0.5", "expandable_segments:True,roundup_power2_divisions:8"}};
  static const std::vector<AllocatorFamily> families = {
      {"Default", "", std::nullopt, one_stream},
      {"ExpandableSegments", "expandable_segments:True", std::nullopt, one_stream},
      {"MaxSplitSize", "max_split_size_mb:40", std::nullopt, one_stream},
      {"MaxSplitSizeWithRounding", "max_split_size_mb:24,max_non_split_rounding_mb:30", std::nullopt, one_stream},
      {"RoundupPower2Divisions", "roundup_power2_divisions:[1:4,4:8,16:2,>:4]", std::nullopt, one_stream},
      {"GarbageCollection", "garbage_collection_threshold:0.6", 0.8, one_stream},
      {"MultipleStreams", "", std::nullopt, three_streams},
      {"ExpandableOversizeGcStreams",
       "expandable_segments:True,max_split_size_mb:40,garbage_collection_threshold:0.5", 0.7, three_streams},
      {"LargeSegmentSize", "large_segment_size_mb:30,max_split_size_mb:30,roundup_power2_divisions:2", std::nullopt,
       one_stream},
      {"RuntimeSettings", "", 0.9, runtime_settings, "newest", 400 * MiB},
      // Before ~2.9 any set_per_process_memory_fraction call (1.0 too) set a limit of cudaMemGetInfo's
      // total and so enabled GC; rule B used a fixed 20 MiB.
      {"Profile24GarbageCollection", "max_split_size_mb:40,garbage_collection_threshold:0.5", 1.0, three_streams,
       "2.4", 400 * MiB},
      {"Profile26NonSplitRounding", "max_split_size_mb:32,max_non_split_rounding_mb:24", std::nullopt, one_stream,
       "2.6"},
  };
  return families;
}

inline const AllocatorFamily& allocator_family(std::string_view name) {
  for (const AllocatorFamily& f : allocator_families()) {
    if (f.name == name) return f;
  }
  throw std::invalid_argument("no allocator family named " + std::string(name));
}

}  // namespace offsim::sim::test
