// Issue 16 items 10-11: one address model for every replay. Random request streams are recorded by the
// simulator on an unlimited device at addresses above the replay device's own base (as real Linux CUDA
// pointers are), then asked for their minimum capacity. A `--capacity` replay at that minimum must run to
// the end with the requests' bytes accounted for (no segment placed on a live one, no block leaked), and at
// one allocation granule less it must stop at an unhandled OOM: the search and the replay agree.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/replay.hpp"
#include "sim/support/allocator_op_gen.hpp"

namespace offsim::sim {
namespace {

// Where the recorded addresses sit relative to the simulator's own: real pointers (0x7f...) lie above the
// replay device's base, which is what made what-if replays alias segments.
constexpr std::uint64_t kRecordedAddressShift = 0x10000000000ULL;

struct Step {
  int what = 0;            // 0-5 malloc, 6-8 free, 9 empty_cache
  std::uint64_t size = 0;  // malloc
  std::size_t target = 0;  // free: which live allocation
};

Trace record(const std::vector<Step>& steps, const std::string& alloc_conf) {
  Device device({"recorder", Platform::kCuda, 1024 * GiB});
  CachingAllocator alloc(device, AllocatorConfig::parse(alloc_conf), VersionProfile::newest(),
                         EventCompletion::kExplicit);
  Trace trace;
  trace.metadata.alloc_conf = alloc_conf;
  alloc.set_trace_sink(&trace.events);
  std::vector<std::uint64_t> live;
  for (const Step& step : steps) {
    if (step.what <= 5) {
      live.push_back(alloc.malloc(step.size).value());
    } else if (step.what <= 8 && !live.empty()) {
      const std::size_t k = step.target % live.size();
      alloc.free(live[k]);
      live[k] = live.back();
      live.pop_back();
    } else if (step.what == 9) {
      alloc.empty_cache();
    }
  }
  for (TraceEvent& event : trace.events) event.addr += kRecordedAddressShift;
  return trace;
}

RC_GTEST_PROP(ReplayCapacityProperty, ACapacityReplayAtTheReportedMinimumCompletesAndOneGranuleLessDoesNot, ()) {
  const std::string conf = *rc::gen::element<std::string>("", "expandable_segments:True", "max_split_size_mb:64",
                                                          "roundup_power2_divisions:4");
  const auto steps = *rc::gen::scale(5.0, rc::gen::container<std::vector<Step>>(rc::gen::apply(
      [](int what, std::uint64_t size, std::size_t target) { return Step{what, size, target}; },
      rc::gen::inRange(0, 10), test::gen_request_size(), rc::gen::inRange<std::size_t>(0, 64))));
  const Trace trace = record(steps, conf);
  RC_PRE(!trace.events.empty());

  const ReplayResult recorded = replay(trace, {});
  RC_ASSERT(recorded.events_matched == recorded.events_total);
  const MinCapacityResult minimum = find_min_capacity(trace, {});
  RC_ASSERT(minimum.verified_boundary);

  ReplayOptions at_minimum;
  at_minimum.capacity = minimum.min_capacity;
  const ReplayResult fits = replay(trace, at_minimum);
  RC_ASSERT(fits.completed);
  RC_ASSERT(fits.unhandled_ooms == 0U);
  RC_ASSERT(fits.final_requested == recorded.final_requested);  // every request accounted for

  ReplayOptions below = at_minimum;
  below.capacity = minimum.min_capacity - 2 * MiB;
  if (below.capacity == 0) return;  // the minimum is the smallest device there is
  const ReplayResult fails = replay(trace, below);
  RC_ASSERT(!fails.completed);
  RC_ASSERT(fails.unhandled_ooms == 1U);
}

}  // namespace
}  // namespace offsim::sim
