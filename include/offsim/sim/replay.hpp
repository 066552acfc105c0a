// Replay: drive the simulated allocator with a trace's recorded requests (alloc, free, deferred frees,
// empty_cache) and compare what it does (segment_alloc/free/map/unmap, oom) with what the real
// allocator recorded. Also answers what-if questions: another capacity, allocator config or PyTorch
// version, and the smallest device that runs the trace.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace.hpp"
#include "offsim/sim/trace_source.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim {

struct ReplayOptions {
  /// Allocator settings; default: the settings the trace was recorded with (metadata.alloc_conf).
  std::optional<std::string> alloc_conf;
  const VersionProfile* profile = &VersionProfile::newest();
  /// Device total as cudaMemGetInfo reports it; 0 = the recorded total when known, else the total the
  /// first recorded OOM implies (its reserved bytes + device_free + non_allocator_bytes), else 1 TiB.
  /// A capacity below the trace's start state (+ non_allocator_bytes) is refused with ConfigError.
  std::uint64_t capacity = 0;
  /// Memory on the device that is not the allocator's (CUDA context, libraries, other processes).
  std::uint64_t non_allocator_bytes = 0;
  Platform platform = Platform::kCuda;
  /// Compare simulated events with the recorded ones (fidelity diff). Off for what-if searches.
  bool compare = true;
  /// Stop at the first unhandled OOM (what the program would do: crash).
  bool stop_at_unhandled_oom = true;
  /// Number of fragmentation samples kept over the run (evenly spaced, plus every OOM).
  std::size_t timeline_points = 1000;
  /// Called now and then with (recorded events processed, total).
  std::function<void(std::size_t, std::size_t)> progress;
};

struct FragmentationSample {
  std::size_t event_index = 0;
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
  std::uint64_t free_cached = 0;         // reserved - active
  std::uint64_t inactive_split = 0;
  std::uint64_t largest_free_block = 0;
  std::uint64_t requested = 0;           // requested bytes of active blocks (the trace's alloc sizes)
  // The recording's curves at the same event: reserved from its segment events, requested from its alloc
  // and free_completed entries (memory_viz's Active Memory Timeline).
  std::uint64_t recorded_reserved = 0;
  std::uint64_t recorded_requested = 0;
};

struct ReplayOom {
  std::size_t event_index = 0;   // recorded event that asked for the memory
  std::uint64_t size = 0;        // requested bytes
  bool handled = false;          // fallible request, or the recording shows the program survived it
  bool recorded = false;         // the real run also ran out of memory here
  std::uint64_t free_cached_bytes = 0;  // free bytes cached in the request's pool at the failure
  std::uint64_t largest_free_cached_block = 0;
  /// Enough cached memory was free in total, but no single block fit: a fragmentation failure.
  bool fragmentation = false;
  std::string message;
  /// The simulated segments when the request failed, kept for the first unhandled OOM only (what a
  /// what-if replay stops at): the picture of why nothing fit.
  std::vector<SegmentInfo> segments;
};

struct ReplayDivergence {
  std::size_t event_index = 0;             // index into trace.events of the first mismatching entry
  std::optional<TraceEvent> expected;      // recorded (nullopt: the simulator did more)
  std::optional<TraceEvent> simulated;     // nullopt: the simulator did less
  std::vector<SegmentInfo> segments_near;  // simulated segments around the address, after the call
  std::string context;                     // which request it happened in
};

struct ComparedEvents {
  std::size_t total = 0;
  std::size_t matched = 0;
};

/// Recorded events compared with the simulation, by what they judge.
struct ComparisonCounts {
  ComparedEvents addresses;  // alloc entries: where the allocator placed each request
  ComparedEvents segments;   // segment_alloc/free/map/unmap and oom: what it took from and gave to the driver
  ComparedEvents frees;      // free_requested / free_completed: which block became free, and when
};

