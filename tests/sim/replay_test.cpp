// Replay of traces whose expected events are known: traces recorded from the simulator itself (so a
// faithful replay must reproduce every event) and hand-made traces with known divergences.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <map>
#include <random>
#include <sstream>

#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/trace_file.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {
namespace {

struct Workload {
  std::uint64_t capacity = 8 * GiB;
  std::string alloc_conf;
  int steps = 4000;
  unsigned seed = 1;
  bool streams = false;        // frees deferred by record_stream, completed later
  bool empty_cache = false;    // occasional torch.cuda.empty_cache()
  bool fallible_ooms = false;  // program catches OOMs of big requests
  /// A partial recording: the first call that ends past this many events ends the part that is dropped, and
  /// the allocator's state there becomes the trace's initial_segments (0: record from the start).
  std::size_t cut_after = 0;
};

// Runs an inference-like mix (many small, some large, occasional huge) on the simulator and returns
// what it recorded, as a real recording would look.
Trace record(const Workload& w) {
  Device device({"recorder", Platform::kCuda, w.capacity});
  CachingAllocator alloc(device, AllocatorConfig::parse(w.alloc_conf), VersionProfile::newest(),
                         EventCompletion::kExplicit);
  Trace trace;
  trace.metadata.alloc_conf = w.alloc_conf;
  trace.metadata.device_total_bytes = w.capacity;
  alloc.set_trace_sink(&trace.events);
  std::mt19937_64 rng(w.seed);
  std::vector<std::uint64_t> live;
  std::vector<std::uint64_t> deferred;
  std::size_t cut = 0;
  for (int step = 0; step < w.steps; ++step) {
    alloc.set_time_us(step);
    const auto r = rng() % 100;
    if (live.empty() || (r < 55 && live.size() < 300)) {
      std::uint64_t size;
      const auto kind = rng() % 20;
      if (kind < 12) size = 1 + rng() % (1 * MiB);
      else if (kind < 19) size = 1 * MiB + rng() % (30 * MiB);
      else size = 30 * MiB + rng() % (300 * MiB);
      const auto syncs = alloc.stats().num_sync_all_streams;
      const auto ptr = alloc.malloc(size);
      // Reclaiming memory synchronizes every stream: the deferred frees completed there.
      if (alloc.stats().num_sync_all_streams != syncs) deferred.clear();
      if (!ptr) {
        if (!w.fallible_ooms) break;
        trace.events.back().flags = kTraceFlagFallible;  // the oom entry itself
        continue;
      }
      live.push_back(*ptr);
    } else if (r < 95) {
      const std::size_t k = rng() % live.size();
      const std::uint64_t ptr = live[k];
      live[k] = live.back();
      live.pop_back();
      if (w.streams && rng() % 4 == 0) {
        alloc.record_stream(ptr, 7);
        deferred.push_back(ptr);
      }
      alloc.free(ptr);
    } else if (w.streams && !deferred.empty() && r < 98) {
      alloc.complete_pending_free(deferred.back());
      deferred.pop_back();
    } else if (w.empty_cache) {
      alloc.empty_cache();
      deferred.clear();
    }
    if (w.cut_after != 0 && cut == 0 && trace.events.size() >= w.cut_after) {
      cut = trace.events.size();
      trace.initial_segments = alloc.segments();
    }
  }
  trace.events.erase(trace.events.begin(), trace.events.begin() + static_cast<std::ptrdiff_t>(cut));
  return trace;
}

void expect_exact(const Trace& trace, const ReplayResult& r) {
  EXPECT_EQ(r.events_matched, r.events_total);
  EXPECT_FALSE(r.first_divergence.has_value())
      << "first divergence at event " << r.first_divergence->event_index << " in " << r.first_divergence->context;
  EXPECT_EQ(r.events_total, trace.events.size());
}

TEST(Replay, ReproducesASimulatorRecordingEventForEvent) {
  const Trace trace = record({});
  ASSERT_GT(trace.events.size(), 5000u);
  const ReplayResult r = replay(trace, {});
  expect_exact(trace, r);
  EXPECT_TRUE(r.completed);
  EXPECT_EQ(r.unhandled_ooms, 0u);
}

TEST(Replay, ReproducesDeferredFreesAndEmptyCache) {
  Workload w;
  w.streams = true;
  w.empty_cache = true;
  w.seed = 7;
  const Trace trace = record(w);
  const ReplayResult r = replay(trace, {});
  expect_exact(trace, r);
  EXPECT_GT(r.inferred_empty_cache, 0u);
}

TEST(Replay, ReproducesEveryConfigFamily) {
  for (const char* conf : {"max_split_size_mb:64", "roundup_power2_divisions:4", "expandable_segments:True",
                           "max_split_size_mb:128,roundup_power2_divisions:[64:8,256:2,>:1]"}) {
    SCOPED_TRACE(conf);
    Workload w;
    w.alloc_conf = conf;
    w.seed = 11;
    w.empty_cache = true;
    const Trace trace = record(w);
    expect_exact(trace, replay(trace, {}));
  }
}

// A what-if under another config places blocks elsewhere than the recording did, so the replay must
// follow each recorded allocation to where the simulation put it. The same requests recorded directly
// under that config are the reference: same peaks, same final state, every free matched. Deferred frees
// are tested without memory pressure only: under pressure the recording's own OOM reclaim synchronizes
// and completes them (free_completed inside that malloc), which the replay takes as completion facts,
// while a recording under the other config reclaims, and so completes them, elsewhere; which of the two
// a real GPU would show depends on kernel progress, which no trace records.
TEST(Replay, WhatIfUnderAnotherConfigMakesTheSameRequestsAsARecordingUnderIt) {
  for (const bool streams : {false, true}) {
    for (const char* conf : {"expandable_segments:True", "max_split_size_mb:64", "roundup_power2_divisions:4"}) {
      SCOPED_TRACE(std::string(conf) + (streams ? ", deferred frees" : ", under memory pressure"));
      Workload w;
      w.seed = 21;
      w.streams = streams;
      w.capacity = streams ? 64 * GiB : 8 * GiB;  // 8 GiB: the recordings reclaim cached segments
      const Trace recorded = record(w);
      Workload direct = w;
      direct.alloc_conf = conf;
      const Trace reference = record(direct);
      ReplayOptions options;
      options.alloc_conf = conf;
      options.compare = false;
      const ReplayResult what_if = replay(recorded, options);
      options.alloc_conf.reset();
      const ReplayResult baseline = replay(reference, options);
      ASSERT_TRUE(what_if.completed);
      EXPECT_EQ(what_if.unhandled_ooms, 0u);
      for (const std::string& note : what_if.notes) EXPECT_EQ(note.find("were skipped"), std::string::npos) << note;
      EXPECT_EQ(what_if.requests, baseline.requests);
      EXPECT_EQ(what_if.peak_allocated, baseline.peak_allocated);
      EXPECT_EQ(what_if.peak_reserved, baseline.peak_reserved);
      EXPECT_EQ(what_if.final_reserved, baseline.final_reserved);
    }
  }
}

// A malloc that cannot obtain memory synchronizes every stream, completing the deferred frees, releases
// the cached segments and asks the driver again (release_cached_blocks): the recording shows
// free_completed entries, then segment frees and a segment allocation or an oom, all in that one call.
// Completing those frees before simulating the malloc would let its first search find them.
TEST(Replay, ReproducesDeferredFreesCompletedByAReclaimingMalloc) {
  Workload w;
  w.capacity = 2 * GiB;
  w.steps = 20'000;
  w.seed = 11;
  w.streams = true;
  w.fallible_ooms = true;
  const Trace trace = record(w);
  std::size_t synchronized = 0;  // a free_completed followed by a segment event or an oom
  for (std::size_t i = 0; i + 1 < trace.events.size(); ++i) {
    const TraceAction next = trace.events[i + 1].action;
    if (trace.events[i].action == TraceAction::kFreeCompleted && trace.events[i].addr != trace.events[i + 1].addr &&
        (next == TraceAction::kSegmentFree || next == TraceAction::kSegmentAlloc || next == TraceAction::kOom)) {
      ++synchronized;
    }
  }
  ASSERT_GT(synchronized, 10u) << "the workload no longer exercises the case";
  const ReplayResult r = replay(trace, {});
  expect_exact(trace, r);
  EXPECT_EQ(r.unhandled_ooms, 0u);

  // A what-if on a larger device need not reclaim: the frees still complete, no later than recorded.
  ReplayOptions larger;
  larger.capacity = 8 * GiB;
  const ReplayResult what_if = replay(trace, larger);
  EXPECT_TRUE(what_if.completed);
  EXPECT_EQ(what_if.requests, r.requests);
}

TEST(Replay, ReproducesRecordedOomsAndTheirRecovery) {
  Workload w;
  w.capacity = 1 * GiB;
  w.fallible_ooms = true;
  w.seed = 3;
  const Trace trace = record(w);
  const ReplayResult r = replay(trace, {});
  expect_exact(trace, r);
  ASSERT_FALSE(r.ooms.empty());
  for (const ReplayOom& oom : r.ooms) {
    EXPECT_TRUE(oom.recorded);
    EXPECT_TRUE(oom.handled);
  }
  EXPECT_EQ(r.unhandled_ooms, 0u);
}

// An `oom` that ends the recording (a snapshot dumped from the OOM handler, or the program's last act)
// shows no recovery: it is not read as handled.
TEST(Replay, ARecordedOomThatEndsTheTraceIsUnhandled) {
  Workload w;
  w.capacity = 1 * GiB;
  w.fallible_ooms = true;
  w.seed = 3;
  Trace trace = record(w);
  const auto last_oom = std::find_if(trace.events.rbegin(), trace.events.rend(),
                                     [](const TraceEvent& e) { return e.action == TraceAction::kOom; });
  ASSERT_NE(last_oom, trace.events.rend());
  trace.events.erase(last_oom.base(), trace.events.end());  // the recording stops at its last OOM
  trace.events.back().flags = kTraceFlagNone;                 // and that request was not marked fallible
  const ReplayResult r = replay(trace, {});
  ASSERT_FALSE(r.ooms.empty());
  EXPECT_TRUE(r.ooms.back().recorded);
  EXPECT_FALSE(r.ooms.back().handled);
  EXPECT_EQ(r.unhandled_ooms, 1u);
  for (std::size_t k = 0; k + 1 < r.ooms.size(); ++k) EXPECT_TRUE(r.ooms[k].handled) << "oom " << k;
}

TEST(Replay, SaysWhichAllocatorSettingsItDoesNotSimulate) {
  const Trace trace = record({});
  ReplayOptions options;
  options.alloc_conf = "pinned_use_cuda_host_register:True,pinned_num_register_threads:8,max_split_size_mb:128";
  options.compare = false;
  const ReplayResult r = replay(trace, options);
  const auto note = std::find_if(r.notes.begin(), r.notes.end(),
                                 [](const std::string& n) { return n.find("not simulated") != std::string::npos; });
  ASSERT_NE(note, r.notes.end());
  EXPECT_NE(note->find("pinned_use_cuda_host_register, pinned_num_register_threads"), std::string::npos) << *note;
  EXPECT_EQ(note->find("max_split_size_mb"), std::string::npos) << *note;
}

TEST(Replay, ComparesTheReservedAndRequestedCurvesWithTheRecording) {
  Workload w;
  w.streams = true;
  w.empty_cache = true;
  const Trace trace = record(w);
  const ReplayResult r = replay(trace, {});
  expect_exact(trace, r);
  ASSERT_GT(r.recorded_peak_reserved, 0u);
  EXPECT_EQ(r.recorded_peak_reserved, r.peak_reserved);
  EXPECT_EQ(r.recorded_peak_requested, r.peak_requested);
  EXPECT_EQ(r.max_reserved_difference, 0u);
  ASSERT_GT(r.timeline.size(), 100u);
  for (const FragmentationSample& s : r.timeline) {
    ASSERT_EQ(s.recorded_reserved, s.reserved) << "at event " << s.event_index;
    ASSERT_EQ(s.recorded_requested, s.requested) << "at event " << s.event_index;
  }

  // The same requests under expandable segments reserve differently; the recording stays what it was.
  ReplayOptions what_if;
  what_if.alloc_conf = "expandable_segments:True";
  const ReplayResult other = replay(trace, what_if);
  EXPECT_EQ(other.recorded_peak_reserved, r.recorded_peak_reserved);
  EXPECT_EQ(other.recorded_peak_requested, r.recorded_peak_requested);
  EXPECT_EQ(other.peak_requested, r.peak_requested);  // the same requests
  EXPECT_GT(other.max_reserved_difference, 0u);
}

TEST(Replay, SmallerDeviceStopsAtTheFirstUnhandledOom) {
  const Trace trace = record({});
  ReplayOptions options;
  options.capacity = 256 * MiB;
  options.compare = false;
  const ReplayResult r = replay(trace, options);
  EXPECT_FALSE(r.completed);
  EXPECT_EQ(r.unhandled_ooms, 1u);
  ASSERT_EQ(r.ooms.size(), 1u);
  EXPECT_FALSE(r.ooms[0].handled);
  EXPECT_NE(r.ooms[0].message.find("CUDA out of memory. Tried to allocate"), std::string::npos);
}

TEST(Replay, MinCapacityIsTheBoundaryAndBelowThePeak) {
  Workload w;
  w.steps = 1500;
  const Trace trace = record(w);
  ReplayOptions options;
  const MinCapacityResult m = find_min_capacity(trace, options);
  EXPECT_TRUE(m.verified_boundary);
  EXPECT_LE(m.min_capacity, m.peak_reserved_unlimited + 2 * MiB);
  EXPECT_EQ(m.min_capacity % (2 * MiB), 0u);
  options.compare = false;
  options.capacity = m.min_capacity;
  EXPECT_TRUE(replay(trace, options).completed);
  options.capacity = m.min_capacity - 2 * MiB;
  EXPECT_FALSE(replay(trace, options).completed);
}

TEST(Replay, ReportsTheFirstDivergenceWithItsIndex) {
  Trace trace = record({});
  // Pretend the real allocator made the 10th segment 2 MiB larger than the simulator will.
  std::size_t seen = 0, index = 0;
  for (std::size_t i = 0; i < trace.events.size(); ++i) {
    if (trace.events[i].action == TraceAction::kSegmentAlloc && ++seen == 10) {
      index = i;
      trace.events[i].size += 2 * MiB;
      break;
    }
  }
  ASSERT_GT(index, 0u);
  const ReplayResult r = replay(trace, {});
  ASSERT_TRUE(r.first_divergence.has_value());
  EXPECT_EQ(r.first_divergence->event_index, index);
  ASSERT_TRUE(r.first_divergence->expected.has_value());
  ASSERT_TRUE(r.first_divergence->simulated.has_value());
  EXPECT_EQ(r.first_divergence->expected->size, r.first_divergence->simulated->size + 2 * MiB);
  // The simulated entry carries the time of the call it came from (the segment and its malloc share a step).
  EXPECT_GT(r.first_divergence->expected->time_us, 0);
  EXPECT_EQ(r.first_divergence->simulated->time_us, r.first_divergence->expected->time_us);
  EXPECT_FALSE(r.first_divergence->segments_near.empty());
  EXPECT_EQ(r.events_matched + 1, r.events_total);
}

TEST(Replay, TheDivergenceShowsTheNearestSegmentsWhenNoneIsClose) {
  Trace trace = record({});
  const auto alloc = std::find_if(trace.events.begin() + 1, trace.events.end(), [](const TraceEvent& e) {
    return e.action == TraceAction::kAlloc;
  });
  ASSERT_NE(alloc, trace.events.end());
  alloc->addr += 1024 * GiB;  // the recording put it far from every segment the simulation has
  const ReplayResult r = replay(trace, {});
  ASSERT_TRUE(r.first_divergence.has_value());
  EXPECT_EQ(r.first_divergence->event_index, static_cast<std::size_t>(alloc - trace.events.begin()));
  EXPECT_FALSE(r.first_divergence->segments_near.empty());
  EXPECT_LE(r.first_divergence->segments_near.size(), 2u);
}

// The recording from event `split` on, starting from the allocator state there, as a partial recording
// (a snapshot's ring buffer) would: the state is rebuilt by making the first `split` events' requests.
Trace cut_recording(const Trace& full, std::size_t split, std::uint64_t capacity) {
  Device device({"d", Platform::kCuda, capacity});
  CachingAllocator state(device, AllocatorConfig::parse(full.metadata.alloc_conf), VersionProfile::newest(),
                         EventCompletion::kExplicit);
  std::unordered_map<std::uint64_t, std::uint64_t> live;
  for (std::size_t i = 0; i < split; ++i) {
    const TraceEvent& e = full.events[i];
    if (e.action == TraceAction::kSegmentAlloc) device.prefer_next_address(e.addr);
    if (e.action == TraceAction::kAlloc) live[e.addr] = *state.malloc(e.size, e.stream);
    if (e.action == TraceAction::kFreeRequested) {
      state.free(live.at(e.addr));
      live.erase(e.addr);
    }
  }
  Trace second;
  second.metadata = full.metadata;
  second.initial_segments = state.segments();
  second.events.assign(full.events.begin() + static_cast<std::ptrdiff_t>(split), full.events.end());
  return second;
}

TEST(Replay, StartsFromALoadedInitialState) {
  // Cut a recording in two right after an alloc; the second half starts from the allocator state at
  // the cut, as a partial recording would.
  Workload w;
  w.steps = 3000;
  const Trace full = record(w);
  std::size_t split = full.events.size() / 2;
  while (full.events[split].action != TraceAction::kAlloc) ++split;
  const Trace second = cut_recording(full, split + 1, w.capacity);
  ASSERT_FALSE(second.initial_segments.empty());
  expect_exact(second, replay(second, {}));
}

// ---- streamed traces ----------------------------------------------------------------------------

// A trace long enough to span several of the stream window's chunks (65,536 events), written as an
// .otrace and streamed back.
struct StreamedTrace {
  Trace trace;
  std::filesystem::path path;
  explicit StreamedTrace(const Workload& w) {
    trace = record(w);
    path = std::filesystem::temp_directory_path() / ("offsim_replay_stream_" + std::to_string(::getpid()) + ".otrace");
    write_trace_file(path, trace);
  }
  ~StreamedTrace() { std::filesystem::remove(path); }
  ReplayInput streamed() const {
    const std::filesystem::path file = path;
    return ReplayInput([file] { return std::make_unique<TraceReader>(file); });
  }
};

void expect_same_replay(const ReplayResult& streamed, const ReplayResult& held) {
  EXPECT_EQ(streamed.trace_events, held.trace_events);
  EXPECT_EQ(streamed.events_total, held.events_total);
  EXPECT_EQ(streamed.events_matched, held.events_matched);
  EXPECT_EQ(streamed.first_divergence.has_value(), held.first_divergence.has_value());
  if (streamed.first_divergence && held.first_divergence) {
    EXPECT_EQ(streamed.first_divergence->event_index, held.first_divergence->event_index);
  }
  EXPECT_EQ(streamed.peak_reserved, held.peak_reserved);
  EXPECT_EQ(streamed.peak_allocated, held.peak_allocated);
  EXPECT_EQ(streamed.final_reserved, held.final_reserved);
  EXPECT_EQ(streamed.requests, held.requests);
  EXPECT_EQ(streamed.inferred_empty_cache, held.inferred_empty_cache);
  EXPECT_EQ(streamed.unhandled_ooms, held.unhandled_ooms);
  EXPECT_EQ(streamed.completed, held.completed);
  ASSERT_EQ(streamed.ooms.size(), held.ooms.size());
  for (std::size_t k = 0; k < held.ooms.size(); ++k) {
    EXPECT_EQ(streamed.ooms[k].event_index, held.ooms[k].event_index);
    EXPECT_EQ(streamed.ooms[k].handled, held.ooms[k].handled);
  }
  EXPECT_EQ(streamed.notes, held.notes);
  EXPECT_EQ(streamed.recorded_final_segments, held.recorded_final_segments);
}

// Deferred frees with empty_cache() calls in one trace, with memory pressure and handled OOMs (reclaiming
// mallocs that complete deferred frees) in the other.
Workload long_workload(bool with_ooms) {
  Workload w;
  w.steps = 140'000;
  w.seed = 11;
  if (with_ooms) {
    w.capacity = 2 * GiB;
    w.fallible_ooms = true;
    w.streams = true;
  } else {
    w.capacity = 64 * GiB;  // room for the whole run: the recording stops at an unhandled OOM
    w.streams = true;
    w.empty_cache = true;
  }
  return w;
}

TEST(ReplayStreamed, AnOtraceStreamedReplaysAsTheSameTraceHeldInMemory) {
  for (const bool with_ooms : {false, true}) {
    SCOPED_TRACE(with_ooms ? "handled OOMs" : "deferred frees and empty_cache");
    const StreamedTrace t(long_workload(with_ooms));
    ASSERT_GT(t.trace.events.size(), 3u * 65'536u);
    const ReplayResult held = replay(t.trace, {});
    EXPECT_EQ(held.ooms.empty(), !with_ooms);
    expect_exact(t.trace, held);
    expect_same_replay(replay(t.streamed(), {}), held);

    ReplayOptions what_if;  // a smaller device and other settings: a second pass over the stream
    what_if.capacity = 1 * GiB;
    what_if.alloc_conf = "max_split_size_mb:64,garbage_collection_threshold:0.6,per_process_memory_fraction:0.9";
    expect_same_replay(replay(t.streamed(), what_if), replay(t.trace, what_if));

    const MinCapacityResult streamed_min = find_min_capacity(t.streamed(), {});
    const MinCapacityResult held_min = find_min_capacity(t.trace, {});
    EXPECT_EQ(streamed_min.min_capacity, held_min.min_capacity);
    EXPECT_EQ(streamed_min.probes, held_min.probes);
  }
}

// A source that claims, after its first chunk, to be read to its end: the replay's stride estimate is
// far too short, and the timeline must thin itself out rather than grow with the trace.
class MisreportingSource : public TraceEventSource {
 public:
  explicit MisreportingSource(const Trace& trace) : inner_(trace) {}
  const TraceMetadata& metadata() const override { return inner_.metadata(); }
  const std::vector<SegmentInfo>& initial_segments() const override { return inner_.initial_segments(); }
  bool next(TraceEvent& event) override { return inner_.next(event); }
  const std::vector<SegmentInfo>& final_segments() const override { return inner_.final_segments(); }
  double fraction_read() const override { return 1.0; }

 private:
  TraceVectorSource inner_;
};

TEST(ReplayStreamed, TheTimelineStaysBoundedWhenTheLengthEstimateIsShort) {
  const StreamedTrace t(long_workload(/*with_ooms=*/true));
  ReplayOptions options;
  options.timeline_points = 100;
  const Trace& trace = t.trace;
  const ReplayResult r = replay(ReplayInput([&trace] { return std::make_unique<MisreportingSource>(trace); }), options);
  expect_exact(trace, r);
  std::size_t regular = 0;
  for (const FragmentationSample& s : r.timeline) {
    const bool at_oom = std::any_of(r.ooms.begin(), r.ooms.end(), [&](const ReplayOom& o) { return o.event_index == s.event_index; });
    if (!at_oom) ++regular;
  }
  EXPECT_GE(regular, 100u);
  EXPECT_LE(regular, 200u);
  EXPECT_TRUE(std::is_sorted(r.timeline.begin(), r.timeline.end(),
                             [](const FragmentationSample& a, const FragmentationSample& b) { return a.event_index < b.event_index; }));
  for (const ReplayOom& oom : r.ooms) {  // every OOM keeps its sample
    EXPECT_TRUE(std::any_of(r.timeline.begin(), r.timeline.end(),
                            [&](const FragmentationSample& s) { return s.event_index == oom.event_index; }))
        << "oom at " << oom.event_index;
  }
  // Evenly spaced: no gap between regular samples wider than twice the final stride.
  const std::size_t stride = trace.events.size() / regular;
  std::size_t previous = 0;
  for (const FragmentationSample& s : r.timeline) {
    EXPECT_LE(s.event_index - previous, 4 * stride) << "at " << s.event_index;
    previous = s.event_index;
  }
}

}  // namespace
}  // namespace offsim::sim

