#include "offsim/policies/working_memory_run.hpp"

#include <unordered_map>
#include <unordered_set>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {

WorkingMemoryOutcome run_working_memory(MemoryBackend& backend, const sim::Trace& trace, std::uint64_t extra) {
  WorkingMemoryOutcome out;
  const std::uint64_t reserved_before = backend.stats().reserved;
  backend.reset_peak_stats();
  std::unordered_map<std::uint64_t, std::uint64_t> live;  // trace handle -> device address
  std::unordered_set<std::uint64_t> dropped;
  std::optional<std::uint64_t> streamed;
  if (extra > 0) {
    streamed = backend.allocate(extra);
    if (!streamed) out.oom = backend.last_oom();
  }
  for (const sim::TraceEvent& e : trace.events) {
    if (out.oom) break;
    if (e.action == sim::TraceAction::kAlloc) {
      auto ptr = backend.allocate(e.size, e.stream);
      if (ptr) {
        live[e.addr] = *ptr;
      } else if (e.flags & sim::kTraceFlagFallible) {
        ++out.handled_ooms;
        dropped.insert(e.addr);
      } else {
        out.oom = backend.last_oom();
      }
    } else if (e.action == sim::TraceAction::kFreeRequested) {
      auto it = live.find(e.addr);
      if (it != live.end()) {
        backend.free(it->second);
        live.erase(it);
      } else if (dropped.erase(e.addr) == 0) {
        throw ConfigError("working memory \"" + trace.metadata.provenance.source + "\" frees a block it never allocated");
      }
    }
  }
  out.peak_growth = backend.stats().peak_reserved - reserved_before;
  for (const auto& [handle, ptr] : live) backend.free(ptr);
  if (streamed) backend.free(*streamed);
  return out;
}

bool apply_prior_history(MemoryBackend& backend, const Scenario& scenario,
                         std::unordered_map<std::uint64_t, std::uint64_t>& live) {
  if (!scenario.prior_history) return true;
  for (const sim::TraceEvent& e : scenario.prior_history->trace->events) {
    if (e.action == sim::TraceAction::kAlloc) {
      auto ptr = backend.allocate(e.size, e.stream);
      if (!ptr) return false;
      live[e.addr] = *ptr;
    } else if (e.action == sim::TraceAction::kFreeRequested) {
      auto it = live.find(e.addr);
      if (it != live.end()) {
        backend.free(it->second);
        live.erase(it);
      }
    }
  }
  return true;
}

}  // namespace offsim::policies
