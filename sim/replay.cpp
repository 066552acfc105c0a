#include "offsim/sim/replay.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "address_map.hpp"
#include "event_window.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/recorded_device.hpp"
#include "async_pool_replay.hpp"

namespace offsim::sim {

namespace {

constexpr std::uint64_t kDefaultCapacity = 1024 * GiB;
// PyTorch's trace does not record record_stream calls. A free_requested that is not followed at once by
// its free_completed was deferred by uses on other streams; replay stands in one synthetic stream for
// them, and the recorded free_completed (or a synchronization) completes the free.
constexpr StreamId kRecordedUseStream = ~StreamId{0} - 1;


class Replayer {
 public:
  // `events`: the trace's events (whole, or a window over a streamed source). `decided`: positions where an
  // ambiguous run of segment frees before a malloc was read as empty_cache() by a replay at the recorded
  // conditions. Null: decide now and remember in decisions().
  Replayer(const TraceMetadata& metadata, const std::vector<SegmentInfo>& initial_segments, EventWindow events,
           const ReplayOptions& options, const std::vector<std::size_t>* decided)
      : decided_(decided),
        events_(std::move(events)),
        options_(options),
        config_(AllocatorConfig::parse(options.alloc_conf.value_or(metadata.alloc_conf), *options.profile)),
        device_(make_device(options)),
        allocator_(device_, config_, *options.profile, EventCompletion::kExplicit) {
    result_.capacity = device_.spec().total_bytes;
    result_.alloc_conf = config_.source;
    if (!config_.not_modelled.empty()) {
      std::string keys;
      for (const std::string& key : config_.not_modelled) keys += (keys.empty() ? "" : ", ") + key;
      result_.notes.push_back("allocator settings accepted but not simulated (they change no device byte counts: "
                              "pinned host memory, locking): " + keys);
    }
    if (options_.compare) allocator_.set_trace_sink(&simulated_);
    for (const SegmentInfo& segment : initial_segments) {
      recorded_reserved_ += segment.total_size;
      recorded_requested_ += static_cast<std::int64_t>(segment.requested_size);
    }
    recorded_peak_reserved_ = recorded_reserved_;
    recorded_peak_requested_ = recorded_requested_;
    if (!initial_segments.empty()) {
      allocator_.load_state(initial_segments);
      result_.start_reserved = allocator_.fragmentation().reserved;
      result_.notes.push_back(metadata.reconstructed_initial_state
                                  ? "initial allocator state reconstructed by rewinding the final snapshot through "
                                    "the recorded events (the recording's ring buffer did not hold the whole run)"
                                  : "initial allocator state loaded from the trace");
    }
    // A streamed trace's length is known only at its end: sample at a stride estimated from the first
    // chunk, and thin the timeline out (sample() doubles the stride) if the estimate was short.
    has_event(0, 0);
    timeline_points_ = std::max<std::size_t>(1, options_.timeline_points);
    stride_ = std::max<std::size_t>(1, events_.estimated_total() / timeline_points_);
  }

  const std::vector<std::size_t>& decisions() const { return decisions_; }
  const EventWindow& events() const { return events_; }
  /// Whether the events read hold any of the allocator's own decisions (segment events, OOMs). A request
  /// stream such as a libtorch CPU recording holds none, so there is nothing to compare against.
  bool records_allocator_decisions() const { return records_decisions_; }

