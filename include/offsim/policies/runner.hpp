// Runs a policy over a scenario on the simulator and records, per stage step, what the properties and
// reports consume: the decision (E, F_P, W_load, stop reason, evictions), the true peak T of the stage's
// working memory in the actual allocator state (T_warm) and from an emptied allocator (T_cold), the
// bytes moved and their PCIe time, and any OOM with the segment map at that moment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/policy.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/snapshot.hpp"

namespace offsim::policies {

struct StageRecord {
  int call = 0;
  int step = 0;
  std::size_t stage_index = 0;
  std::string stage;
  StageDecision decision;
  bool has_working_memory = false;
  std::string working_memory_label;  // provenance, shown next to every verdict that uses T
  sim::ProvenanceKind provenance = sim::ProvenanceKind::kSynthetic;
  std::uint64_t driver_free_before = 0;  // after the decision, when the stage starts running
  std::uint64_t reserved_before = 0;
  std::uint64_t allocated_before = 0;
  std::uint64_t releasable_before = 0;  // cached bytes empty_cache() would return (whole free segments)
  std::uint64_t stranded_before = 0;    // free bytes in segments that hold live blocks
  std::optional<std::uint64_t> memory_limit;  // per_process_memory_fraction cap on reserved bytes
  std::uint64_t t_warm = 0;             // peak reserved growth while the working memory ran
  std::optional<std::uint64_t> t_cold;  // same from an emptied allocator holding only the stage's weights
  std::uint64_t streamed_weights = 0;   // transient weight copies of a partially loaded model
  std::size_t handled_ooms = 0;
  std::optional<OomReport> fallback_after;  // the working memory's OOM the decision's oom_fallback handled
  std::optional<OomReport> oom;         // unhandled: the step failed
  std::vector<sim::SegmentInfo> oom_segments;  // segment map at the OOM
  std::uint64_t bytes_to_device = 0;   // weights moved host -> device for this step
  std::uint64_t bytes_to_host = 0;     // weights copied device -> host (0 for pointer swaps)
  std::size_t timeline_begin = 0;      // index into RunRecord::timeline
  std::size_t timeline_end = 0;
};

/// P4 after each call: models the policy reports offloaded must hold no device bytes.
struct CallRecord {
  int call = 0;
  bool completed = false;
  ResidencyClaim claim;
  std::vector<std::pair<std::string, std::uint64_t>> claimed_offloaded_but_resident;
  std::uint64_t reserved_after = 0;
  std::uint64_t allocated_after = 0;
};

struct TimelinePoint {
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
};

struct RunRecord {
  PolicyInfo policy;
  std::string scenario;
  std::string allocator_model;  // e.g. "sim:native (PyTorch 2.9)"; the cudaMallocAsync model says it is approximate
  std::uint64_t device_total = 0;
  bool completed = false;
  std::string failure;  // empty when completed
  std::vector<StageRecord> stages;
  std::vector<CallRecord> calls;
  std::uint64_t peak_reserved = 0;
  std::uint64_t peak_allocated = 0;
  std::uint64_t bytes_to_device = 0;
  std::uint64_t bytes_to_host = 0;
  std::uint64_t bytes_offloaded = 0;  // weights moved off the device, copied or pointer-swapped
  double transfer_seconds = 0;
  std::size_t evictions = 0;
  /// reserved/allocated after every allocator call (weights and working memory), for plots.
  std::vector<TimelinePoint> timeline;
  /// With RunOptions::keep_trace: every allocator event in order, time_us = the index of the timeline
  /// sample taken after the call that caused it, and the segments after the last event (what a memory
  /// snapshot of the run holds).
  std::vector<sim::TraceEvent> trace;
  std::vector<sim::SegmentInfo> final_segments;
  /// With RunOptions::segments_at_sample: the segment map right after that timeline sample (empty when the
  /// run ended before it).
  std::vector<sim::SegmentInfo> sampled_segments;
};

struct RunOptions {
  std::optional<std::uint64_t> capacity;  // override the scenario's device total
  std::optional<int> calls;               // override the scenario's number of calls
  bool compute_cold = true;               // T_cold per stage (an extra simulation per stage)
  bool record_timeline = true;
  /// Keep the run's allocator events (RunRecord::trace), e.g. to export the run as a memory snapshot. Off by
  /// default: property searches run a scenario many times and need none.
  bool keep_trace = false;
  /// Copy the segment map right after this timeline sample (RunRecord::sampled_segments): the simulator is
  /// deterministic, so a second run of the same policy can show the state at a moment the first run found
  /// (e.g. its peak) without copying the map at every candidate moment.
  std::optional<std::size_t> segments_at_sample;
};

/// Runs `policy` (a fresh instance) on `scenario`. Scenario errors throw; OOMs are recorded, not thrown.
RunRecord run_policy(Policy& policy, const Scenario& scenario, const RunOptions& options = {});

/// Whether one stage could run at all on the scenario's device: the prior history's live allocations,
/// only this stage's models (fully loaded) and its working memory. If not, no policy can run the
/// scenario and P3 does not apply.
bool fits_alone(const Scenario& scenario, const Stage& stage);

/// T_cold of one stage: its models fully loaded on an otherwise empty device of the scenario's platform
/// and allocator settings (1 TiB, so that the measurement never OOMs), then its working memory.
std::optional<std::uint64_t> cold_peak(const Scenario& scenario, const Stage& stage);

}  // namespace offsim::policies
