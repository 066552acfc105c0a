// A discrete simulation of PyTorch's native CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp,
// DeviceCachingAllocator), event for event: rounding, small/large pools, best-fit search, splitting and
// merging, max_split_size, roundup_power2_divisions, garbage collection, memory fraction, the OOM
// recovery chain, empty_cache, streams with record_stream and deferred frees, and expandable segments.
// shared/specs/pytorch_caching_allocator.md is the map; section numbers below refer to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_buffer.hpp"
#include "offsim/sim/trace_event.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim {

/// When a block freed with recorded streams (record_stream) becomes reusable. Kernel progress cannot
/// be simulated, so the rule is stated by whoever drives the allocator.
enum class EventCompletion : std::uint8_t {
  /// Work recorded on other streams has finished by the next malloc (the GPU keeps up): process_events
  /// at the start of each malloc completes every pending free.
  kAtNextMalloc,
  /// Pending frees complete only when the caller says so: mark_stream_complete() (then processed at the
  /// next malloc, as cudaEventQuery would report) or complete_pending_free() (replay, which knows where
  /// the recorded free_completed happened). empty_cache() and the last OOM reclaim step synchronize all.
  kExplicit,
};

/// Why an allocation failed, with what PyTorch's OutOfMemoryError message would say.
struct OomInfo {
  std::uint64_t requested = 0;   // the caller's size
  std::uint64_t rounded = 0;     // round_size(requested)
  std::uint64_t alloc_size = 0;  // segment size the allocator tried to obtain ("Tried to allocate")
  StreamId stream = 0;
  MemInfo device{};              // cudaMemGetInfo at the failure
  std::uint64_t allocated = 0;   // allocated_bytes.all.current
  std::uint64_t reserved = 0;    // reserved_bytes.all.current
  std::optional<std::uint64_t> limit;  // memory fraction limit, if any
  std::uint64_t free_cached_bytes = 0;        // free bytes inside reserved segments (same pool)
  std::uint64_t largest_free_cached_block = 0;  // largest of them on the request's stream
  /// Device memory this process holds (context, allocator segments, memory outside the allocator): what
  /// NVML lists for it and the message prints on CUDA. 0 when unknown (then the line is left out).
  std::uint64_t process_bytes = 0;
  /// VersionProfile::oom_hint_links_alloc_conf_section of the allocator that failed.
  bool hint_links_alloc_conf_section = true;

  /// PyTorch's OutOfMemoryError text, whole: "CUDA out of memory. Tried to allocate 5.01 GiB. GPU 0 has a
  /// total capacity of 44.98 GiB of which 3.69 GiB is free. [Including non-PyTorch memory, this process
  /// has X memory in use. ][L allowed; ]Of the allocated memory ... If reserved but unallocated memory is
  /// large try setting ... (link)".
  std::string message(Platform platform = Platform::kCuda) const;
};

/// Fragmentation of the cached memory at one moment.
struct FragmentationInfo {
  std::uint64_t reserved = 0;
  std::uint64_t allocated = 0;
  std::uint64_t free_cached = 0;           // reserved - active: free blocks in segments
  std::uint64_t inactive_split = 0;        // free blocks inside segments that hold live blocks
  std::uint64_t largest_free_block = 0;    // over both pools and all streams
  std::uint64_t stranded = 0;  // free bytes in segments with live blocks: never returned on OOM
};

class CachingAllocator {
 public:
  CachingAllocator(Device& device, AllocatorConfig config, const VersionProfile& profile = VersionProfile::newest(),
                   EventCompletion completion = EventCompletion::kAtNextMalloc);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  CachingAllocator(CachingAllocator&&) noexcept;
  CachingAllocator& operator=(CachingAllocator&&) noexcept;

  /// Allocates `size` bytes on `stream`. Returns the block address, or nullopt on OOM (last_oom()
  /// describes it; an `oom` trace entry is written and num_ooms counts it). A zero-byte request returns
  /// 0 and touches nothing. A request of 1 EiB or more throws AllocatorUsageError (PyTorch raises before
  /// any bookkeeping).
  std::optional<std::uint64_t> malloc(std::uint64_t size, StreamId stream = 0);
  /// Frees a live block. Throws AllocatorUsageError for an unknown or already freed address.
  void free(std::uint64_t ptr);
  /// free(ptr) if ptr is a live allocation; otherwise nothing happens and false is returned. Replay frees
  /// recorded addresses this way, with one lookup instead of is_live() and then free().
  bool try_free(std::uint64_t ptr);
  /// tensor.record_stream(s): the block may not be reused until work on `stream` at free time is done.
  void record_stream(std::uint64_t ptr, StreamId stream);

