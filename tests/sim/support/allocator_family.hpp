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
#include "sim/support/allocator_op_gen.hpp"

namespace offsim::sim::test {

struct AllocatorFamily {
  std::string name;
  std::string settings;                     // PYTORCH_CUDA_ALLOC_CONF
  std::optional<double> initial_fraction;   // set_memory_fraction before the workload
  OpMix mix;

  /// 384 MiB as the driver reports it, 16 MiB of it taken by the context: a few dozen segments.
  DeviceSpec device() const {
    DeviceSpec spec;
    spec.name = "property-test GPU";
    spec.total_bytes = 384 * MiB;
    spec.context_bytes = 16 * MiB;
    return spec;
  }
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
      {"RuntimeSettings", "", 0.9, runtime_settings},
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
