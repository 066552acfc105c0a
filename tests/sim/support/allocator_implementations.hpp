// The allocator implementations that typed tests run against: the simulator and the independent
// reference reading of the spec (tests/sim/support/reference_allocator.hpp).
#pragma once

#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "offsim/sim/caching_allocator.hpp"
#include "sim/support/reference_allocator.hpp"

namespace offsim::sim::test {

using AllocatorImplementations = ::testing::Types<CachingAllocator, ReferenceAllocator>;

/// Names typed test instances after the implementation ("...Spec/CachingAllocator.test_memory_stats").
struct ImplementationName {
  template <typename T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, CachingAllocator>) return "CachingAllocator";
    return "ReferenceAllocator";
  }
};

}  // namespace offsim::sim::test
