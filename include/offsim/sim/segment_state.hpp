// The allocator state that a trace implies: segments (address ranges obtained from the driver) and the
// active blocks inside them, stepped forward or backward one trace entry at a time.
//
// Backward stepping is how a partial recording gets its starting state: a snapshot holds the state at
// dump time (`segments`) and only the last N trace entries (the ring buffer), so the state before the
// first recorded entry is found by undoing the entries from the last to the first. This is what
// PyTorch's viewer does for "Allocator State History" (torch/utils/viz/MemoryViz.js, simulate_memory:
// undo alloc = drop the block, undo free_completed = restore it as pending-free, undo free_requested =
// clear pending, undo segment_free/segment_unmap = map the range back, undo segment_alloc/segment_map =
// unmap it; expandable-segment ranges of one stream merge when adjacent), with two differences: this
// class refuses entries that contradict the state (an alloc of an address that is live, a free of one
// that is not, a segment_free of a segment holding live blocks) instead of drawing them, and it also
// steps forward.
//
// Block sizes: a block known from a snapshot keeps its size. A block known only from a trace entry has
// only the requested size (the entry's `size`); until settle_extents() it is taken as the request rounded
// up to kMinBlockSize (512), clipped to the next known block or the segment end. settle_extents() applies
// the allocator's rules instead (rounding, and the split rule that leaves an unsplit remainder with its
// block), which a replay needs: best fit measures free blocks by their real extent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

class SegmentState {
 public:
  SegmentState() = default;
  /// Segments and their active (allocated or pending-free) blocks; inactive blocks are implied by gaps.
  /// Throws InvariantViolation when segments overlap or a block lies outside every segment.
  explicit SegmentState(const std::vector<SegmentInfo>& segments);

  /// Applies one trace entry (forward). Throws ParseError(source, index, ...) when the entry contradicts
  /// the state; `source` names the trace and `index` is the entry's position in it.
  void apply(const TraceEvent& event, std::uint64_t index, const std::string& source);
  /// Undoes one trace entry (backward), with the same checks.
  void undo(const TraceEvent& event, std::uint64_t index, const std::string& source);

  /// Gives each block known only from a trace entry (allocated before the recording started, freed in
  /// it) the extent the allocator gave it under `config` (c10/cuda/CUDACachingAllocator.cpp: round_size,
  /// then should_split): the request rounded, plus, in a large-pool segment of cudaMalloc, the space up to
  /// the nearest block start seen while it was live (or the segment end) when that space cannot be a block
  /// of its own: every large-pool block is larger than kSmallSize (requests of at most 1 MiB go to the
  /// small pool and should_split leaves a remainder of at most 1 MiB with its block), and an oversize
  /// block is never split. A wider gap is a block of its own (the block was split). Small-pool blocks, and
  /// every block under expandable_segments, are always split, so the rounded request is exact there.
  /// Returns how many blocks were widened over an unsplit remainder.
  std::size_t settle_extents(const AllocatorConfig& config);

  /// The state as snapshot segments: blocks tile each segment in address order, each gap between
  /// active blocks is one inactive block (PyTorch merges adjacent free blocks), segment totals recounted.
  /// Inactive blocks get requested_size 0 (PyTorch's stale values cannot be recovered).
  std::vector<SegmentInfo> segments(int device) const;

  std::size_t segment_count() const { return segments_.size(); }
  std::size_t active_block_count() const { return blocks_.size(); }

 private:
  struct Segment {
    std::uint64_t size = 0;
    StreamId stream = 0;
    bool is_small = false;
    bool is_expandable = false;
    std::pair<std::uint64_t, std::uint64_t> pool_id{0, 0};
  };
  struct Block {
    std::uint64_t size = 0;  // nominal; clipped to the next block / segment end when materialised
    std::uint64_t requested_size = 0;
    bool pending_free = false;
    bool extent_known = false;  // from a snapshot; a trace entry gives only the request
    // Lowest start of another block seen live at the same time (while stepping), which the block's extent
    // cannot pass: the record's evidence for where an unsplit remainder ends.
    std::uint64_t bound = ~std::uint64_t{0};
  };

  void add_block(const TraceEvent& event, bool pending, std::uint64_t index, const std::string& source);
  void remove_block(const TraceEvent& event, std::uint64_t index, const std::string& source);
  void set_pending(const TraceEvent& event, bool pending, std::uint64_t index, const std::string& source);
  void add_segment(const TraceEvent& event, bool expandable, std::uint64_t index, const std::string& source);
  void remove_segment(const TraceEvent& event, std::uint64_t index, const std::string& source);
  void map_range(const TraceEvent& event, std::uint64_t index, const std::string& source);
  void unmap_range(const TraceEvent& event, std::uint64_t index, const std::string& source);
  /// The segment containing `address`, or end().
  std::map<std::uint64_t, Segment>::const_iterator segment_at(std::uint64_t address) const;
  bool has_blocks_in(std::uint64_t begin, std::uint64_t end) const;

  std::map<std::uint64_t, Segment> segments_;  // by address
  std::map<std::uint64_t, Block> blocks_;      // active blocks by address
};

}  // namespace offsim::sim
