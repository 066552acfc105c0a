// A stage's activations run on a device: the allocations and frees of its working-memory trace in recorded
// order, with the peak reserved growth they caused; and a scenario's prior history, whose allocations stay. The runner runs every stage this way, and the Python
// route runs a stand-in model's stage the same way, so both fail at the same allocation with the same text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <unordered_map>

#include "offsim/policies/memory_backend.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::policies {

struct WorkingMemoryOutcome {
  std::uint64_t peak_growth = 0;  // peak reserved growth while it ran (T_warm)
  std::size_t handled_ooms = 0;   // fallible allocations that failed (the trace's fallback follows)
  std::optional<OomReport> oom;   // the unhandled OOM that ended it
};

/// Replays `trace` on `backend`, first holding `extra` bytes (streamed weights) for the whole stage. A
/// fallible allocation that fails is a handled OOM; any other failure ends the stage as the program would
/// (its tensors are released as the exception unwinds). Everything it allocated is freed before it returns;
/// the peak counters are reset at its start. Throws ConfigError for a trace that frees a block it never
/// allocated.
WorkingMemoryOutcome run_working_memory(MemoryBackend& backend, const sim::Trace& trace, std::uint64_t extra = 0);

/// Runs the scenario's prior history (the process's allocations before the first call); what it does not
/// free stays live, recorded in `live` (trace handle -> device address). False when it does not fit.
bool apply_prior_history(MemoryBackend& backend, const Scenario& scenario,
                         std::unordered_map<std::uint64_t, std::uint64_t>& live);

}  // namespace offsim::policies
