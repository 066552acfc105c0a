// Random workloads (malloc / free / record_stream / mark_stream_complete / empty_cache /
// set_memory_fraction) under every allocator family; after every step the state must satisfy the
// invariants of spec section 8 (snapshot recount = stats, tiling, merging, reserved within the device,
// the driver holding exactly the reserved bytes) and the allocator's own check_invariants(); at the end,
// freeing everything and emptying the cache must give every byte back. Run on CachingAllocator and on
// the reference reading alike.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/errors.hpp"
#include "sim/support/allocator_family.hpp"
#include "sim/support/allocator_invariants.hpp"
#include "sim/support/allocator_op.hpp"
#include "sim/support/allocator_op_gen.hpp"
#include "sim/support/reference_allocator.hpp"

namespace offsim::sim::test {
namespace {

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "  " + l + "\n";
  return out;
}

template <typename Allocator>
std::vector<std::string> violations(const Allocator& alloc, const Device& device, const LiveAllocations& live) {
  Snapshot snapshot;
  snapshot.segments = alloc.segments();
  std::vector<std::string> v = allocator_state_violations(snapshot, alloc.stats(), device);
  try {
    alloc.check_invariants();
  } catch (const InvariantViolation& e) {
    v.push_back(std::string("check_invariants: ") + e.what());
  }
  for (std::uint64_t p : live.ptrs) {
    if (!alloc.is_live(p)) v.push_back("allocation " + std::to_string(p) + " is no longer live");
  }
  return v;
}

template <typename Allocator>
void run_with_invariants(const char* implementation, const AllocatorFamily& family, bool explicit_completion,
                         const std::vector<AllocatorOp>& ops) {
  Device device(family.device());
  Allocator alloc(device, AllocatorConfig::parse(family.settings, family.version()), family.version(),
                  explicit_completion ? EventCompletion::kExplicit : EventCompletion::kAtNextMalloc);
  if (family.initial_fraction) alloc.set_memory_fraction(*family.initial_fraction);
  LiveAllocations live;
  std::vector<std::string> log;
  auto fail = [&](const std::string& what) {
    RC_FAIL(std::string(implementation) + " under " + family.name + ": " + what + "\nsteps so far:\n" + join(log));
  };
  for (const AllocatorOp& op : ops) {
    try {
      log.push_back(apply_op(alloc, live, op).describe(op));
    } catch (const std::exception& e) {
      log.push_back(to_string(op) + " -> threw");
      fail(e.what());
    }
    const auto v = violations(alloc, device, live);
    if (!v.empty()) fail("after step " + std::to_string(log.size()) + ":\n" + join(v));
  }
  // Everything freed and the cache emptied: nothing may stay reserved (pending frees are synchronized).
  for (std::uint64_t p : live.ptrs) alloc.free(p);
  live.ptrs.clear();
  alloc.empty_cache();
  log.push_back("free everything, empty_cache()");
  const auto v = violations(alloc, device, live);
  if (!v.empty()) fail(join(v));
  const DeviceStats& s = alloc.stats();
  if (s.reserved_bytes[kAggregate].current != 0 || s.segment[kAggregate].current != 0 ||
      s.active[kAggregate].current != 0 || !alloc.segments().empty() || device.allocator_bytes() != 0) {
    fail("reserved " + std::to_string(s.reserved_bytes[kAggregate].current) + " bytes in " +
         std::to_string(s.segment[kAggregate].current) + " segments after freeing everything and empty_cache");
  }
}

void check_family(const char* name) {
  const AllocatorFamily& family = allocator_family(name);
  const bool explicit_completion = *rc::gen::arbitrary<bool>();
  const std::vector<AllocatorOp> ops = *gen_ops(family.mix);
  run_with_invariants<CachingAllocator>("CachingAllocator", family, explicit_completion, ops);
  run_with_invariants<ReferenceAllocator>("ReferenceAllocator", family, explicit_completion, ops);
}

RC_GTEST_PROP(AllocatorProperty, InvariantsHoldDefault, ()) { check_family("Default"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldExpandableSegments, ()) { check_family("ExpandableSegments"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldMaxSplitSize, ()) { check_family("MaxSplitSize"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldMaxSplitSizeWithRounding, ()) {
  check_family("MaxSplitSizeWithRounding");
}
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldRoundupPower2Divisions, ()) { check_family("RoundupPower2Divisions"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldGarbageCollection, ()) { check_family("GarbageCollection"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldMultipleStreams, ()) { check_family("MultipleStreams"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldExpandableOversizeGcStreams, ()) {
  check_family("ExpandableOversizeGcStreams");
}
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldLargeSegmentSize, ()) { check_family("LargeSegmentSize"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldRuntimeSettings, ()) { check_family("RuntimeSettings"); }
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldProfile24GarbageCollection, ()) {
  check_family("Profile24GarbageCollection");
}
RC_GTEST_PROP(AllocatorProperty, InvariantsHoldProfile26NonSplitRounding, ()) {
  check_family("Profile26NonSplitRounding");
}

}  // namespace
}  // namespace offsim::sim::test
