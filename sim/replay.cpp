#include "offsim/sim/replay.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "address_map.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

constexpr std::uint64_t kDefaultCapacity = 1024 * GiB;
// PyTorch's trace does not record record_stream calls. A free_requested that is not followed at once by
// its free_completed was deferred by uses on other streams; replay stands in one synthetic stream for
// them, and the recorded free_completed (or a synchronization) completes the free.
constexpr StreamId kRecordedUseStream = ~StreamId{0} - 1;


class Replayer {
 public:
  // `decided`: positions where an ambiguous run of segment frees before a malloc was read as
  // empty_cache() by a replay at the recorded conditions. Null: decide now and remember in decisions().
  Replayer(const Trace& trace, const ReplayOptions& options, const std::vector<std::size_t>* decided)
      : decided_(decided),
        trace_(trace),
        events_(trace.events),
        options_(options),
        config_(AllocatorConfig::parse(options.alloc_conf.value_or(trace.metadata.alloc_conf), *options.profile)),
        device_(make_device(trace, options)),
        allocator_(device_, config_, *options.profile, EventCompletion::kExplicit) {
    result_.capacity = device_.spec().total_bytes;
    result_.alloc_conf = config_.source;
    if (options_.compare) allocator_.set_trace_sink(&simulated_);
    if (!trace.initial_segments.empty()) {
      allocator_.load_state(trace.initial_segments);
      result_.notes.push_back(trace.metadata.reconstructed_initial_state
                                  ? "initial allocator state reconstructed by rewinding the final snapshot through "
                                    "the recorded events (the recording's ring buffer did not hold the whole run)"
                                  : "initial allocator state loaded from the trace");
    }
    stride_ = std::max<std::size_t>(1, events_.size() / std::max<std::size_t>(1, options_.timeline_points));
  }

  const std::vector<std::size_t>& decisions() const { return decisions_; }

