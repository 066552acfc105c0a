#include "offsim/sim/segment_state.hpp"

#include <algorithm>
#include <cstdio>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {

std::string hex(std::uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

std::string describe(const TraceEvent& event, std::uint64_t index) {
  return "trace entry " + std::to_string(index) + " (" + std::string(to_string(event.action)) + " at " +
         hex(event.addr) + ", " + std::to_string(event.size) + " bytes)";
}

[[noreturn]] void contradiction(const std::string& source, const TraceEvent& event, std::uint64_t index,
                                const std::string& why) {
  throw ParseError(source, index, describe(event, index) + ": " + why);
}

/// PyTorch's smallest block: every request is rounded up to a multiple of 512 bytes (spec section 2.1).
std::uint64_t nominal_block_size(std::uint64_t requested) {
  return std::max(kMinBlockSize, (requested + kMinBlockSize - 1) / kMinBlockSize * kMinBlockSize);
}

}  // namespace

SegmentState::SegmentState(const std::vector<SegmentInfo>& segments) {
  for (const SegmentInfo& info : segments) {
    const std::uint64_t end = info.address + info.total_size;
    auto next = segments_.lower_bound(info.address);
    if (next != segments_.end() && next->first < end) {
      throw InvariantViolation("segment at " + hex(info.address) + " overlaps the segment at " + hex(next->first));
    }
    if (next != segments_.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second.size > info.address) {
        throw InvariantViolation("segment at " + hex(info.address) + " overlaps the segment at " + hex(previous->first));
      }
    }
    segments_.emplace(info.address,
                      Segment{info.total_size, info.stream, info.is_small, info.is_expandable, info.pool_id});
    for (const BlockInfo& block : info.blocks) {
      if (block.state == BlockState::kInactive) continue;
      if (block.address < info.address || block.address + block.size > end) {
        throw InvariantViolation("block at " + hex(block.address) + " lies outside its segment at " + hex(info.address));
      }
      blocks_.emplace(block.address,
                      Block{block.size, block.requested_size, block.state == BlockState::kActivePendingFree, true});
    }
  }
}

std::map<std::uint64_t, SegmentState::Segment>::const_iterator SegmentState::segment_at(std::uint64_t address) const {
  auto it = segments_.upper_bound(address);
  if (it == segments_.begin()) return segments_.end();
  --it;
  return address < it->first + it->second.size ? it : segments_.end();
}

bool SegmentState::has_blocks_in(std::uint64_t begin, std::uint64_t end) const {
  auto it = blocks_.lower_bound(begin);
  return it != blocks_.end() && it->first < end;
}

void SegmentState::add_block(const TraceEvent& event, bool pending, std::uint64_t index, const std::string& source) {
  if (blocks_.count(event.addr) != 0) contradiction(source, event, index, "a block is already live at this address");
  if (segment_at(event.addr) == segments_.end()) {
    contradiction(source, event, index, "no segment contains this address at this point of the trace");
  }
  const auto it = blocks_.emplace(event.addr, Block{nominal_block_size(event.size), event.size, pending, false}).first;
  // Blocks live at the same moment bound each other: the next one bounds this block's extent, and this
  // one bounds the extent of the block before it.
  if (const auto next = std::next(it); next != blocks_.end()) it->second.bound = next->first;
  if (it != blocks_.begin()) {
    Block& previous = std::prev(it)->second;
    previous.bound = std::min(previous.bound, event.addr);
  }
}

void SegmentState::remove_block(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  if (blocks_.erase(event.addr) == 0) contradiction(source, event, index, "no live block at this address");
}

void SegmentState::set_pending(const TraceEvent& event, bool pending, std::uint64_t index, const std::string& source) {
  auto it = blocks_.find(event.addr);
  if (it == blocks_.end()) contradiction(source, event, index, "no live block at this address");
  it->second.pending_free = pending;
}

void SegmentState::add_segment(const TraceEvent& event, bool expandable, std::uint64_t index, const std::string& source) {
  const std::uint64_t end = event.addr + event.size;
  auto next = segments_.lower_bound(event.addr);
  const bool overlaps_next = next != segments_.end() && next->first < end;
  const bool overlaps_previous =
      next != segments_.begin() && std::prev(next)->first + std::prev(next)->second.size > event.addr;
  if (end < event.addr) contradiction(source, event, index, "address + size overflows 64 bits");
  if (event.size == 0 || overlaps_next || overlaps_previous) {
    contradiction(source, event, index, event.size == 0 ? "empty segment" : "overlaps a segment that exists at this point");
  }
  // A 2 MiB segment is a small-pool segment: large-pool segments are 20 MiB or at least 10 MiB (spec 2.4).
  segments_.emplace(event.addr, Segment{event.size, event.stream, event.size == kSmallBuffer, expandable, {0, 0}});
}

void SegmentState::remove_segment(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  auto it = segments_.find(event.addr);
  if (it == segments_.end()) contradiction(source, event, index, "no segment starts at this address");
  if (it->second.size != event.size) {
    contradiction(source, event, index, "the segment here has " + std::to_string(it->second.size) + " bytes");
  }
  if (has_blocks_in(event.addr, event.addr + event.size)) {
    contradiction(source, event, index, "the segment still holds live blocks");
  }
  segments_.erase(it);
}

