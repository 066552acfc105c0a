// An independent, deliberately naive reading of PyTorch's native CUDA caching allocator
// (c10/cuda/CUDACachingAllocator.cpp, DeviceCachingAllocator), written from
// shared/specs/pytorch_caching_allocator.md and checked against the upstream source where the spec
// was unclear. It exists only to be compared with offsim::sim::CachingAllocator: two readings that
// agree address for address, trace entry for trace entry and stat for stat are evidence that both
// read the spec right.
//
// Plain data structures on purpose: a vector of segments, each holding a vector of its blocks in
// address order. "Pools" are not stored: a block is in a pool exactly when it is free and mapped,
// and every search sorts the candidates on the spot with PyTorch's comparator (stream, size,
// address). Nothing here is fast; everything here should be obviously what the spec says.
//
// Choices where PyTorch's behaviour depends on hash-map iteration order (cuda_events is a
// ska::flat_hash_map keyed by stream): pending frees are processed stream by stream in ascending
// stream id, FIFO within a stream.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/device.hpp"
#include "offsim/sim/device_stats.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::sim::test {

/// The reference's own copy of PyTorch's allocator constants, written as upstream writes them (bytes),
/// not read from offsim's allocator_config.hpp: a wrong constant there must make the two readings
/// disagree, not agree. c10/cuda/CUDACachingAllocator.cpp (moved to c10/core/AllocatorConfig.h's
/// c10::CachingAllocator namespace in PyTorch 2.9):
namespace upstream {
inline constexpr std::uint64_t kMinBlockSize = 512;        // "all sizes are rounded to at least 512 bytes"
inline constexpr std::uint64_t kSmallSize = 1048576;       // "largest 'small' allocation is 1 MiB"
inline constexpr std::uint64_t kSmallBuffer = 2097152;     // "'small' allocations are packed in 2 MiB blocks"
inline constexpr std::uint64_t kLargeBuffer = 20971520;    // "'large' allocations may be packed in 20 MiB blocks"
inline constexpr std::uint64_t kMinLargeAlloc = 10485760;  // "allocations between 1 and 10 MiB may use kLargeBuffer"
inline constexpr std::uint64_t kRoundLarge = 2097152;      // "round up large allocations to 2 MiB"
// c10/core/AllocatorConfig.h, AcceleratorAllocatorConfig's defaults: max_split_size_ is
// numeric_limits<size_t>::max() ("all blocks can be split"), max_non_split_rounding_size_ is kLargeBuffer.
inline constexpr std::uint64_t kUnlimitedSplitSize = 18446744073709551615ULL;
inline constexpr std::uint64_t kDefaultMaxNonSplitRounding = kLargeBuffer;
}  // namespace upstream


class ReferenceAllocator {
 public:
  ReferenceAllocator(Device& device, AllocatorConfig config, const VersionProfile& profile = VersionProfile::newest(),
                     EventCompletion completion = EventCompletion::kAtNextMalloc);

  // The same public surface as CachingAllocator, with the same meaning (see caching_allocator.hpp).
  std::optional<std::uint64_t> malloc(std::uint64_t size, StreamId stream = 0);
  void free(std::uint64_t ptr);
  void record_stream(std::uint64_t ptr, StreamId stream);
  void mark_stream_complete(StreamId stream);
  void complete_pending_free(std::uint64_t ptr);
  void empty_cache();
  void set_memory_fraction(double fraction);
  void update_settings(std::string_view settings);

  const DeviceStats& stats() const { return stats_; }
  void reset_peak_stats() { stats_.reset_peak(); }
  void reset_accumulated_stats() { stats_.reset_accumulated(); }

  /// Segments as torch.cuda.memory._snapshot() lists them. Like PyTorch, taking a snapshot records a
  /// `snapshot` trace entry (size = total active bytes).
  Snapshot snapshot();
  /// The same segments without the trace entry (inspection).
  std::vector<SegmentInfo> segments() const;
  void set_trace_sink(std::vector<TraceEvent>* sink) { sink_ = sink; }
  void set_time_us(std::int64_t time_us) { time_us_ = time_us; }

  const OomInfo& last_oom() const { return last_oom_; }
  FragmentationInfo fragmentation() const;
  std::uint64_t block_size(std::uint64_t ptr) const;
  bool is_live(std::uint64_t ptr) const;

  const AllocatorConfig& config() const { return config_; }
  const VersionProfile& profile() const { return profile_; }
  const Device& device() const { return device_; }
  std::optional<std::uint64_t> memory_limit() const { return limit_; }

  /// Structural self-check and a full recount of every stat that can be recounted; throws
  /// InvariantViolation.
  void check_invariants() const;