  ReplayResult run() {
    const std::size_t n = events_.size();
    for (std::size_t i = 0; i < n && result_.completed; ++i) {
      const TraceEvent& e = events_[i];
      switch (e.action) {
        case TraceAction::kSnapshot:
          ++skipped_snapshots_;
          break;
        case TraceAction::kSegmentAlloc:
        case TraceAction::kSegmentFree:
        case TraceAction::kSegmentMap:
        case TraceAction::kSegmentUnmap:
          pending_.push_back(i);
          break;
        case TraceAction::kFreeCompleted:
          if (!pending_.empty()) flush_as_empty_cache(i);
          deferred_free_completed(i);
          break;
        case TraceAction::kFreeRequested:
          if (!pending_.empty()) flush_as_empty_cache(i);
          i = free_requested(i);
          break;
        case TraceAction::kAlloc:
        case TraceAction::kOom:
          malloc_call(i);
          break;
      }
      if (i >= next_sample_) {  // a division per event here cost ~5% of a replay
        next_sample_ = (i / stride_ + 1) * stride_;
        sample(i);
      }
      if ((i & 0xffff) == 0 && options_.progress) options_.progress(i, n);
    }
    if (result_.completed) flush_as_empty_cache(n);
    if (options_.progress) options_.progress(n, n);
    const DeviceStats& stats = allocator_.stats();
    result_.peak_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].peak);
    result_.peak_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].peak);
    result_.final_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].current);
    if (skipped_snapshots_ > 0) {
      result_.notes.push_back(std::to_string(skipped_snapshots_) + " `snapshot` entries are markers, not compared");
    }
    if (unknown_frees_ > 0) {
      result_.notes.push_back(std::to_string(unknown_frees_) +
                              " frees of addresses allocated before the recording started were skipped");
    }
    if (result_.inferred_empty_cache > 0) {
      result_.notes.push_back(std::to_string(result_.inferred_empty_cache) +
                              " runs of segment_free/segment_unmap outside any malloc were replayed as "
                              "torch.cuda.empty_cache()");
    }
    if (deferred_frees_ > 0) {
      result_.notes.push_back(std::to_string(deferred_frees_) +
                              " frees were deferred by uses on other streams (record_stream is not recorded; "
                              "completion taken from the recorded free_completed)");
    }
    return std::move(result_);
  }

 private:
  static Device make_device(const Trace& trace, const ReplayOptions& options) {
    DeviceSpec spec;
    spec.name = "replay device";
    spec.platform = options.platform;
    spec.total_bytes = options.capacity != 0 ? options.capacity
                       : trace.metadata.device_total_bytes != 0 ? trace.metadata.device_total_bytes
                                                                : kDefaultCapacity;
    spec.context_bytes = options.non_allocator_bytes;
    return Device(spec);
  }

  // Recorded segment events that were not part of a malloc came from torch.cuda.empty_cache(), which
  // the trace does not record. Flushes the first `count` pending events as one such call.
  void flush_as_empty_cache(std::size_t at, std::size_t count = ~std::size_t{0}) {
    count = std::min(count, pending_.size());
    if (count == 0) return;
    ++result_.inferred_empty_cache;
    begin_call(at);
    allocator_.empty_cache();
    end_call(pending_.data(), count, [at] { return "empty_cache() before event " + std::to_string(at); });
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
  }

  bool obtains_memory(std::size_t k) const {
    return events_[k].action == TraceAction::kSegmentAlloc || events_[k].action == TraceAction::kSegmentMap;
  }

  // Segment frees before an alloc belong to the malloc only if it had to reclaim: GC and the reclaim
  // chain are always followed by a device allocation, and they run only when the first attempt to obtain
  // memory fails (or GC is due). Otherwise the program called empty_cache() first; "empty_cache, then a
  // malloc that maps a new page" records the same events as a reclaim, so the allocator state decides.
  void attribute_segment_frees(std::size_t i) {
    const TraceEvent& e = events_[i];
    if (e.action != TraceAction::kAlloc || pending_.empty()) return;
    const auto first_obtain = std::find_if(pending_.begin(), pending_.end(), [&](std::size_t k) { return obtains_memory(k); });
    const auto frees = static_cast<std::size_t>(first_obtain - pending_.begin());
    if (frees == 0) return;
    if (first_obtain == pending_.end()) {
      flush_as_empty_cache(i);
      return;
    }
    bool empty_cache_first;
    if (decided_ != nullptr) {
      while (next_decided_ < decided_->size() && (*decided_)[next_decided_] < i) ++next_decided_;
      empty_cache_first = next_decided_ < decided_->size() && (*decided_)[next_decided_] == i;
    } else {
      empty_cache_first = !allocator_.would_reclaim(e.size, e.stream);
      if (empty_cache_first) decisions_.push_back(i);
    }
    if (empty_cache_first) flush_as_empty_cache(i, frees);
  }

  void malloc_call(std::size_t i) {
    const TraceEvent& e = events_[i];
    std::optional<std::uint64_t> ptr;
    if (pending_.empty()) [[likely]] {
      // No recorded segment events before it: the call is expected to record this one event.
      begin_call(i);
      ptr = allocator_.malloc(e.size, e.stream);
      end_call(&i, 1, [&e, i] { return "malloc(" + std::to_string(e.size) + ") at event " + std::to_string(i); });
    } else {
      ptr = malloc_after_segment_events(i);
    }
    ++result_.requests;
    after_malloc(i, ptr);
  }

  // A malloc whose recorded segment events (and any empty_cache() before it) precede it in the trace.
  [[gnu::noinline]] std::optional<std::uint64_t> malloc_after_segment_events(std::size_t i) {
    const TraceEvent& e = events_[i];
    attribute_segment_frees(i);
    pending_.push_back(i);
    if (options_.compare) {
      for (std::size_t k : pending_) {
        const TraceEvent& out = events_[k];
        if (out.action == TraceAction::kSegmentAlloc || out.action == TraceAction::kSegmentMap) {
          device_.prefer_next_address(out.addr);  // simulated segments carry the recorded addresses
          break;
        }
      }
    }
    begin_call(i);
    const std::optional<std::uint64_t> ptr = allocator_.malloc(e.size, e.stream);
    device_.clear_preferred_address();
    end_call(pending_.data(), pending_.size(),
             [&e, i] { return "malloc(" + std::to_string(e.size) + ") at event " + std::to_string(i); });
    pending_.clear();
    return ptr;
  }

  void after_malloc(std::size_t i, const std::optional<std::uint64_t>& ptr) {
    const TraceEvent& e = events_[i];
    if (ptr && e.action == TraceAction::kAlloc) [[likely]] {
      if (*ptr != e.addr) [[unlikely]] {
        remap_.put(e.addr, *ptr);
        remap_targets_.put(*ptr, e.addr);
      }
      return;
    }
    after_failed_or_oom_malloc(i, ptr);
  }

  // A malloc that failed, or a recorded OOM (which the simulation may not have repeated).
  [[gnu::noinline]] void after_failed_or_oom_malloc(std::size_t i, const std::optional<std::uint64_t>& ptr) {
    const TraceEvent& e = events_[i];
    if (ptr) {
      // The real run failed here and the program went on without the memory.
      allocator_.free(*ptr);
      simulated_.clear();
      result_.notes.push_back("recorded OOM at event " + std::to_string(i) + " did not happen in the simulation");
      return;
    }
    const OomInfo& info = allocator_.last_oom();
    ReplayOom oom;
    oom.event_index = i;
    oom.size = e.size;
    oom.recorded = e.action == TraceAction::kOom;
    // A recorded OOM was handled only if the program went on: an `oom` that ends the trace may have ended
    // the program too.
    const bool survived = oom.recorded && i + 1 < events_.size();
    oom.handled = survived || (e.flags & kTraceFlagFallible) != 0;
    oom.free_cached_bytes = info.free_cached_bytes;
    oom.largest_free_cached_block = info.largest_free_cached_block;
    oom.fragmentation = info.free_cached_bytes >= info.rounded;
    oom.message = info.message(options_.platform);
    result_.ooms.push_back(std::move(oom));
    sample(i);
    if (e.action == TraceAction::kAlloc) dropped_.insert(e.addr);
    if (!result_.ooms.back().handled) {
      ++result_.unhandled_ooms;
      if (options_.stop_at_unhandled_oom) result_.completed = false;
    }
  }

  static constexpr std::uint64_t kUnknown = AddressTable<std::uint64_t>::kMissing;

  // Where the simulation put the live recorded allocation at `recorded`, forgetting it (it is being
  // freed); kUnknown if the simulation put another recorded allocation there. A recorded allocation the
  // simulation placed at its recorded address (the usual case while the replay matches) is not
  // remembered: it is found by the allocator itself, live at that address. Blocks of a loaded initial
  // state are found that way too. Only placements that differ are remembered, which spares two hash-table
  // writes per request. The caller still checks that the address is live: one that is not was allocated
  // before the recording started, or failed in the simulation.
  std::uint64_t take_simulated_address(std::uint64_t recorded) {
    if (remap_.size() != 0) [[unlikely]] {
      const std::uint64_t moved = remap_.find(recorded);
      if (moved != kUnknown) {
        remap_.erase(recorded);
        remap_targets_.erase(moved);
        return moved;
      }
      if (remap_targets_.find(recorded) != kUnknown) return kUnknown;
    }
    return recorded;
  }

  std::size_t free_requested(std::size_t i) {
    const TraceEvent& e = events_[i];
    const bool completes_now = i + 1 < events_.size() && events_[i + 1].action == TraceAction::kFreeCompleted &&
                               events_[i + 1].addr == e.addr;
    const std::uint64_t ptr = take_simulated_address(e.addr);
    if (ptr != kUnknown) {
      if (completes_now) [[likely]] {
        begin_call(i);
        if (allocator_.try_free(ptr)) {
          const std::size_t expected[] = {i, i + 1};
          end_call(expected, 2, [i] { return "free at event " + std::to_string(i); });
          return i + 1;
        }
      } else if (allocator_.is_live(ptr)) {
        ++deferred_frees_;
        allocator_.record_stream(ptr, kRecordedUseStream);
        pending_frees_.emplace(e.addr, ptr);
        begin_call(i);
        allocator_.free(ptr);
        end_call(&i, 1, [i] { return "free at event " + std::to_string(i); });
        return i;
      }
    }
    if (dropped_.erase(e.addr) == 0) ++unknown_frees_;
    if (options_.compare) result_.events_total += completes_now ? 2 : 1;
    return completes_now ? i + 1 : i;
  }

  void deferred_free_completed(std::size_t i) {
    const TraceEvent& e = events_[i];
    auto it = pending_frees_.find(e.addr);
    if (it == pending_frees_.end()) {
      // Either completed already by a simulated synchronization (its free_completed was emitted there)
      // or the free predates the recording.
      if (options_.compare) ++result_.events_total;
      return;
    }
    const std::uint64_t ptr = it->second;
    pending_frees_.erase(it);
    begin_call(i);
    if (allocator_.is_live(ptr) || !completes_pending(ptr)) {
      end_call_single(i);
      return;
    }
    allocator_.complete_pending_free(ptr);
    end_call_single(i);
  }

  bool completes_pending(std::uint64_t ptr) {
    // A pending block is still in the allocator's active map but no longer allocated.
    try {
      (void)allocator_.block_size(ptr);
      return !allocator_.is_live(ptr);
    } catch (const AllocatorUsageError&) {
      return false;  // a synchronization already completed it
    }
  }

  // The simulated entries are not stamped with the recorded time (a call per request into the allocator):
  // the comparison ignores time, and a reported divergence takes the time of the call's recorded event.
  void begin_call(std::size_t i) {
    call_event_ = i;
    simulated_.clear();
  }

  void end_call_single(std::size_t i) {
    end_call(&i, 1, [i] { return "free_completed at event " + std::to_string(i); });
  }

  bool same(const TraceEvent& want, const TraceEvent& got) const {
    // The usual case, decided without branches or the rules below.
    const std::uint64_t differ = (want.addr ^ got.addr) | (want.size ^ got.size) | (want.stream ^ got.stream) |
                                 static_cast<std::uint64_t>(static_cast<std::uint8_t>(want.action) ^
                                                            static_cast<std::uint8_t>(got.action));
    if (differ == 0) [[likely]] return true;
    if (want.action != got.action || want.size != got.size) return false;
    if (want.action == TraceAction::kOom) return true;  // addr holds device_free, which depends on the device
    if (want.stream != got.stream && !(got.stream == kRecordedUseStream)) return false;
    if (want.action == TraceAction::kFreeRequested || want.action == TraceAction::kFreeCompleted) {
      return true;  // which block is freed was fixed by the request; placement was judged at its alloc
    }
    return want.addr == got.addr;
  }

  // `expected`: indices of the recorded events this call should have produced, in order. `context` is
  // called only when this call holds the first divergence (building strings per call would cost more
  // than the simulation).
  template <typename Context>
  __attribute__((always_inline)) void end_call(const std::size_t* expected, std::size_t count, Context&& context) {
    if (!options_.compare) return;
    if (count == simulated_.size()) [[likely]] {
      std::size_t k = 0;
      while (k < count && same(events_[expected[k]], simulated_[k])) ++k;
      if (k == count) {
        result_.events_total += k;
        result_.events_matched += k;
        return;
      }
    }
    compare_call(expected, count, std::forward<Context>(context));
  }

  // The call's events differ from the record (or in number): count what matches and keep the first
  // divergence. Out of line so that the matching path above stays small.
  template <typename Context>
  __attribute__((noinline)) void compare_call(const std::size_t* expected, std::size_t count, Context&& context) {
    result_.events_total += count;
    const std::size_t common = std::min(count, simulated_.size());
    std::size_t first_bad = common;
    for (std::size_t k = 0; k < common; ++k) {
      if (same(events_[expected[k]], simulated_[k])) {
        ++result_.events_matched;
      } else if (first_bad == common) {
        first_bad = k;
      }
    }
    if (first_bad == common && count == simulated_.size()) return;
    if (result_.first_divergence) return;
    ReplayDivergence d;
    d.context = context();
    if (first_bad < common) {
      d.event_index = expected[first_bad];
      d.expected = events_[expected[first_bad]];
      d.simulated = simulated_[first_bad];
    } else if (count > common) {
      d.event_index = expected[common];
      d.expected = events_[expected[common]];
    } else {
      d.event_index = count == 0 ? 0 : expected[count - 1];
      d.simulated = simulated_[common];
    }
    if (d.simulated) d.simulated->time_us = events_[std::min(call_event_, events_.size() - 1)].time_us;
    const std::uint64_t address = d.expected ? d.expected->addr : d.simulated->addr;
    for (const SegmentInfo& segment : allocator_.segments()) {
      const std::uint64_t end = segment.address + segment.total_size;
      // The segment holding the address and its neighbours within 64 MiB give the picture.
      if (end + 64 * MiB >= address && segment.address <= address + 64 * MiB) d.segments_near.push_back(segment);
    }
    result_.first_divergence = std::move(d);
  }

  void sample(std::size_t i) {
    const FragmentationInfo f = allocator_.fragmentation();
    result_.timeline.push_back({i, f.reserved, f.allocated, f.free_cached, f.inactive_split, f.largest_free_block});
  }

  const std::vector<std::size_t>* decided_;
  std::size_t next_decided_ = 0;
  std::vector<std::size_t> decisions_;
  const Trace& trace_;
  const std::vector<TraceEvent>& events_;
  const ReplayOptions& options_;
  AllocatorConfig config_;
  Device device_;
  CachingAllocator allocator_;
  ReplayResult result_;
  TraceBuffer simulated_;
  std::size_t call_event_ = 0;  // the recorded event whose call is being simulated
  std::vector<std::size_t> pending_;
  AddressTable<std::uint64_t> remap_;          // recorded -> simulated address, where they differ
  AddressTable<std::uint64_t> remap_targets_;  // the reverse: simulated addresses of remap_'s entries
  std::unordered_map<std::uint64_t, std::uint64_t> pending_frees_;   // recorded -> simulated, deferred
  std::unordered_set<std::uint64_t> dropped_;  // recorded allocations that failed in the simulation
  std::size_t stride_ = 1;
  std::size_t next_sample_ = 0;  // first event index of the next timeline bucket
  std::size_t skipped_snapshots_ = 0;
  std::size_t unknown_frees_ = 0;
  std::size_t deferred_frees_ = 0;
};

}  // namespace

