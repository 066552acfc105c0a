#include "async_pool_replay.hpp"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "offsim/sim/async_pool_allocator.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

class AsyncPoolReplayer {
 public:
  AsyncPoolReplayer(const ReplayOptions& options, const AllocatorConfig& config)
      : options_(options), device_(make_spec(options)), pool_(device_, config) {
    result_.capacity = options.capacity;
    result_.alloc_conf = config.source;
    result_.comparison = "none";
    result_.allocator_model = "cudaMallocAsync (coarse pool model)";
  }

  ReplayResult run(TraceEventSource& source, std::size_t known_length) {
    load_start_state(source.initial_segments());
    const std::size_t stride = std::max<std::size_t>(1, known_length / std::max<std::size_t>(1, options_.timeline_points));
    TraceEvent e;
    bool releasing = false;  // segment frees seen since the last request
    std::size_t i = 0;
    bool have = source.next(e);
    for (; have && result_.completed; ++i) {
      TraceEvent next_event;
      const bool has_next = source.next(next_event);
      switch (e.action) {
        case TraceAction::kSegmentAlloc:
        case TraceAction::kSegmentMap:
          recorded_reserved_ += e.size;
          recorded_peak_reserved_ = std::max(recorded_peak_reserved_, recorded_reserved_);
          break;
        case TraceAction::kSegmentFree:
        case TraceAction::kSegmentUnmap:
          recorded_reserved_ -= std::min(recorded_reserved_, e.size);
          releasing = true;
          break;
        case TraceAction::kAlloc:
        case TraceAction::kOom:
          releasing = false;  // the segment frees were that malloc's own reclaim
          malloc(i, e, has_next);
          break;
        case TraceAction::kFreeRequested:
          release_if(releasing, i);
          releasing = false;
          free(e);
          break;
        case TraceAction::kFreeCompleted:
          recorded_requested_ -= static_cast<std::int64_t>(e.size);
          break;
        case TraceAction::kSnapshot:
          break;
      }
      if (i % stride == 0) sample(i);
      e = next_event;
      have = has_next;
    }
    if (result_.completed) release_if(releasing, i);
    while (have) {  // a replay stopped at an OOM still counts the trace's events
      ++i;
      have = source.next(e);
    }
    result_.trace_events = i;
    finish();
    return std::move(result_);
  }

 private:
  static DeviceSpec make_spec(const ReplayOptions& options) {
    DeviceSpec spec;
    spec.name = "replay device (cudaMallocAsync)";
    spec.platform = options.platform;
    spec.total_bytes = options.capacity;
    spec.context_bytes = options.non_allocator_bytes;
    return spec;
  }

  // The native allocator's live blocks at the start become live allocations of the pool.
  void load_start_state(const std::vector<SegmentInfo>& segments) {
    for (const SegmentInfo& segment : segments) {
      recorded_reserved_ += segment.total_size;
      for (const BlockInfo& block : segment.blocks) {
        if (block.state == BlockState::kInactive) continue;
        const std::uint64_t bytes = block.requested_size != 0 ? block.requested_size : block.size;
        recorded_requested_ += static_cast<std::int64_t>(bytes);
        const std::optional<std::uint64_t> ptr = pool_.malloc(bytes);
        if (!ptr) {
          throw ConfigError("a device of " + format_bytes(options_.capacity) + " cannot hold the live allocations the "
                            "trace starts from on the cudaMallocAsync pool");
        }
        live_[block.address] = *ptr;
      }
    }
    recorded_peak_reserved_ = recorded_reserved_;
    recorded_peak_requested_ = recorded_requested_;
    pool_.reset_peak_stats();
    result_.start_reserved = pool_.fragmentation().reserved;
    if (!segments.empty()) result_.notes.push_back("live blocks of the start state loaded as live allocations of the pool");
  }

  void malloc(std::size_t i, const TraceEvent& e, bool has_next) {
    ++result_.requests;
    if (e.action == TraceAction::kAlloc) {
      recorded_requested_ += static_cast<std::int64_t>(e.size);
      recorded_peak_requested_ = std::max(recorded_peak_requested_, recorded_requested_);
    }
    const std::optional<std::uint64_t> ptr = pool_.malloc(e.size, e.stream);
    if (ptr) {
      if (e.action == TraceAction::kAlloc) {
        live_[e.addr] = *ptr;
      } else {
        pool_.free(*ptr);  // the real run failed here and went on without the memory
        result_.notes.push_back("recorded OOM at event " + std::to_string(i) + " did not happen on the pool model");
      }
      return;
    }
    const OomInfo& info = pool_.last_oom();
    ReplayOom oom;
    oom.event_index = i;
    oom.size = e.size;
    oom.recorded = e.action == TraceAction::kOom;
    oom.handled = (oom.recorded && has_next) || (e.flags & kTraceFlagFallible) != 0;
    oom.message = info.message(options_.platform);
    result_.ooms.push_back(oom);
    sample(i);
    if (!oom.handled) {
      ++result_.unhandled_ooms;
      if (options_.stop_at_unhandled_oom) result_.completed = false;
    }
  }