void SegmentState::map_range(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  add_segment(event, /*expandable=*/true, index, source);
  auto it = segments_.find(event.addr);
  // Contiguous mapped ranges of one stream are one segment (MemoryViz.js map_segment with merge).
  if (it != segments_.begin()) {
    auto previous = std::prev(it);
    if (previous->second.is_expandable && previous->second.stream == it->second.stream &&
        previous->first + previous->second.size == it->first) {
      previous->second.size += it->second.size;
      segments_.erase(it);
      it = previous;
    }
  }
  auto next = std::next(it);
  if (next != segments_.end() && next->second.is_expandable && next->second.stream == it->second.stream &&
      it->first + it->second.size == next->first) {
    it->second.size += next->second.size;
    it->second.is_small = next->second.is_small;
    it->second.pool_id = next->second.pool_id;
    segments_.erase(next);
  }
}

void SegmentState::unmap_range(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  const std::uint64_t end = event.addr + event.size;
  if (end <= event.addr) contradiction(source, event, index, "empty range or address + size overflows 64 bits");
  auto found = segment_at(event.addr);
  if (found == segments_.end() || end > found->first + found->second.size) {
    contradiction(source, event, index, "the range is not inside one mapped segment at this point");
  }
  if (has_blocks_in(event.addr, end)) contradiction(source, event, index, "the range still holds live blocks");
  const std::uint64_t start = found->first;
  const Segment segment = found->second;
  const std::uint64_t segment_end = start + segment.size;
  segments_.erase(found);
  if (start < event.addr) {
    Segment head = segment;
    head.size = event.addr - start;
    segments_.emplace(start, head);
  }
  if (end < segment_end) {
    Segment tail = segment;
    tail.size = segment_end - end;
    segments_.emplace(end, tail);
  }
}

void SegmentState::apply(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  switch (event.action) {
    case TraceAction::kAlloc: add_block(event, false, index, source); break;
    case TraceAction::kFreeRequested: set_pending(event, true, index, source); break;
    case TraceAction::kFreeCompleted: remove_block(event, index, source); break;
    case TraceAction::kSegmentAlloc: add_segment(event, false, index, source); break;
    case TraceAction::kSegmentFree: remove_segment(event, index, source); break;
    case TraceAction::kSegmentMap: map_range(event, index, source); break;
    case TraceAction::kSegmentUnmap: unmap_range(event, index, source); break;
    case TraceAction::kOom:
    case TraceAction::kSnapshot: break;
  }
}

void SegmentState::undo(const TraceEvent& event, std::uint64_t index, const std::string& source) {
  switch (event.action) {
    case TraceAction::kAlloc: remove_block(event, index, source); break;
    case TraceAction::kFreeRequested: set_pending(event, false, index, source); break;
    case TraceAction::kFreeCompleted: add_block(event, true, index, source); break;
    case TraceAction::kSegmentAlloc: remove_segment(event, index, source); break;
    case TraceAction::kSegmentFree: add_segment(event, false, index, source); break;
    case TraceAction::kSegmentMap: unmap_range(event, index, source); break;
    case TraceAction::kSegmentUnmap: map_range(event, index, source); break;
    case TraceAction::kOom:
    case TraceAction::kSnapshot: break;
  }
}

std::size_t SegmentState::settle_extents(const AllocatorConfig& config) {
  std::size_t widened = 0;
  for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
    Block& block = it->second;
    if (block.extent_known) continue;
    const auto segment = segment_at(it->first);
    if (segment == segments_.end()) continue;
    const std::uint64_t segment_end = segment->first + segment->second.size;
    const auto next = std::next(it);
    std::uint64_t limit = std::min(segment_end, block.bound);
    if (next != blocks_.end()) limit = std::min(limit, next->first);
    const std::uint64_t rounded = std::min(config.round_size(block.requested_size), limit - it->first);
    const std::uint64_t remainder = limit - it->first - rounded;
    // should_split: small-pool blocks, and every block once expandable segments are on, split off any
    // remainder of 512 bytes or more; a large-pool block only one above kSmallSize, an oversize one nothing.
    const bool unsplit = !segment->second.is_small && !segment->second.is_expandable && !config.expandable_segments &&
                         remainder > 0 && (remainder <= kSmallSize || rounded >= config.max_split_size);
    block.size = unsplit ? rounded + remainder : rounded;
    block.extent_known = true;
    if (unsplit) ++widened;
  }
  return widened;
}

std::vector<SegmentInfo> SegmentState::segments(int device) const {
  std::vector<SegmentInfo> result;
  result.reserve(segments_.size());
  for (const auto& [address, segment] : segments_) {
    SegmentInfo info;
    info.device = device;
    info.address = address;
    info.total_size = segment.size;
    info.stream = segment.stream;
    info.is_small = segment.is_small;
    info.is_expandable = segment.is_expandable;
    info.pool_id = segment.pool_id;
    const std::uint64_t end = address + segment.size;
    std::uint64_t cursor = address;
    auto add_gap = [&](std::uint64_t gap_end) {
      if (gap_end > cursor) info.blocks.push_back(BlockInfo{cursor, gap_end - cursor, 0, BlockState::kInactive});
    };
    for (auto it = blocks_.lower_bound(address); it != blocks_.end() && it->first < end; ++it) {
      auto next = std::next(it);
      const std::uint64_t limit = (next != blocks_.end() && next->first < end) ? next->first : end;
      const std::uint64_t block_end = std::min(it->first + it->second.size, limit);
      add_gap(it->first);
      const BlockState state = it->second.pending_free ? BlockState::kActivePendingFree : BlockState::kActiveAllocated;
      info.blocks.push_back(BlockInfo{it->first, block_end - it->first, it->second.requested_size, state});
      info.active_size += block_end - it->first;
      if (!it->second.pending_free) info.allocated_size += block_end - it->first;
      info.requested_size += it->second.requested_size;
      cursor = block_end;
    }
    add_gap(end);
    result.push_back(std::move(info));
  }
  return result;
}

}  // namespace offsim::sim