  ReplayResult run() {
    std::size_t i = 0;
    for (; result_.completed && has_event(i, i); ++i) {
      const TraceEvent& e = events_[i];
      switch (e.action) {
        case TraceAction::kSnapshot:
          ++skipped_snapshots_;
          break;
        case TraceAction::kSegmentAlloc:
        case TraceAction::kSegmentFree:
        case TraceAction::kSegmentMap:
        case TraceAction::kSegmentUnmap:
          records_decisions_ = true;
          pending_.push_back(i);
          break;
        case TraceAction::kFreeCompleted:
          if (completed_by_synchronization(i)) [[unlikely]] {
            // Part of the call that synchronized (a reclaiming malloc, or empty_cache()): it joins the
            // pending segment events, and the simulated call completes it by synchronizing too.
            pending_.push_back(i);
            break;
          }
          if (!pending_.empty()) flush_as_empty_cache(i);
          recorded_requested_ -= static_cast<std::int64_t>(events_[i].size);
          deferred_free_completed(i);
          break;
        case TraceAction::kFreeRequested: {
          if (!pending_.empty()) flush_as_empty_cache(i);
          const std::size_t last = free_requested(i);  // i + 1 when it took the free_completed along
          if (last != i) recorded_requested_ -= static_cast<std::int64_t>(events_[last].size);
          i = last;
          break;
        }
        case TraceAction::kAlloc:
        case TraceAction::kOom:
          malloc_call(i);
          break;
      }
      if (i >= next_sample_) {  // a division per event here cost ~5% of a replay
        next_sample_ = (i / stride_ + 1) * stride_;
        sample(i);
      }
      if ((i & 0xffff) == 0 && options_.progress) options_.progress(i, events_.estimated_total());
    }
    if (result_.completed) flush_as_empty_cache(i);
    count_comparisons();
    const std::size_t n = events_.end();  // the trace's length if the replay read it all
    result_.trace_events = n;
    {  // the recorded curves (cleared by label_comparison where there is no record to speak of)
      result_.recorded_peak_reserved = recorded_peak_reserved_;
      result_.recorded_peak_requested = static_cast<std::uint64_t>(std::max<std::int64_t>(0, recorded_peak_requested_));
      result_.max_reserved_difference = max_reserved_difference_;
    }
    if (options_.progress) options_.progress(n, n);
    const DeviceStats& stats = allocator_.stats();
    result_.peak_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].peak);
    result_.peak_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].peak);
    result_.peak_requested = static_cast<std::uint64_t>(stats.requested_bytes[kAggregate].peak);
    result_.final_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].current);
    result_.final_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].current);
    result_.final_requested = static_cast<std::uint64_t>(stats.requested_bytes[kAggregate].current);
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
  static Device make_device(const ReplayOptions& options) {
    DeviceSpec spec;
    spec.name = "replay device";
    spec.platform = options.platform;
    spec.total_bytes = options.capacity != 0 ? options.capacity : kDefaultCapacity;  // resolved by the caller
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
    consume_pending(count);
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
    if (e.action == TraceAction::kAlloc) recorded_alloc(e.size);
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

  // The recording's requested bytes: what its alloc entries asked for and its free_completed entries gave
  // back (memory_viz's Active Memory Timeline).
  void recorded_alloc(std::uint64_t size) {
    recorded_requested_ += static_cast<std::int64_t>(size);
    recorded_peak_requested_ = std::max(recorded_peak_requested_, recorded_requested_);
  }

  // The first `count` pending events belong to the call just simulated; they leave the pending list.
  // * The recorded curves follow them now, so that a sample compares the two at the same point.
  // * Their free_completed entries came from the synchronization inside that call. The simulated allocator
  //   completed those frees too (and emitted them for the comparison) when it reclaimed as the recording
  //   did; in a what-if that did not reclaim they complete now, no later than recorded.
  void consume_pending(std::size_t count) {
    bool settled = false;
    for (std::size_t k = 0; k < count; ++k) {
      const TraceEvent& e = events_[pending_[k]];
      switch (e.action) {
        case TraceAction::kSegmentAlloc:
        case TraceAction::kSegmentMap:
          recorded_reserved_ += e.size;
          recorded_peak_reserved_ = std::max(recorded_peak_reserved_, recorded_reserved_);
          break;
        case TraceAction::kSegmentFree:
        case TraceAction::kSegmentUnmap:
          recorded_reserved_ -= std::min(recorded_reserved_, e.size);
          break;
        case TraceAction::kFreeCompleted: {
          recorded_requested_ -= static_cast<std::int64_t>(e.size);
          const auto it = pending_frees_.find(e.addr);
          if (it == pending_frees_.end()) break;
          const std::uint64_t ptr = it->second;
          forget_deferred(it);
          if (!allocator_.is_live(ptr) && completes_pending(ptr)) allocator_.complete_pending_free(ptr);
          settled = true;
          break;
        }
        default:
          break;
      }
    }
    if (settled) simulated_.clear();
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
  }

  // A malloc whose recorded segment events (and any empty_cache() before it) precede it in the trace.
  [[gnu::noinline]] std::optional<std::uint64_t> malloc_after_segment_events(std::size_t i) {
    const TraceEvent& e = events_[i];
    attribute_segment_frees(i);
    pending_.push_back(i);
    // Simulated segments carry the recorded addresses where the simulated device has that range free, in
    // every replay (the minimum-capacity search too: best fit breaks ties by address, so placement
    // decides which block serves a request, and a search on other addresses would answer for another run).
    // A recorded cudaMalloc address says nothing about where an expandable reservation would go, nor the
    // other way round: a what-if under the other kind of segment places them afresh.
    for (std::size_t k : pending_) {
      if (obtains_memory(k)) {
        if ((events_[k].action == TraceAction::kSegmentMap) == allocator_.uses_expandable_segments()) {
          device_.prefer_next_address(events_[k].addr);
        }
        break;
      }
    }
    begin_call(i);
    const std::optional<std::uint64_t> ptr = allocator_.malloc(e.size, e.stream);
    device_.clear_preferred_address();
    end_call(pending_.data(), pending_.size(),
             [&e, i] { return "malloc(" + std::to_string(e.size) + ") at event " + std::to_string(i); });
    consume_pending(pending_.size());
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
    const bool more_events = has_event(i + 1, i);  // before `e`: loading more may move the window
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
    if (oom.recorded) records_decisions_ = true;
    // A recorded OOM was handled only if the program went on: an `oom` that ends the trace may have ended
    // the program too.
    const bool survived = oom.recorded && more_events;
    oom.handled = survived || (e.flags & kTraceFlagFallible) != 0;
    oom.free_cached_bytes = info.free_cached_bytes;
    oom.largest_free_cached_block = info.largest_free_cached_block;
    oom.fragmentation = info.free_cached_bytes >= info.rounded;
    oom.message = info.message(options_.platform);
    result_.ooms.push_back(std::move(oom));
    sample(i, /*at_oom=*/true);
    if (e.action == TraceAction::kAlloc) dropped_.insert(e.addr);
    if (!result_.ooms.back().handled) {
      if (result_.unhandled_ooms == 0) result_.ooms.back().segments = allocator_.segments();
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
    const bool has_next = has_event(i + 1, i);
    // A copy: looking further ahead below may load more and move the window.
    const std::uint64_t addr = events_[i].addr;
    const bool completes_now = has_next && events_[i + 1].action == TraceAction::kFreeCompleted &&
                               events_[i + 1].addr == addr;
    const std::uint64_t ptr = take_simulated_address(addr);
    if (ptr != kUnknown) {
      if (completes_now && !(reclaim_may_follow(i) && completed_by_the_next_reclaim(i, ptr))) [[likely]] {
        begin_call(i);
        if (allocator_.try_free(ptr)) {
          const std::size_t expected[] = {i, i + 1};
          end_call(expected, 2, [i] { return "free at event " + std::to_string(i); });
          return i + 1;
        }
      } else if (allocator_.is_live(ptr)) {
        // Deferred by uses on other streams: completed later by a recorded free_completed (possibly the
        // very next entry, when a reclaiming malloc synchronizes at once).
        ++deferred_frees_;
        allocator_.record_stream(ptr, kRecordedUseStream);
        if (pending_frees_.emplace(addr, ptr).second) deferral_order_.push_back(addr);
        begin_call(i);
        allocator_.free(ptr);
        end_call(&i, 1, [i] { return "free at event " + std::to_string(i); });
        return i;
      }
    }
    if (dropped_.erase(addr) == 0) ++unknown_frees_;
    if (options_.compare) {
      not_reproduced(TraceAction::kFreeRequested);
      if (completes_now) not_reproduced(TraceAction::kFreeCompleted);
    }
    return completes_now ? i + 1 : i;
  }

  // After a free and its completion, the usual next entry is another request.
  bool reclaim_may_follow(std::size_t i) {
    if (!has_event(i + 2, i)) return false;
    const TraceAction next = events_[i + 2].action;
    return next != TraceAction::kAlloc && next != TraceAction::kFreeRequested;
  }

  // A free_requested and its free_completed side by side are usually one immediate free. They are also
  // what a deferred free looks like when the next malloc reclaims at once: its synchronization completes
  // the free first. The record tells them apart when the freed block (merged with its free neighbours)
  // would have served that malloc: a malloc that reclaims anyway (segment frees or an oom before it
  // allocates) did not find it free, so the free was pending.
  [[gnu::noinline]] bool completed_by_the_next_reclaim(std::size_t i, std::uint64_t ptr) {
    if (config_.max_split_size != kUnlimitedSplitSize) return false;  // best fit then depends on more than size
    // Past the completions and segment events of the malloc that follows, to its alloc or oom.
    std::size_t j = i + 2;
    bool reclaims = false;
    for (; has_event(j, i); ++j) {
      const TraceAction action = events_[j].action;
      if (action == TraceAction::kSegmentFree || action == TraceAction::kSegmentUnmap) reclaims = true;
      else if (action != TraceAction::kFreeCompleted && !is_segment_event(action)) break;
    }
    if (!has_event(j, i)) return false;
    const TraceEvent& next = events_[j];
    if (next.action == TraceAction::kOom) reclaims = true;
    else if (next.action != TraceAction::kAlloc) return false;
    if (!reclaims || next.stream != events_[i].stream || !allocator_.is_live(ptr)) return false;
    const bool same_pool = (allocator_.block_size(ptr) <= kSmallSize) == (next.size <= kSmallSize);
    return same_pool && allocator_.size_if_freed(ptr) >= next.size && config_.divisions_for(next.size) <= 1;
  }

  void deferred_free_completed(std::size_t i) {
    const TraceEvent& e = events_[i];
    auto it = pending_frees_.find(e.addr);
    if (it == pending_frees_.end()) {
      // Either completed already by a simulated synchronization (its free_completed was emitted there)
      // or the free predates the recording.
      if (options_.compare) not_reproduced(TraceAction::kFreeCompleted);
      return;
    }
    const std::uint64_t ptr = it->second;
    forget_deferred(it);
    begin_call(i);
    if (allocator_.is_live(ptr) || !completes_pending(ptr)) {
      end_call_single(i);
      return;
    }
    allocator_.complete_pending_free(ptr);
    end_call_single(i);
  }

  // Whether the deferred free completed at i was completed by release_cached_blocks' synchronization of
  // every stream rather than found complete (process_events at the start of a malloc, which then searches
  // the pool with the block in it). PyTorch completes deferred frees only inside a malloc or
  // empty_cache(), so the record shows which:
  // * after segment frees of the same call: only a malloc's reclaim chain frees segments before
  //   synchronizing (release_available_cached_blocks, then release_cached_blocks);
  // * before segment frees not followed by a malloc: empty_cache(), which synchronizes first;
  // * before a malloc's segment events or its oom: the simulated allocator decides. If that malloc, with
  //   the frees still pending, has to reclaim, it reached the synchronization as the recording did;
  //   otherwise the frees were found complete at its start.
  //
  // A synchronization completes every pending free at once, in the order deferred (the replay defers them
  // all on one stream); frees found complete just before it come first. The synchronized part of a run is
  // therefore the suffix that holds exactly the frees still pending, in deferral order.
  bool completed_by_synchronization(std::size_t i) {
    if (i >= sync_run_begin_ && i < sync_run_end_) return true;
    if (i < found_complete_run_end_) return false;
    if (pending_frees_.count(events_[i].addr) == 0) return false;
    if (!pending_.empty()) {
      sync_run_begin_ = i;
      sync_run_end_ = i + 1;
      return true;
    }
    std::size_t j = i + 1;
    while (has_event(j, i) && events_[j].action == TraceAction::kFreeCompleted) ++j;
    const std::size_t run_end = j;
    while (has_event(j, i) && is_segment_event(events_[j].action)) ++j;
    bool synchronized = j > run_end;  // segment frees with no malloc after them: empty_cache()
    if (has_event(j, i)) {
      const TraceEvent& next = events_[j];
      if (next.action == TraceAction::kAlloc || next.action == TraceAction::kOom) {
        // No segment event and an alloc: the malloc found a block; it did not reclaim.
        synchronized = (j > run_end || next.action == TraceAction::kOom) &&
                       allocator_.would_reclaim(next.size, next.stream);
      }
    }
    found_complete_run_end_ = run_end;
    if (!synchronized) return false;
    // Where the synchronized suffix starts.
    std::vector<std::uint64_t> run;
    for (std::size_t k = i; k < run_end; ++k) run.push_back(events_[k].addr);
    for (std::size_t split = 0; split < run.size(); ++split) {
      std::vector<std::uint64_t> remaining;  // still pending after the first `split` completions
      for (std::uint64_t addr : deferral_order_) {
        if (std::find(run.begin(), run.begin() + static_cast<std::ptrdiff_t>(split), addr) ==
            run.begin() + static_cast<std::ptrdiff_t>(split)) {
          remaining.push_back(addr);
        }
      }
      if (std::equal(remaining.begin(), remaining.end(), run.begin() + static_cast<std::ptrdiff_t>(split), run.end())) {
        found_complete_run_end_ = i + split;
        sync_run_begin_ = i + split;
        sync_run_end_ = run_end;
        return split == 0;
      }
    }
    return false;  // no suffix is "everything pending, in order": completions found one by one
  }

  void forget_deferred(std::unordered_map<std::uint64_t, std::uint64_t>::iterator it) {
    const auto position = std::find(deferral_order_.begin(), deferral_order_.end(), it->first);
    if (position != deferral_order_.end()) deferral_order_.erase(position);
    pending_frees_.erase(it);
  }

  static bool is_segment_event(TraceAction action) {
    return action == TraceAction::kSegmentAlloc || action == TraceAction::kSegmentFree ||
           action == TraceAction::kSegmentMap || action == TraceAction::kSegmentUnmap;
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

  __attribute__((always_inline)) bool same(const TraceEvent& want, const TraceEvent& got) const {
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

  // A recorded event compared with nothing the simulation did (a free of a block it does not hold).
  void not_reproduced(TraceAction action) {
    ++compared_[static_cast<std::size_t>(action)];
    ++mismatched_[static_cast<std::size_t>(action)];
  }

  // The comparison counts by what the events judge (ReplayResult::compared and its totals).
  void count_comparisons() {
    auto add = [this](ComparedEvents& into, TraceAction action) {
      into.total += compared_[static_cast<std::size_t>(action)];
      into.matched += compared_[static_cast<std::size_t>(action)] - mismatched_[static_cast<std::size_t>(action)];
    };
    ComparisonCounts& c = result_.compared;
    add(c.addresses, TraceAction::kAlloc);
    add(c.frees, TraceAction::kFreeRequested);
    add(c.frees, TraceAction::kFreeCompleted);
    for (TraceAction action : {TraceAction::kSegmentAlloc, TraceAction::kSegmentFree, TraceAction::kSegmentMap,
                               TraceAction::kSegmentUnmap, TraceAction::kOom}) {
      add(c.segments, action);
    }
    result_.events_total = c.addresses.total + c.frees.total + c.segments.total;
    result_.events_matched = c.addresses.matched + c.frees.matched + c.segments.matched;
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
        for (k = 0; k < count; ++k) ++compared_[static_cast<std::size_t>(events_[expected[k]].action)];
        return;
      }
    }
    compare_call(expected, count, std::forward<Context>(context));
  }

  // The call's events differ from the record (or in number): count what matches and keep the first
  // divergence. Out of line so that the matching path above stays small.
  template <typename Context>
  __attribute__((noinline)) void compare_call(const std::size_t* expected, std::size_t count, Context&& context) {
    const std::size_t common = std::min(count, simulated_.size());
    std::size_t first_bad = common;
    for (std::size_t k = 0; k < count; ++k) {
      const TraceAction action = events_[expected[k]].action;
      ++compared_[static_cast<std::size_t>(action)];
      if (k < common && same(events_[expected[k]], simulated_[k])) continue;
      ++mismatched_[static_cast<std::size_t>(action)];
      if (k < common && first_bad == common) first_bad = k;
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
    if (d.simulated) d.simulated->time_us = events_[std::min(call_event_, events_.end() - 1)].time_us;
    const std::uint64_t address = d.expected ? d.expected->addr : d.simulated->addr;
    std::vector<SegmentInfo> segments = allocator_.segments();
    for (const SegmentInfo& segment : segments) {
      const std::uint64_t end = segment.address + segment.total_size;
      // The segment holding the address and its neighbours within 64 MiB give the picture.
      if (end + 64 * MiB >= address && segment.address <= address + 64 * MiB) d.segments_near.push_back(segment);
    }
    if (d.segments_near.empty() && !segments.empty()) {
      // Nothing that close (a segment the simulation placed elsewhere): the nearest one on each side.
      auto distance = [address](const SegmentInfo& segment) {
        const std::uint64_t end = segment.address + segment.total_size;
        return segment.address > address ? segment.address - address : address - std::min(address, end);
      };
      const SegmentInfo* below = nullptr;
      const SegmentInfo* above = nullptr;
      for (const SegmentInfo& segment : segments) {
        const SegmentInfo*& side = segment.address > address ? above : below;
        if (side == nullptr || distance(segment) < distance(*side)) side = &segment;
      }
      for (const SegmentInfo* segment : {below, above}) {
        if (segment != nullptr) d.segments_near.push_back(*segment);
      }
    }
    result_.first_divergence = std::move(d);
  }

  // Whether event k exists; a streamed trace may drop events before `current` and the pending segment
  // events while it loads more.
  bool has_event(std::size_t k, std::size_t current) {
    if (k < events_.end()) [[likely]] return true;
    return events_.load_through(k, pending_.empty() ? current : std::min(current, pending_.front()));
  }

  void sample(std::size_t i, bool at_oom = false) {
    const FragmentationInfo f = allocator_.fragmentation();
    const std::uint64_t requested = static_cast<std::uint64_t>(allocator_.stats().requested_bytes[kAggregate].current);
    result_.timeline.push_back({i, f.reserved, f.allocated, f.free_cached, f.inactive_split, f.largest_free_block,
                                requested, recorded_reserved_,
                                static_cast<std::uint64_t>(std::max<std::int64_t>(0, recorded_requested_))});
    const std::uint64_t gap = f.reserved > recorded_reserved_ ? f.reserved - recorded_reserved_ : recorded_reserved_ - f.reserved;
    max_reserved_difference_ = std::max(max_reserved_difference_, gap);
    at_oom_.push_back(at_oom);
    if (!at_oom && ++regular_samples_ > 2 * timeline_points_) thin_timeline();
  }

  // The stride was too short (a streamed trace longer than its first chunk suggested): keep every other
  // regular sample, and every OOM's.
  [[gnu::noinline]] void thin_timeline() {
    std::size_t kept = 0;
    bool keep_regular = true;
    for (std::size_t k = 0; k < result_.timeline.size(); ++k) {
      if (!at_oom_[k]) {
        const bool keep = keep_regular;
        keep_regular = !keep_regular;
        if (!keep) continue;
      }
      result_.timeline[kept] = result_.timeline[k];
      at_oom_[kept] = at_oom_[k];
      ++kept;
    }
    result_.timeline.resize(kept);
    at_oom_.resize(kept);
    regular_samples_ = static_cast<std::size_t>(std::count(at_oom_.begin(), at_oom_.end(), false));
    stride_ *= 2;
    next_sample_ = (next_sample_ + stride_ - 1) / stride_ * stride_;
  }

  const std::vector<std::size_t>* decided_;
  std::size_t next_decided_ = 0;
  std::vector<std::size_t> decisions_;
  EventWindow events_;  // held, not referenced: one indirection less per event
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
  std::deque<std::uint64_t> deferral_order_;  // pending_frees_'s recorded addresses, in the order deferred
  std::size_t sync_run_begin_ = 0;          // free_completed entries in [begin, end) came from a
  std::size_t sync_run_end_ = 0;            // synchronization (completed_by_synchronization)
  std::size_t found_complete_run_end_ = 0;  // those before this were found complete (process_events)
  std::unordered_set<std::uint64_t> dropped_;  // recorded allocations that failed in the simulation
  std::size_t stride_ = 1;
  std::size_t timeline_points_ = 1;
  std::size_t regular_samples_ = 0;
  std::vector<bool> at_oom_;  // per timeline sample: taken at an OOM (kept when the timeline is thinned)
  std::size_t next_sample_ = 0;  // first event index of the next timeline bucket
  bool records_decisions_ = false;
  // The recorded curves, from the initial state and the recorded events.
  std::uint64_t recorded_reserved_ = 0;
  std::uint64_t recorded_peak_reserved_ = 0;
  std::int64_t recorded_requested_ = 0;  // signed: a partial trace frees what it never saw allocated
  std::int64_t recorded_peak_requested_ = 0;
  std::uint64_t max_reserved_difference_ = 0;
  std::array<std::size_t, kTraceActionCount> compared_{};    // recorded events compared, by action
  std::array<std::size_t, kTraceActionCount> mismatched_{};  // of those, not reproduced
  std::size_t skipped_snapshots_ = 0;
  std::size_t unknown_frees_ = 0;
  std::size_t deferred_frees_ = 0;
};

struct Pass {
  ReplayResult result;
  std::vector<std::size_t> decisions;
  bool records_decisions = false;
};

// One reading of the input: the whole trace in memory, or a window over a freshly opened source. With
// `read_to_end`, a pass that stopped early (an unhandled OOM) still counts the trace's events and takes
// its final segments.
Pass run_pass(const ReplayInput& input, const ReplayOptions& options, const std::vector<std::size_t>* decided,
              bool read_to_end) {
  if (const Trace* trace = input.trace()) {
    Replayer replayer(trace->metadata, trace->initial_segments, EventWindow(trace->events), options, decided);
    Pass pass{replayer.run(), replayer.decisions(), replayer.records_allocator_decisions()};
    pass.result.trace_events = trace->events.size();
    if (read_to_end) pass.result.recorded_final_segments = trace->final_segments;
    return pass;
  }
  const std::unique_ptr<TraceEventSource> source = input.open();
  Replayer replayer(source->metadata(), source->initial_segments(), EventWindow(*source), options, decided);
  Pass pass{replayer.run(), replayer.decisions(), replayer.records_allocator_decisions()};
  if (read_to_end) {
    std::size_t events = replayer.events().end();
    if (!replayer.events().complete()) {
      TraceEvent event;
      while (source->next(event)) ++events;
    }
    pass.result.trace_events = events;
    pass.result.recorded_final_segments = source->final_segments();
  }
  return pass;
}

// The device a replay runs on when the caller names none: the recorded total, else the total the first
// recorded OOM implies, else 1 TiB (no limit in practice). `inferred`: the total leaves out the memory
// outside the allocator, which the caller's non_allocator_bytes then adds.
struct RecordedConditions {
  std::uint64_t capacity = kDefaultCapacity;
  std::string source = "assumed";
  bool inferred = false;
  std::vector<std::string> notes;
  std::uint64_t start_reserved = 0;
  std::size_t start_segments = 0;
  std::uint64_t start_live = 0;
};

RecordedConditions recorded_conditions(const ReplayInput& input) {
  // The events are read only when the metadata lacks the total: an OOM may then give it. (A replay of an
  // offsim recording, which knows its total, pays nothing per event for this.)
  RecordedDevice device;
  if (const Trace* trace = input.trace()) {
    TraceVectorSource source(*trace);
    device = read_recorded_device(source, trace->metadata.device_total_bytes == 0);
  } else {
    const std::unique_ptr<TraceEventSource> source = input.open();
    device = read_recorded_device(*source, source->metadata().device_total_bytes == 0);
  }
  RecordedConditions recorded;
  recorded.start_reserved = device.start_reserved;
  recorded.start_segments = device.start_segments;
  recorded.start_live = device.start_live;
  if (device.metadata_total != 0) {
    recorded.capacity = device.metadata_total;
    recorded.source = "recorded";
  } else if (!device.ooms.empty()) {
    const RecordedOom& first = device.ooms.front();
    recorded.capacity = first.total();
    recorded.inferred = true;
    recorded.source = "inferred from the recorded OOM at event " + std::to_string(first.event_index);
    recorded.notes.push_back("device total " + format_bytes(first.total()) + " inferred from the recorded OOM at event " +
                             std::to_string(first.event_index) + ": " + format_bytes(first.reserved) +
                             " reserved at that moment + " + format_bytes(first.device_free) +
                             " free on the device (cudaMemGetInfo, stored in the entry as device_free); memory "
                             "outside the allocator is not recorded and counts only where stated");
    const auto [low, high] = std::minmax_element(device.ooms.begin(), device.ooms.end(),
                                                 [](const RecordedOom& a, const RecordedOom& b) { return a.total() < b.total(); });
    if (high->total() - low->total() >= kRoundLarge) {
      recorded.notes.push_back(std::to_string(device.ooms.size()) + " recorded OOMs imply totals from " +
                               format_bytes(low->total()) + " to " + format_bytes(high->total()) +
                               " (memory outside the allocator changed); the first is used");
    }
  } else {
    recorded.notes.push_back("the trace records neither the device's total nor an OOM: the device is taken as " +
                             format_bytes(kDefaultCapacity) + " (no limit)");
  }
  return recorded;
}

// Whether the settings replayed select backend:cudaMallocAsync (the coarse pool model).
bool on_async_pool(const ReplayOptions& options, const TraceMetadata& metadata) {
  const AllocatorConfig config = AllocatorConfig::parse(options.alloc_conf.value_or(metadata.alloc_conf), *options.profile);
  return config.backend == AllocatorBackend::kCudaMallocAsync;
}

// What the device must hold before the first event: the start state's segments (driver pages), or on the
// cudaMallocAsync pool its live allocations.
std::uint64_t start_bytes(const RecordedConditions& recorded, bool async) {
  return async ? (recorded.start_live + kRoundLarge - 1) / kRoundLarge * kRoundLarge : recorded.start_reserved;
}

// The caller's options with the capacity made explicit. A device smaller than the state the trace starts
// from cannot run it at all: refused, naming that state.
ReplayOptions resolve(const ReplayOptions& options, const RecordedConditions& recorded, bool async) {
  ReplayOptions resolved = options;
  if (resolved.capacity == 0) resolved.capacity = recorded.capacity + (recorded.inferred ? options.non_allocator_bytes : 0);
  const std::uint64_t needed = start_bytes(recorded, async) + options.non_allocator_bytes;
  if (resolved.capacity < needed) {
    throw ConfigError("a device of " + format_bytes(resolved.capacity) + " cannot hold the state the trace starts from: " +
                      format_bytes(start_bytes(recorded, async)) +
                      (async ? " live in allocations" : " reserved in " + std::to_string(recorded.start_segments) + " segments") +
                      " before its first event" +
                      (options.non_allocator_bytes != 0 ? " + " + format_bytes(options.non_allocator_bytes) +
                                                              " outside the allocator"
                                                        : std::string()) +
                      "; replay on a device of at least " + format_bytes(needed) +
                      " (--capacity; --min-capacity searches from there), or from an empty allocator without the "
                      "reconstructed start state (--no-rewind: frees of blocks allocated before the recording are "
                      "then skipped)");
  }
  return resolved;
}

// Which runs of segment frees were empty_cache() calls is a fact about the recording, so it is decided
// once under the recorded conditions (capacity, settings) and kept for what-if replays. `reported`: the
// caller reports this pass (it keeps the caller's stop and progress choices).
Pass baseline_pass(const ReplayInput& input, const ReplayOptions& options, const RecordedConditions& recorded,
                   bool reported) {
  ReplayOptions baseline = options;
  baseline.capacity = recorded.capacity;
  baseline.alloc_conf.reset();
  baseline.non_allocator_bytes = 0;
  baseline.compare = true;
  if (!reported) {  // deciding needs the whole trace
    baseline.stop_at_unhandled_oom = false;
    baseline.progress = nullptr;
  }
  return run_pass(input, baseline, nullptr, reported);
}

bool is_baseline(const TraceMetadata& metadata, const ReplayOptions& resolved, const RecordedConditions& recorded) {
  const bool same_conf = !resolved.alloc_conf || *resolved.alloc_conf == metadata.alloc_conf;
  return resolved.capacity == recorded.capacity && same_conf && resolved.non_allocator_bytes == 0;
}

// A recording of the real allocator without segment events (recorded after warm-up, when every segment
// already existed) still holds the allocator's placement decisions: the address of every alloc. They are
// compared when the trace was measured on a GPU and has a start state to place them in.
bool compares_addresses(const ReplayInput& input, const TraceMetadata& metadata) {
  if (metadata.provenance.kind != ProvenanceKind::kGpuMeasured) return false;
  if (const Trace* trace = input.trace()) return !trace->initial_segments.empty();
  return !input.open()->initial_segments().empty();
}

// What the comparison rested on (ReplayResult::comparison), said in the notes where it is not the usual.
void label_comparison(ReplayResult& result, bool records_decisions, bool addresses) {
  auto compared_nothing = [&result](const char* kind, const char* note) {
    result.comparison = kind;
    result.recorded_peak_reserved = 0;
    result.recorded_peak_requested = 0;
    result.max_reserved_difference = 0;
    result.events_total = 0;
    result.events_matched = 0;
    result.compared = {};
    result.first_divergence.reset();
    result.notes.insert(result.notes.begin(), note);
  };
  if (result.requests == 0 && !records_decisions) {
    // A snapshot dumped with history on but no request recorded (e.g. from an OOM handler): its segments
    // are its content. Neither a failure to reproduce anything nor a comparison.
    compared_nothing("state-only", "state only: the trace holds no allocator requests (the snapshot's segments are "
                                   "its content); nothing to replay or compare");
  } else if (records_decisions) {
    result.comparison = "segments";
  } else if (addresses) {
    result.comparison = "addresses";
    result.notes.insert(result.notes.begin(),
                        "the trace records no segment events (recorded after its segments existed): the allocator's "
                        "placement is judged by the address of every recorded alloc");
  } else {
    compared_nothing("none", "the trace records requests only (no segment events, e.g. a CPU recording): the simulated "
                             "allocator's decisions are reported, there is nothing recorded to compare them with");
  }
}

// Segments of a private pool (segment_pool_id other than (0, 0): a CUDA graph's pool, a torch.cuda.MemPool) are
// loaded into the default pools: offsim does not model private pools, and a replay must not pass that off.
void note_private_pools(ReplayResult& result, const std::vector<SegmentInfo>& segments) {
  std::size_t count = 0;
  std::uint64_t bytes = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> pools;
  for (const SegmentInfo& segment : segments) {
    if (segment.pool_id == std::pair<std::uint64_t, std::uint64_t>{0, 0}) continue;
    ++count;
    bytes += segment.total_size;
    if (std::find(pools.begin(), pools.end(), segment.pool_id) == pools.end()) pools.push_back(segment.pool_id);
  }
  if (count == 0) return;
  result.notes.push_back(std::to_string(count) + " of " + std::to_string(segments.size()) + " segments (" +
                         format_bytes(bytes) + ") belong to " + std::to_string(pools.size()) +
                         " private pool(s) (segment_pool_id other than (0, 0): CUDA graphs or torch.cuda.MemPool), which "
                         "offsim does not model: they are held as segments of the default pools, and requests are "
                         "served from them as if no pool were private");
}

ReplayResult finish(Pass pass, const RecordedConditions& recorded, const ReplayOptions& options, bool addresses) {
  ReplayResult result = std::move(pass.result);
  label_comparison(result, pass.records_decisions, addresses);
  note_private_pools(result, result.recorded_final_segments);
  result.capacity_source = options.capacity == 0 ? recorded.source : "given";
  if (options.capacity == 0) result.notes.insert(result.notes.begin(), recorded.notes.begin(), recorded.notes.end());
  return result;
}

}  // namespace

TraceMetadata ReplayInput::metadata() const {
  if (trace_ != nullptr) return trace_->metadata;
  return open()->metadata();
}

ReplayResult replay(const ReplayInput& input, const ReplayOptions& options) {
  const TraceMetadata metadata = input.metadata();
  const RecordedConditions recorded = recorded_conditions(input);
  const bool async = on_async_pool(options, metadata);
  const ReplayOptions resolved = resolve(options, recorded, async);
  if (async) {
    ReplayResult result = replay_on_async_pool(input, resolved);
    result.capacity_source = options.capacity == 0 ? recorded.source : "given";
    if (options.capacity == 0) result.notes.insert(result.notes.begin(), recorded.notes.begin(), recorded.notes.end());
    return result;
  }
  const bool addresses = compares_addresses(input, metadata);
  if (is_baseline(metadata, resolved, recorded) && options.compare) {
    return finish(baseline_pass(input, resolved, recorded, /*reported=*/true), recorded, options, addresses);
  }
  const Pass baseline = baseline_pass(input, resolved, recorded, /*reported=*/false);
  ReplayOptions what_if = resolved;
  what_if.compare = options.compare && (baseline.records_decisions || addresses);
  Pass pass = run_pass(input, what_if, &baseline.decisions, /*read_to_end=*/true);
  pass.records_decisions = baseline.records_decisions;
  return finish(std::move(pass), recorded, options, addresses);
}

MinCapacityResult find_min_capacity(const ReplayInput& input, ReplayOptions options) {
  constexpr std::uint64_t kStep = 2 * MiB;  // driver granularity; segments are 2 MiB multiples
  options.compare = false;
  options.stop_at_unhandled_oom = true;
  options.timeline_points = 1;
  auto progress = std::move(options.progress);
  options.progress = nullptr;
  MinCapacityResult out;
  const RecordedConditions recorded = recorded_conditions(input);
  const bool async = on_async_pool(options, input.metadata());
  const ReplayOptions resolved = resolve(options, recorded, async);
  const std::vector<std::size_t> decided =
      async ? std::vector<std::size_t>{} : baseline_pass(input, resolved, recorded, /*reported=*/false).decisions;
  auto run = [&](std::uint64_t capacity) {
    options.capacity = capacity;
    ++out.probes;
    if (async) return replay_on_async_pool(input, options);
    return run_pass(input, options, &decided, /*read_to_end=*/false).result;
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
  // The search starts at the smallest device that holds the start state (and the memory outside the
  // allocator): every smaller one fails before the first event, and a device of 0 bytes is none.
  const std::uint64_t floor =
      std::max<std::uint64_t>(1, (start_bytes(recorded, async) + options.non_allocator_bytes + kStep - 1) / kStep);
  std::uint64_t lo = floor - 1;  // fails without a replay
  // With room for the unlimited peak no device allocation fails, so every decision is the same.
  std::uint64_t hi = std::max(floor, (options.non_allocator_bytes + unlimited.peak_reserved + kStep - 1) / kStep);
  // Progress in probes: those made, and those the bisection and the boundary check still need.
  auto report = [&] {
    if (progress) progress(out.probes, out.probes + static_cast<std::size_t>(std::bit_width(hi - lo - 1)) + 2);
  };
  while (hi - lo > 1) {
    report();
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if (fits(mid * kStep)) hi = mid; else lo = mid;
  }
  report();
  out.min_capacity = hi * kStep;
  out.verified_boundary = fits(out.min_capacity) && (hi == floor || !fits((hi - 1) * kStep));
  if (progress) progress(out.probes, out.probes);
  return out;
}

}  // namespace offsim::sim