  void free(const TraceEvent& e) {
    const auto it = live_.find(e.addr);
    if (it == live_.end()) {
      ++unknown_frees_;
      return;
    }
    pool_.free(it->second);
    live_.erase(it);
  }

  // Segment frees outside any malloc were a torch.cuda.empty_cache(), which trims the pool.
  void release_if(bool releasing, std::size_t) {
    if (!releasing) return;
    pool_.empty_cache();
    ++result_.inferred_empty_cache;
  }

  void sample(std::size_t i) {
    const FragmentationInfo f = pool_.fragmentation();
    const auto requested = static_cast<std::uint64_t>(pool_.stats().requested_bytes[kAggregate].current);
    result_.timeline.push_back({i, f.reserved, f.allocated, f.free_cached, f.inactive_split, f.largest_free_block,
                                requested, recorded_reserved_,
                                static_cast<std::uint64_t>(std::max<std::int64_t>(0, recorded_requested_))});
    const std::uint64_t gap = f.reserved > recorded_reserved_ ? f.reserved - recorded_reserved_ : recorded_reserved_ - f.reserved;
    result_.max_reserved_difference = std::max(result_.max_reserved_difference, gap);
  }

  void finish() {
    const DeviceStats& stats = pool_.stats();
    result_.peak_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].peak);
    result_.peak_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].peak);
    result_.peak_requested = static_cast<std::uint64_t>(stats.requested_bytes[kAggregate].peak);
    result_.final_reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].current);
    result_.final_allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].current);
    result_.final_requested = static_cast<std::uint64_t>(stats.requested_bytes[kAggregate].current);
    result_.recorded_peak_reserved = recorded_peak_reserved_;
    result_.recorded_peak_requested = static_cast<std::uint64_t>(std::max<std::int64_t>(0, recorded_peak_requested_));
    result_.notes.insert(result_.notes.begin(),
                         "backend:cudaMallocAsync: replayed on offsim's coarse pool model (reserved = the high-water "
                         "mark of allocated bytes since the last empty_cache, in whole driver pages; no segments, no "
                         "fragmentation inside the pool): approximate. PyTorch records no trace under this backend, "
                         "so recorded segment events (from the native allocator) are not compared");
    if (unknown_frees_ > 0) {
      result_.notes.push_back(std::to_string(unknown_frees_) +
                              " frees of addresses allocated before the recording started were skipped");
    }
    if (result_.inferred_empty_cache > 0) {
      result_.notes.push_back(std::to_string(result_.inferred_empty_cache) +
                              " runs of segment_free/segment_unmap outside any malloc were replayed as "
                              "torch.cuda.empty_cache() (a trim of the pool)");
    }
  }

  const ReplayOptions& options_;
  Device device_;
  AsyncPoolAllocator pool_;
  ReplayResult result_;
  std::unordered_map<std::uint64_t, std::uint64_t> live_;  // recorded address -> pool address
  std::uint64_t recorded_reserved_ = 0;
  std::uint64_t recorded_peak_reserved_ = 0;
  std::int64_t recorded_requested_ = 0;
  std::int64_t recorded_peak_requested_ = 0;
  std::size_t unknown_frees_ = 0;
};

}  // namespace

ReplayResult replay_on_async_pool(const ReplayInput& input, const ReplayOptions& options) {
  const TraceMetadata metadata = input.metadata();
  const AllocatorConfig config = AllocatorConfig::parse(options.alloc_conf.value_or(metadata.alloc_conf), *options.profile);
  AsyncPoolReplayer replayer(options, config);
  if (const Trace* trace = input.trace()) {
    TraceVectorSource source(*trace);
    ReplayResult result = replayer.run(source, trace->events.size());
    result.recorded_final_segments = trace->final_segments;
    return result;
  }
  const std::unique_ptr<TraceEventSource> source = input.open();
  ReplayResult result = replayer.run(*source, 1'000'000);
  result.recorded_final_segments = source->final_segments();
  return result;
}

}  // namespace offsim::sim
