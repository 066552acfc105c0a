#include "offsim/real/trace_stats.hpp"

namespace offsim::real {

LiveBytes live_bytes(const sim::Trace& trace) {
  LiveBytes result;
  std::uint64_t live = 0;
  for (std::uint64_t i = 0; i < trace.events.size(); ++i) {
    const sim::TraceEvent& event = trace.events[i];
    if (event.action == sim::TraceAction::kAlloc) {
      live += event.size;
      result.total_allocated += event.size;
      ++result.allocations;
      if (live > result.peak) {
        result.peak = live;
        result.peak_event = i;
      }
    } else if (event.action == sim::TraceAction::kFreeRequested) {
      live -= event.size;
      result.total_freed += event.size;
      ++result.frees;
    }
  }
  result.at_end = live;
  return result;
}

}  // namespace offsim::real