// Which runs of segment frees were empty_cache() calls is a fact about the recording, so it is decided
// once under the recorded conditions (capacity, settings) and kept for what-if replays.
std::vector<std::size_t> baseline_decisions(const Trace& trace, const ReplayOptions& options,
                                            ReplayResult* baseline_result) {
  ReplayOptions baseline = options;
  baseline.capacity = 0;
  baseline.alloc_conf.reset();
  baseline.non_allocator_bytes = 0;
  baseline.compare = true;
  // Deciding needs the whole trace; a reported baseline keeps the caller's choice.
  if (baseline_result == nullptr) {
    baseline.stop_at_unhandled_oom = false;
    baseline.progress = nullptr;
  }
  Replayer replayer(trace, baseline, nullptr);
  ReplayResult r = replayer.run();
  if (baseline_result != nullptr) *baseline_result = std::move(r);
  return replayer.decisions();
}

bool is_baseline(const Trace& trace, const ReplayOptions& options) {
  const bool same_capacity = options.capacity == 0 || options.capacity == trace.metadata.device_total_bytes;
  const bool same_conf = !options.alloc_conf || *options.alloc_conf == trace.metadata.alloc_conf;
  return same_capacity && same_conf && options.non_allocator_bytes == 0;
}

// A trace with no allocator decisions in it (no segment events: a request stream such as a libtorch CPU
// recording) has nothing to compare against.
bool records_allocator_decisions(const Trace& trace) {
  for (const TraceEvent& e : trace.events) {
    if (e.action == TraceAction::kSegmentAlloc || e.action == TraceAction::kSegmentFree ||
        e.action == TraceAction::kSegmentMap || e.action == TraceAction::kSegmentUnmap || e.action == TraceAction::kOom) {
      return true;
    }
  }
  return false;
}