namespace offsim::sim {
namespace {

// Requests of one stream in a compact form: "a ID BYTES" = malloc, "f ID" = free, "e" = empty_cache(),
// recorded by the simulator on a device without a limit.
Trace record_script(const std::vector<std::string>& script, const std::string& alloc_conf = "") {
  Device device({"recorder", Platform::kCuda, 1024 * GiB});
  CachingAllocator alloc(device, AllocatorConfig::parse(alloc_conf), VersionProfile::newest(),
                         EventCompletion::kExplicit);
  Trace trace;
  trace.metadata.alloc_conf = alloc_conf;
  alloc.set_trace_sink(&trace.events);
  std::map<int, std::uint64_t> live;
  for (const std::string& step : script) {
    std::istringstream in(step);
    char op = 0;
    int id = 0;
    std::uint64_t bytes = 0;
    in >> op >> id >> bytes;
    if (op == 'a') live[id] = alloc.malloc(bytes).value();
    else if (op == 'f') alloc.free(live.at(id));
    else alloc.empty_cache();
  }
  return trace;
}

// Issue 16 item 10: at another capacity, a new segment must not be put on top of a live one at the address
// the recording used. PyTorch's allocator at 32 MiB runs these requests without an OOM.
TEST(ReplayWhatIf, NeverPlacesANewSegmentOnALiveOne) {
  const Trace trace = record_script({"a1 16777216", "f1", "a2 18874368", "a3 10485760", "a4 512", "f2",
                                     "a5 20971520", "f3", "f5", "f4", "e", "a6 31457280", "f6", "e"});
  ReplayOptions options;
  options.capacity = 32 * MiB;
  const ReplayResult r = replay(trace, options);
  EXPECT_TRUE(r.completed);
  EXPECT_EQ(r.unhandled_ooms, 0u);
  EXPECT_EQ(r.final_allocated, 0u);
  EXPECT_EQ(r.final_requested, 0u);
}

// Issue 16 item 1: a recording that ends in an OOM, with no device total in its metadata (a PyTorch snapshot
// has none). The OOM entry's device_free and the reserved bytes at that moment give the total, on which
// the replay releases cached segments and fails as the recording did. An explicit capacity still wins.
TEST(ReplayCapacity, ARecordedOomGivesTheDeviceTotal) {
  Workload w;
  w.capacity = 1 * GiB;
  w.fallible_ooms = true;
  w.seed = 3;
  Trace trace = record(w);
  const auto last_oom = std::find_if(trace.events.rbegin(), trace.events.rend(),
                                     [](const TraceEvent& e) { return e.action == TraceAction::kOom; });
  ASSERT_NE(last_oom, trace.events.rend());
  trace.events.erase(last_oom.base(), trace.events.end());  // the program died at its last OOM
  trace.events.back().flags = kTraceFlagNone;
  trace.metadata.device_total_bytes = 0;

  const ReplayResult r = replay(trace, {});
  EXPECT_EQ(r.capacity, 1 * GiB);
  EXPECT_EQ(r.capacity_source.rfind("inferred from the recorded OOM at event ", 0), 0u) << r.capacity_source;
  expect_exact(trace, r);
  EXPECT_EQ(r.unhandled_ooms, 1u);
  EXPECT_TRUE(r.ooms.back().recorded);
  const bool noted = std::any_of(r.notes.begin(), r.notes.end(), [](const std::string& note) {
    return note.find("inferred from the recorded OOM") != std::string::npos && note.find("device_free") != std::string::npos;
  });
  EXPECT_TRUE(noted);

  // Without the inference the recorded release-and-fail cannot happen: the device would be 1 TiB.
  ReplayOptions given;
  given.capacity = 1024 * GiB;
  const ReplayResult unlimited = replay(trace, given);
  EXPECT_EQ(unlimited.capacity_source, "given");
  EXPECT_EQ(unlimited.unhandled_ooms, 0u);

  // Memory outside the allocator the caller states is added to the inferred total, so the allocator has
  // the same room as recorded.
  ReplayOptions context;
  context.non_allocator_bytes = 300 * MiB;
  const ReplayResult with_context = replay(trace, context);
  EXPECT_EQ(with_context.capacity, 1 * GiB + 300 * MiB);
  EXPECT_EQ(with_context.unhandled_ooms, 1u);
}

// Issue 16 item 3: a device smaller than the state the trace starts from is refused naming that state, and
// the minimum-capacity search starts there instead of aborting.
TEST(ReplayCapacity, ADeviceSmallerThanTheStartStateIsRefusedAndTheSearchStartsThere) {
  Workload w;
  w.steps = 3000;
  const Trace full = record(w);
  const Trace second = cut_recording(full, full.events.size() / 2, w.capacity);
  const std::uint64_t start = std::accumulate(second.initial_segments.begin(), second.initial_segments.end(),
                                              std::uint64_t{0},
                                              [](std::uint64_t sum, const SegmentInfo& s) { return sum + s.total_size; });
  ASSERT_GT(start, 100 * MiB);
  ReplayOptions small;
  small.capacity = start - 2 * MiB;
  try {
    replay(second, small);
    FAIL() << "a device below the start state was accepted";
  } catch (const ConfigError& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("cannot hold the state the trace starts from: " + format_bytes(start)), std::string::npos) << what;
    EXPECT_NE(what.find("at least " + format_bytes(start)), std::string::npos) << what;
  }
  const MinCapacityResult m = find_min_capacity(second, {});
  EXPECT_GE(m.min_capacity, start);
  EXPECT_TRUE(m.verified_boundary);
  ReplayOptions at_minimum;
  at_minimum.capacity = m.min_capacity;
  EXPECT_TRUE(replay(second, at_minimum).completed);
}

// Issue 16 item 4: a GPU recording without segment events (taken after warm-up) still records where the
// allocator placed every request. Those addresses are compared and counted as such; a request stream from
// a CPU recording compares nothing and says so.
TEST(ReplayComparison, AGpuRecordingWithoutSegmentEventsIsJudgedByItsAddresses) {
  const Trace full = record_script({"a1 8388608", "a2 4194304", "a3 600000", "f1", "f3", "a4 2097152", "a5 1048577",
                                    "f2", "a6 3000000", "a7 5000", "f4", "f6", "a8 8388608", "f5", "f7", "f8"});
  std::size_t split = 0;
  for (std::size_t i = 0; i < full.events.size(); ++i) {
    if (full.events[i].action == TraceAction::kSegmentAlloc) split = i + 2;  // past the alloc it served
  }
  Trace trace = cut_recording(full, split, 1024 * GiB);
  trace.metadata.provenance.kind = ProvenanceKind::kGpuMeasured;
  const auto allocs = static_cast<std::size_t>(std::count_if(
      trace.events.begin(), trace.events.end(), [](const TraceEvent& e) { return e.action == TraceAction::kAlloc; }));
  ASSERT_GE(allocs, 4u);
  const ReplayResult r = replay(trace, {});
  EXPECT_EQ(r.comparison, "addresses");
  EXPECT_EQ(r.compared.addresses.total, allocs);
  EXPECT_EQ(r.compared.addresses.matched, allocs);
  EXPECT_EQ(r.compared.segments.total, 0u);
  EXPECT_EQ(r.events_total, r.compared.addresses.total + r.compared.frees.total);
  expect_exact(trace, r);

  // The recording placed one request elsewhere: that alloc is not reproduced.
  Trace moved = trace;
  const auto first_alloc = std::find_if(moved.events.begin(), moved.events.end(),
                                        [](const TraceEvent& e) { return e.action == TraceAction::kAlloc; });
  const std::uint64_t from = first_alloc->addr;
  for (auto it = first_alloc; it != moved.events.end(); ++it) {
    if (it->addr == from) it->addr = from + 64 * MiB;
  }
  const ReplayResult judged = replay(moved, {});
  EXPECT_EQ(judged.compared.addresses.matched, allocs - 1);
  ASSERT_TRUE(judged.first_divergence.has_value());
  EXPECT_EQ(judged.first_divergence->event_index, static_cast<std::size_t>(first_alloc - moved.events.begin()));

  Trace cpu = trace;
  cpu.metadata.provenance.kind = ProvenanceKind::kCpuRecordedSimulated;
  const ReplayResult none = replay(cpu, {});
  EXPECT_EQ(none.comparison, "none");
  EXPECT_EQ(none.events_total, 0u);

  Trace state_only = trace;
  state_only.events = {TraceEvent{0, 1, 0, 0, TraceAction::kSnapshot, kTraceFlagNone}};
  const ReplayResult state = replay(state_only, {});
  EXPECT_EQ(state.comparison, "state-only");
  EXPECT_EQ(state.events_total, 0u);
}

}  // namespace
}  // namespace offsim::sim

namespace offsim::sim {
namespace {

// Issue 16 item 6: a snapshot taken mid-run with expandable_segments:True lists its mapped runs; the replay
// loads them into their address reservations and carries on as the recording did.
TEST(ReplayStartState, AnExpandableSegmentsRecordingCutMidRunReplaysExactly) {
  Workload w;
  w.alloc_conf = "expandable_segments:True";
  w.steps = 4000;
  w.seed = 5;
  w.empty_cache = true;  // unmapped pages between mapped runs
  const std::size_t length = record(w).events.size();
  for (std::size_t quarter = 1; quarter <= 3; ++quarter) {
    w.cut_after = length * quarter / 4;
    SCOPED_TRACE("cut after event " + std::to_string(w.cut_after));
    const Trace second = record(w);
    ASSERT_TRUE(std::any_of(second.initial_segments.begin(), second.initial_segments.end(),
                            [](const SegmentInfo& s) { return s.is_expandable; }));
    expect_exact(second, replay(second, {}));
  }
}

}  // namespace
}  // namespace offsim::sim