  /// kExplicit: all work enqueued on `stream` so far has finished (cudaEventQuery now reports success).
  void mark_stream_complete(StreamId stream);
  /// kExplicit: the pending free of the block at `ptr` completes now (emits free_completed). Replay
  /// uses this at the recorded free_completed entries.
  void complete_pending_free(std::uint64_t ptr);

  /// Puts a fresh allocator into the state a snapshot describes (replay of a recording that did not start
  /// from an empty allocator). Segments are obtained from the device at their recorded addresses; blocks
  /// keep their addresses, sizes, requested sizes and states; pending-free blocks wait for
  /// complete_pending_free() or a synchronization. Statistics start from this state (peaks = current).
  /// Throws AllocatorUsageError if the allocator is not fresh, the segments do not fit on the device or
  /// the snapshot is inconsistent (blocks that do not tile their segment, unmerged free neighbours).
  /// Expandable-segment runs of one stream and pool are loaded into one address reservation starting at the
  /// lowest run, the space between and after the runs unmapped.
  void load_state(const std::vector<SegmentInfo>& segments);

  /// torch.cuda.empty_cache(): synchronize events, release every unsplit cached segment, unmap free
  /// expandable-segment pages.
  void empty_cache();
  /// torch.cuda.set_per_process_memory_fraction(fraction). Throws AllocatorUsageError outside [0, 1].
  void set_memory_fraction(double fraction);
  /// The cap set_memory_fraction put on reserved bytes (PyTorch's allowed_memory_maximum), if any.
  std::optional<std::uint64_t> memory_limit() const;
  /// torch._C._accelerator_setAllocatorSettings(settings) at runtime.
  void update_settings(std::string_view settings);

  const DeviceStats& stats() const;
  void reset_peak_stats();
  void reset_accumulated_stats();

  /// torch.cuda.memory._snapshot(): the segments, and (as upstream DeviceCachingAllocator::snapshot()
  /// does) a `snapshot` trace entry with addr 0, size = total active bytes, stream 0. device_traces is
  /// left empty: traces go to the sink.
  Snapshot snapshot();
  /// The segments as snapshot() lists them, without the trace entry: for inspection.
  std::vector<SegmentInfo> segments() const;
  /// Every trace entry is appended to `sink` (nullptr: no trace). The caller owns the vector. Replaces
  /// any earlier sink of either kind.
  void set_trace_sink(std::vector<TraceEvent>* sink);
  /// The same into a TraceBuffer, whose append stays inline: for callers on a hot path (replay).
  void set_trace_sink(TraceBuffer* sink);
  /// No trace (a literal nullptr would be ambiguous between the two sink kinds).
  void set_trace_sink(std::nullptr_t) { set_trace_sink(static_cast<TraceBuffer*>(nullptr)); }
  /// Timestamp stamped on later trace entries.
  void set_time_us(std::int64_t time_us);

  const OomInfo& last_oom() const;
  /// Whether malloc(size, stream) would have to free cached memory (garbage collection or the OOM
  /// reclaim chain) before it obtained memory, in the current state. No side effects. Replay uses it to
  /// tell the allocator's own segment frees from torch.cuda.empty_cache() calls, which a trace does not
  /// record.
  bool would_reclaim(std::uint64_t size, StreamId stream = 0) const;
  FragmentationInfo fragmentation() const;
  /// Size of the block serving a live allocation (rounded, including any unsplit tail).
  std::uint64_t block_size(std::uint64_t ptr) const;
  /// The size of the free block that freeing the live allocation at `ptr` now would leave (its block merged
  /// with free neighbours), without freeing it. Replay uses it to tell an immediate free from a deferred
  /// one that the next malloc's synchronization completed.
  std::uint64_t size_if_freed(std::uint64_t ptr) const;
  bool is_live(std::uint64_t ptr) const;

  /// Whether new memory comes from expandable segments (segment_map) rather than cudaMalloc
  /// (segment_alloc): the setting, unless the platform ignores it (ROCm before 2.11).
  bool uses_expandable_segments() const;
  const AllocatorConfig& config() const;
  const VersionProfile& profile() const;
  const Device& device() const;

  /// Recounts everything from the block lists and throws InvariantViolation on any inconsistency:
  /// blocks tile their segments without overlap, no two adjacent free blocks stay unmerged, pools hold
  /// exactly the free blocks, stats equal a recount, reserved equals the sum of segment sizes.
  void check_invariants() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace offsim::sim