struct ReplayResult {
  std::size_t events_total = 0;    // recorded events compared (snapshot entries excluded): compared's sum
  std::size_t events_matched = 0;  // of those, reproduced exactly by the simulator
  ComparisonCounts compared;
  /// What the comparison rested on: "segments" (the recorded segment events, and every alloc's address),
  /// "addresses" (a GPU recording without segment events: every alloc's address), "none" (a request stream,
  /// e.g. a CPU recording: nothing recorded to compare with) or "state-only" (no allocator events at all).
  std::string comparison = "segments";
  /// "native" (the caching allocator, event for event) or "cudaMallocAsync (coarse pool model)".
  std::string allocator_model = "native";
  std::optional<ReplayDivergence> first_divergence;
  std::uint64_t peak_reserved = 0;
  std::uint64_t peak_allocated = 0;
  std::uint64_t final_reserved = 0;
  /// Reserved before the first replayed event (the loaded or rewound start state): peak_reserved minus this
  /// is the peak reserved growth that estimators are calibrated on (`offsim calibrate`).
  std::uint64_t start_reserved = 0;
  std::uint64_t final_allocated = 0;  // allocated bytes (blocks) left at the end
  std::uint64_t final_requested = 0;  // requested bytes left live at the end: what the requests imply
  std::vector<ReplayOom> ooms;
  std::size_t unhandled_ooms = 0;
  bool completed = true;           // false: stopped at an unhandled OOM
  std::size_t requests = 0;        // allocator calls made
  std::size_t inferred_empty_cache = 0;  // runs of segment_free read as torch.cuda.empty_cache()
  std::vector<FragmentationSample> timeline;
  std::vector<std::string> notes;  // what was assumed or reconstructed
  std::uint64_t capacity = 0;      // device total the replay ran with
  /// Where `capacity` came from: "given", "recorded", "inferred from the recorded OOM at event N", "assumed".
  std::string capacity_source;
  std::string alloc_conf;
  std::size_t trace_events = 0;    // events the trace holds (read to its end even when the replay stopped)
  // The recorded curves against the simulated ones (traces with segment events; 0 otherwise). The
  // difference is taken at the timeline's samples.
  std::uint64_t recorded_peak_reserved = 0;
  std::uint64_t recorded_peak_requested = 0;
  std::uint64_t peak_requested = 0;
  std::uint64_t max_reserved_difference = 0;
  std::vector<SegmentInfo> recorded_final_segments;  // the trace's final state (snapshot segments), if any
};

/// Where a replay reads its trace: a Trace held in memory, or a source opened afresh for each pass and
/// streamed, so that memory does not grow with the trace (a what-if replay reads it twice, a
/// minimum-capacity search some 25 times).
class ReplayInput {
 public:
  using Opener = std::function<std::unique_ptr<TraceEventSource>()>;
  // Implicit: a Trace in memory is the usual input (tests, benchmarks, snapshots).
  ReplayInput(const Trace& trace) : trace_(&trace) {}  // NOLINT(google-explicit-constructor)
  explicit ReplayInput(Opener open) : open_(std::move(open)) {}

  /// The trace in memory, or null for a streamed one.
  const Trace* trace() const { return trace_; }
  std::unique_ptr<TraceEventSource> open() const { return open_(); }
  TraceMetadata metadata() const;

 private:
  const Trace* trace_ = nullptr;
  Opener open_;
};

/// Replays `trace`; throws ConfigError for a bad alloc_conf and AllocatorUsageError for a trace that
/// frees what it never allocated in a way that cannot be explained by a partial recording.
ReplayResult replay(const ReplayInput& input, const ReplayOptions& options);

struct MinCapacityResult {
  std::uint64_t min_capacity = 0;  // smallest device total (incl. non_allocator_bytes) with no unhandled OOM
  std::uint64_t peak_reserved_unlimited = 0;
  std::size_t probes = 0;
  /// Binary search assumes "fits at C implies fits at C' > C"; this says whether min_capacity - 2 MiB
  /// was checked to fail and min_capacity to pass.
  bool verified_boundary = false;
};

/// Smallest device (2 MiB granularity) that runs the trace without an unhandled OOM. The allocator's
/// own recovery (freeing cached segments and retrying) runs as in PyTorch, so the answer can be well
/// below the recorded peak.
MinCapacityResult find_min_capacity(const ReplayInput& input, ReplayOptions options);

}  // namespace offsim::sim