 private:
  struct Block {
    std::uint64_t addr = 0;
    std::uint64_t size = 0;
    std::uint64_t requested_size = 0;  // stale on free blocks, exactly like the upstream Block object
    bool allocated = false;
    bool mapped = true;  // false only for the unmapped parts of an expandable segment
    int event_count = 0;
    std::set<StreamId> stream_uses;
    std::int64_t gc_count_base = 0;
  };
  struct Segment {
    std::uint64_t base = 0;
    StreamId stream = 0;
    bool is_small = false;
    bool expandable = false;
    std::uint64_t page_size = 0;  // expandable segments only
    std::vector<Block> blocks;    // address order; tile [base, base + span) without gaps
  };
  struct Loc {
    std::size_t segment;
    std::size_t block;
  };
  /// One entry of a pool (a free, mapped block) as the upstream std::set orders it.
  struct PoolEntry {
    StreamId stream;
    std::uint64_t size;
    std::uint64_t addr;
    bool expandable;
  };
  struct PendingEvent {
    std::uint64_t sequence;  // position in its stream's work, for mark_stream_complete
    std::uint64_t block_addr;
  };

  // Lookup.
  std::optional<Loc> find(std::uint64_t addr) const;
  Loc locate(std::uint64_t addr) const;  // throws InvariantViolation if absent
  Block& block_at(Loc loc) { return segments_[loc.segment].blocks[loc.block]; }
  const Block& block_at(Loc loc) const { return segments_[loc.segment].blocks[loc.block]; }
  static bool is_free(const Block& b) { return !b.allocated && b.event_count == 0 && b.stream_uses.empty(); }
  bool is_split(Loc loc) const { return segments_[loc.segment].blocks.size() > 1; }
  std::vector<PoolEntry> pool(bool small) const;

  // Rounding and sizes (spec 2).
  std::uint64_t round_size(std::uint64_t size) const;
  std::uint64_t allocation_size(std::uint64_t rounded) const;
  bool expandable_enabled() const;
  bool gc_enabled() const;

  // malloc steps (spec 3-5, 7).
  std::optional<std::uint64_t> get_free_block(std::uint64_t rounded, StreamId stream, bool small);
  bool should_split(std::uint64_t block_size, std::uint64_t rounded, bool small) const;
  std::uint64_t alloc_found_block(std::uint64_t addr, std::uint64_t rounded, std::uint64_t orig_size, bool split,
                                  bool small);
  std::optional<std::uint64_t> alloc_block(std::uint64_t rounded, std::uint64_t alloc_size, StreamId stream, bool small,
                                           bool retry);
  std::optional<std::uint64_t> try_allocate_expandable_block(std::uint64_t rounded, StreamId stream, bool small);
  std::uint64_t find_expandable_block(std::uint64_t rounded, StreamId stream, bool small);
  std::optional<std::uint64_t> map_block(std::uint64_t addr, std::uint64_t bytes);
  std::optional<std::uint64_t> unmap_block(std::uint64_t addr);
  bool release_available_cached_blocks(std::uint64_t rounded, StreamId stream, bool small);
  bool release_cached_blocks();
  void release_blocks(bool small);
  void release_block(std::uint64_t addr);
  void garbage_collect_cached_blocks();

  // Frees and events (spec 4, 6).
  void free_block(std::uint64_t addr);
  void insert_events(Block& block);
  void process_events();
  void synchronize_and_free_events();
  bool event_done(StreamId stream, const PendingEvent& event) const;

  // Stats and trace.
  StatArray& array(StatArray DeviceStats::*member) { return stats_.*member; }
  void increase(StatArray DeviceStats::*member, bool small, std::uint64_t amount);
  void decrease(StatArray DeviceStats::*member, bool small, std::uint64_t amount);
  void trace(TraceAction action, std::uint64_t addr, std::uint64_t size, StreamId stream) const;

  Device& device_;
  AllocatorConfig config_;
  const VersionProfile& profile_;
  EventCompletion completion_;

  std::vector<Segment> segments_;
  std::uint64_t total_allocated_memory_ = 0;
  std::optional<std::uint64_t> limit_;
  std::int64_t get_free_blocks_call_count_[2] = {0, 0};  // [0] large pool, [1] small pool

  std::map<StreamId, std::vector<PendingEvent>> events_;  // per recording stream, FIFO
  std::map<StreamId, std::uint64_t> events_recorded_;     // events ever recorded on a stream
  std::map<StreamId, std::uint64_t> events_completed_;    // mark_stream_complete watermark

  DeviceStats stats_;
  OomInfo last_oom_;
  std::vector<TraceEvent>* sink_ = nullptr;
  std::int64_t time_us_ = 0;
};

}  // namespace offsim::sim::test