ReplayResult replay(const Trace& trace, const ReplayOptions& options) {
  if (!records_allocator_decisions(trace)) {
    ReplayOptions requests_only = options;
    requests_only.compare = false;
    ReplayResult result = Replayer(trace, requests_only, nullptr).run();
    result.notes.insert(result.notes.begin(),
                        "the trace records requests only (no segment events, e.g. a CPU recording): the simulated "
                        "allocator's decisions are reported, there is nothing recorded to compare them with");
    return result;
  }
  if (is_baseline(trace, options) && options.compare) {
    ReplayResult result;
    baseline_decisions(trace, options, &result);
    return result;
  }
  const std::vector<std::size_t> decided = baseline_decisions(trace, options, nullptr);
  return Replayer(trace, options, &decided).run();
}

MinCapacityResult find_min_capacity(const Trace& trace, ReplayOptions options) {
  constexpr std::uint64_t kStep = 2 * MiB;  // driver granularity; segments are 2 MiB multiples
  options.compare = false;
  options.stop_at_unhandled_oom = true;
  options.timeline_points = 1;
  auto progress = std::move(options.progress);
  options.progress = nullptr;
  MinCapacityResult out;
  const std::vector<std::size_t> decided = baseline_decisions(trace, options, nullptr);
  auto run = [&](std::uint64_t capacity) {
    options.capacity = capacity;
    ++out.probes;
    return Replayer(trace, options, &decided).run();
  };
  auto fits = [&](std::uint64_t capacity) {
    const ReplayResult r = run(capacity);
    return r.completed && r.unhandled_ooms == 0;
  };
  const ReplayResult unlimited = run(kDefaultCapacity);
  if (!unlimited.completed) {
    throw AllocatorUsageError("find_min_capacity: the trace runs out of memory even on a " +
                              format_bytes(kDefaultCapacity) + " device");
  }
  out.peak_reserved_unlimited = unlimited.peak_reserved;
  // With room for the unlimited peak no device allocation fails, so every decision is the same.
  std::uint64_t hi = (options.non_allocator_bytes + unlimited.peak_reserved + kStep - 1) / kStep;
  std::uint64_t lo = options.non_allocator_bytes / kStep;  // nothing left for the allocator: fails
  if (hi <= lo) hi = lo + 1;
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if (progress) progress(out.probes, out.probes + 1);
    if (fits(mid * kStep)) hi = mid; else lo = mid;
  }
  out.min_capacity = hi * kStep;
  out.verified_boundary = fits(out.min_capacity) && (hi == 0 || !fits((hi - 1) * kStep));
  return out;
}

}  // namespace offsim::sim
