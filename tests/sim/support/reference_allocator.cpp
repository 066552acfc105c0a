#include "sim/support/reference_allocator.hpp"

#include <algorithm>
#include <bit>
#include <string>
#include <tuple>

#include "offsim/sim/errors.hpp"

namespace offsim::sim::test {

namespace {

constexpr std::uint64_t kOneExaByte = std::uint64_t{1} << 60;

std::string hex(std::uint64_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), digits[value & 0xf]);
    value >>= 4;
  } while (value != 0);
  return "0x" + out;
}

[[noreturn]] void violated(const std::string& what) { throw InvariantViolation("reference allocator: " + what); }

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

}  // namespace

ReferenceAllocator::ReferenceAllocator(Device& device, AllocatorConfig config, const VersionProfile& profile,
                                       EventCompletion completion)
    : device_(device), config_(std::move(config)), profile_(profile), completion_(completion) {
  // DeviceCachingAllocator's constructor: stats.max_split_size is the value at creation, cast from
  // size_t (so "unlimited" reads as -1, as torch.cuda.memory_stats() shows it).
  stats_.max_split_size = static_cast<std::int64_t>(config_.max_split_size);
  // per_process_memory_fraction (PR #161035) is applied when the device allocator is created.
  if (config_.per_process_memory_fraction) set_memory_fraction(*config_.per_process_memory_fraction);
}

// ---------------------------------------------------------------------------------------------------
// Lookup

std::optional<ReferenceAllocator::Loc> ReferenceAllocator::find(std::uint64_t addr) const {
  for (std::size_t s = 0; s < segments_.size(); ++s) {
    const auto& blocks = segments_[s].blocks;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      if (blocks[b].addr == addr) return Loc{s, b};
    }
  }
  return std::nullopt;
}

ReferenceAllocator::Loc ReferenceAllocator::locate(std::uint64_t addr) const {
  auto loc = find(addr);
  if (!loc) violated("no block at " + hex(addr));
  return *loc;
}

std::vector<ReferenceAllocator::PoolEntry> ReferenceAllocator::pool(bool small) const {
  std::vector<PoolEntry> entries;
  for (const Segment& seg : segments_) {
    if (seg.is_small != small) continue;
    for (const Block& b : seg.blocks) {
      if (b.mapped && is_free(b)) entries.push_back({seg.stream, b.size, b.addr, seg.expandable});
    }
  }
  // BlockComparatorSize: stream handle, then size, then address.
  std::sort(entries.begin(), entries.end(), [](const PoolEntry& a, const PoolEntry& b) {
    return std::tie(a.stream, a.size, a.addr) < std::tie(b.stream, b.size, b.addr);
  });
  return entries;
}

// ---------------------------------------------------------------------------------------------------
// Sizes (spec 2.1, 2.4)

std::uint64_t ReferenceAllocator::round_size(std::uint64_t size) const {
  if (size < upstream::kMinBlockSize) return upstream::kMinBlockSize;
  // Interval index: floor(log2(size)) - log2(1 MiB), clamped to the 16-entry table.
  const int log_size = static_cast<int>(std::bit_width(size)) - 1;
  const int index = std::clamp(log_size - 20, 0, 15);
  const std::uint64_t divisions = config_.roundup_power2_divisions[static_cast<std::size_t>(index)];
  if (divisions > 1 && size > upstream::kMinBlockSize * divisions) {
    if (std::has_single_bit(size)) return size;
    const std::uint64_t floor_pow2 = std::bit_floor(size);
    const std::uint64_t step = floor_pow2 >> (std::bit_width(divisions) - 1);
    if (step == 0) return floor_pow2 << 1;
    const std::uint64_t low = size & ~(step - 1);
    return low == size ? size : low + step;
  }
  return upstream::kMinBlockSize * ceil_div(size, upstream::kMinBlockSize);
}

std::uint64_t ReferenceAllocator::allocation_size(std::uint64_t rounded) const {
  if (rounded <= upstream::kSmallSize) return upstream::kSmallBuffer;
  if (rounded < upstream::kMinLargeAlloc) return config_.large_segment_size;
  return upstream::kRoundLarge * ceil_div(rounded, upstream::kRoundLarge);
}

bool ReferenceAllocator::expandable_enabled() const {
  // ROCm builds before the HIP VMM implementation accept the flag and ignore it (spec 13).
  if (device_.spec().platform == Platform::kRocm && !profile_.rocm_expandable_segments) return false;
  return config_.expandable_segments;
}

bool ReferenceAllocator::gc_enabled() const {
  return limit_.has_value() && config_.garbage_collection_threshold > 0.0;
}

// ---------------------------------------------------------------------------------------------------
// Stats and trace

void ReferenceAllocator::increase(StatArray DeviceStats::*member, bool small, std::uint64_t amount) {
  const auto n = static_cast<std::int64_t>(amount);
  array(member)[kAggregate].increase(n);
  array(member)[small ? kSmallPool : kLargePool].increase(n);
}

void ReferenceAllocator::decrease(StatArray DeviceStats::*member, bool small, std::uint64_t amount) {
  const auto n = static_cast<std::int64_t>(amount);
  array(member)[kAggregate].decrease(n);
  array(member)[small ? kSmallPool : kLargePool].decrease(n);
}

void ReferenceAllocator::trace(TraceAction action, std::uint64_t addr, std::uint64_t size, StreamId stream) const {
  if (sink_ == nullptr) return;
  TraceEvent e;
  e.action = action;
  e.addr = addr;
  e.size = size;
  e.stream = stream;
  e.time_us = time_us_;
  sink_->push_back(e);
}

// ---------------------------------------------------------------------------------------------------
// malloc (spec 3)

std::optional<std::uint64_t> ReferenceAllocator::malloc(std::uint64_t size, StreamId stream) {
  if (size == 0) return 0;  // never reaches DeviceCachingAllocator::malloc
  if (size >= kOneExaByte) {
    throw InvalidSizeError("Tried to allocate more than 1EB memory (" + std::to_string(size) + " bytes)");
  }
  process_events();  // M1: no capture is ever underway in the simulator

  const std::uint64_t rounded = round_size(size);
  const bool small = rounded <= upstream::kSmallSize;
  const std::uint64_t asize = allocation_size(rounded);

  // M3: trigger_free_memory_callbacks (CUDA IPC collection) never frees anything here.
  std::optional<std::uint64_t> found = get_free_block(rounded, stream, small);
  if (!found) {
    if (gc_enabled()) garbage_collect_cached_blocks();
    found = alloc_block(rounded, asize, stream, small, /*retry=*/false);
    if (!found && release_available_cached_blocks(rounded, stream, small)) {
      found = alloc_block(rounded, asize, stream, small, false);
    }
    // No pool search after release_cached_blocks, only a fresh device allocation (issue #189504).
    if (!found && release_cached_blocks()) found = alloc_block(rounded, asize, stream, small, true);
  }
  if (!found) {
    const MemInfo info = device_.mem_get_info();
    trace(TraceAction::kOom, info.free, rounded, stream);
    stats_.num_ooms += 1;
    last_oom_ = OomInfo{};
    last_oom_.requested = size;
    last_oom_.rounded = rounded;
    last_oom_.alloc_size = asize;
    last_oom_.stream = stream;
    last_oom_.device = info;
    last_oom_.allocated = static_cast<std::uint64_t>(stats_.allocated_bytes[kAggregate].current);
    last_oom_.reserved = static_cast<std::uint64_t>(stats_.reserved_bytes[kAggregate].current);
    last_oom_.limit = limit_;
    for (const PoolEntry& e : pool(small)) {
      last_oom_.free_cached_bytes += e.size;
      if (e.stream == stream) last_oom_.largest_free_cached_block = std::max(last_oom_.largest_free_cached_block, e.size);
    }
    return std::nullopt;
  }
  const bool split = should_split(block_at(locate(*found)).size, rounded, small);
  return alloc_found_block(*found, rounded, size, split, small);
}

std::optional<std::uint64_t> ReferenceAllocator::get_free_block(std::uint64_t rounded, StreamId stream, bool small) {
  if (gc_enabled()) ++get_free_blocks_call_count_[small ? 1 : 0];
  const std::vector<PoolEntry> entries = pool(small);
  // lower_bound of the key (stream, rounded, address 0).
  std::size_t i = 0;
  while (i < entries.size() && std::tie(entries[i].stream, entries[i].size) < std::tie(stream, rounded)) ++i;
  if (i == entries.size() || entries[i].stream != stream) return std::nullopt;

  if (entries[i].expandable) {
    if (expandable_enabled()) {
      // Best fit counts the unmapped tail right after a block as part of it, so prefer a later block
      // whose expandable size is smaller than that of the block at the growth frontier.
      auto expandable_size = [this](const PoolEntry& e) {
        const Loc loc = locate(e.addr);
        const auto& blocks = segments_[loc.segment].blocks;
        std::uint64_t bytes = e.size;
        if (loc.block + 1 < blocks.size() && !blocks[loc.block + 1].mapped) bytes += blocks[loc.block + 1].size;
        return bytes;
      };
      while (entries[i].expandable && i + 1 < entries.size() && entries[i + 1].stream == stream &&
             expandable_size(entries[i + 1]) < expandable_size(entries[i])) {
        ++i;
      }
    } else {
      // Expandable segments were turned off after some were made: only non-expandable blocks.
      do {
        ++i;
      } while (i < entries.size() && entries[i].expandable && entries[i].stream == stream);
      if (i == entries.size() || entries[i].stream != stream) return std::nullopt;
    }
  }
  const std::uint64_t candidate = entries[i].size;
  // Rule A: a request below max_split_size never takes an oversize block.
  if (rounded < config_.max_split_size && candidate >= config_.max_split_size) return std::nullopt;
  // Rule B: an oversize request may waste less than max_non_split_rounding_size.
  if (rounded >= config_.max_split_size && candidate >= rounded + config_.max_non_split_rounding_size) {
    return std::nullopt;
  }
  return entries[i].addr;
}

bool ReferenceAllocator::should_split(std::uint64_t block_size, std::uint64_t rounded, bool small) const {
  const std::uint64_t remaining = block_size - rounded;
  // Upstream tests the global expandable_segments flag here, not the block's kind.
  if (small || expandable_enabled()) return remaining >= upstream::kMinBlockSize;
  return rounded < config_.max_split_size && remaining > upstream::kSmallSize;
}

std::uint64_t ReferenceAllocator::alloc_found_block(std::uint64_t addr, std::uint64_t rounded, std::uint64_t orig_size,
                                                    bool split, bool small) {
  const Loc loc = locate(addr);
  Segment& seg = segments_[loc.segment];
  const bool expandable = seg.expandable;
  const bool already_split = is_split(loc);
  std::uint64_t block_bytes = 0;
  if (split) {
    // The low part becomes a new block; the original block object is the remainder: it keeps its
    // stale requested_size and goes back into the pool (GC age restarts).
    Block& remainder = seg.blocks[loc.block];
    Block taken;
    taken.addr = remainder.addr;
    taken.size = rounded;
    taken.mapped = true;
    remainder.addr += rounded;
    remainder.size -= rounded;
    remainder.gc_count_base = get_free_blocks_call_count_[small ? 1 : 0];
    const std::uint64_t remainder_size = remainder.size;
    if (!expandable) {
      if (already_split) {
        decrease(&DeviceStats::inactive_split_bytes, small, rounded);
      } else {
        increase(&DeviceStats::inactive_split_bytes, small, remainder_size);
        increase(&DeviceStats::inactive_split, small, 1);
      }
    }
    taken.allocated = true;
    taken.requested_size = orig_size;
    seg.blocks.insert(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block), taken);
    block_bytes = rounded;
  } else {
    Block& b = seg.blocks[loc.block];
    if (already_split && !expandable) {
      decrease(&DeviceStats::inactive_split_bytes, small, b.size);
      decrease(&DeviceStats::inactive_split, small, 1);
    }
    b.allocated = true;
    b.requested_size = orig_size;
    block_bytes = b.size;
  }
  trace(TraceAction::kAlloc, addr, orig_size, seg.stream);
  increase(&DeviceStats::allocation, small, 1);
  increase(&DeviceStats::allocated_bytes, small, block_bytes);
  increase(&DeviceStats::active, small, 1);
  increase(&DeviceStats::active_bytes, small, block_bytes);
  increase(&DeviceStats::requested_bytes, small, orig_size);
  if (block_bytes >= config_.max_split_size) stats_.oversize_allocations.increase(1);
  return addr;
}

// ---------------------------------------------------------------------------------------------------
// Device memory (spec 5, 7)

std::optional<std::uint64_t> ReferenceAllocator::alloc_block(std::uint64_t rounded, std::uint64_t alloc_size,
                                                             StreamId stream, bool small, bool retry) {
  if (retry) stats_.num_alloc_retries += 1;
  // The fraction limit is checked against alloc_size even on the expandable path.
  if (limit_ && total_allocated_memory_ + alloc_size > *limit_) return std::nullopt;
  if (expandable_enabled()) return try_allocate_expandable_block(rounded, stream, small);

  const std::optional<std::uint64_t> ptr = device_.malloc(alloc_size);
  if (!ptr) return std::nullopt;
  total_allocated_memory_ += alloc_size;
  Segment seg;
  seg.base = *ptr;
  seg.stream = stream;
  seg.is_small = small;
  Block b;
  b.addr = *ptr;
  b.size = alloc_size;
  seg.blocks.push_back(b);
  segments_.push_back(std::move(seg));
  increase(&DeviceStats::segment, small, 1);
  increase(&DeviceStats::reserved_bytes, small, alloc_size);
  if (alloc_size >= config_.max_split_size) stats_.oversize_segments.increase(1);
  stats_.num_device_alloc += 1;
  trace(TraceAction::kSegmentAlloc, *ptr, alloc_size, stream);
  return *ptr;
}

std::optional<std::uint64_t> ReferenceAllocator::try_allocate_expandable_block(std::uint64_t rounded, StreamId stream,
                                                                               bool small) {
  std::uint64_t candidate = find_expandable_block(rounded, stream, small);
  {
    const Block& c = block_at(locate(candidate));
    if (!c.mapped) {
      auto mapped = map_block(candidate, std::min(c.size, rounded));
      if (!mapped) return std::nullopt;
      candidate = *mapped;
    }
  }
  for (;;) {
    const Loc loc = locate(candidate);
    const Block& c = block_at(loc);
    if (c.size >= rounded) break;
    // Invariant upstream: free -> unmapped -> ...; map part of the next block, which merges with c.
    const auto& blocks = segments_[loc.segment].blocks;
    if (loc.block + 1 >= blocks.size()) violated("expandable candidate has no next block to map");
    const Block& next = blocks[loc.block + 1];
    auto mapped = map_block(next.addr, std::min(rounded - c.size, next.size));
    if (!mapped) return std::nullopt;
    candidate = *mapped;
  }
  return candidate;
}

std::uint64_t ReferenceAllocator::find_expandable_block(std::uint64_t rounded, StreamId stream, bool small) {
  // Unmapped blocks of this pool and stream, lowest address first (BlockComparatorAddress).
  std::vector<std::uint64_t> unmapped;
  for (const Segment& seg : segments_) {
    if (!seg.expandable || seg.is_small != small || seg.stream != stream) continue;
    for (const Block& b : seg.blocks) {
      if (!b.mapped) unmapped.push_back(b.addr);
    }
  }
  std::sort(unmapped.begin(), unmapped.end());
  for (std::uint64_t addr : unmapped) {
    const Loc loc = locate(addr);
    const auto& blocks = segments_[loc.segment].blocks;
    std::size_t start = loc.block;
    // A free block right before the unmapped one can be grown into it.
    if (start > 0 && is_free(blocks[start - 1])) --start;
    std::uint64_t bytes = 0;
    for (std::size_t k = start; k < blocks.size() && bytes < rounded && is_free(blocks[k]); ++k) bytes += blocks[k].size;
    if (bytes >= rounded) return blocks[start].addr;
  }
  // A new segment: address space for 9/8 of the device's memory, nothing mapped yet.
  const std::uint64_t page = small ? upstream::kSmallBuffer : config_.large_segment_size;
  const std::uint64_t global = device_.spec().global_mem();
  const std::uint64_t va_size = page * ceil_div(global + global / 8, page);
  Segment seg;
  seg.base = device_.reserve_address_space(va_size);
  seg.stream = stream;
  seg.is_small = small;
  seg.expandable = true;
  seg.page_size = page;
  Block b;
  b.addr = seg.base;
  b.size = va_size;
  b.mapped = false;
  seg.blocks.push_back(b);
  segments_.push_back(std::move(seg));
  return b.addr;
}

std::optional<std::uint64_t> ReferenceAllocator::map_block(std::uint64_t addr, std::uint64_t bytes) {
  Loc loc = locate(addr);
  Segment& seg = segments_[loc.segment];
  const bool small = seg.is_small;
  {
    const Block& b = seg.blocks[loc.block];
    if (b.mapped || bytes > b.size || bytes == 0) violated("map_block of a mapped block or too many bytes");
  }
  // Whole pages from the (page aligned) start of the block; all or nothing (upstream releases the
  // handles it created in this call when cuMemCreate runs out of memory).
  const std::uint64_t mapped = ceil_div(bytes, seg.page_size) * seg.page_size;
  if (!device_.map_physical(mapped)) return std::nullopt;
  if (mapped < seg.blocks[loc.block].size) {
    Block rest;
    rest.addr = addr + mapped;
    rest.size = seg.blocks[loc.block].size - mapped;
    rest.mapped = false;
    seg.blocks[loc.block].size = mapped;
    seg.blocks.insert(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) + 1, rest);
  }
  seg.blocks[loc.block].mapped = true;
  // Merge with a free mapped neighbour (prev first); the mapped block object survives the merge.
  if (loc.block > 0) {
    Block& prev = seg.blocks[loc.block - 1];
    if (is_free(prev) && prev.mapped) {
      seg.blocks[loc.block].addr = prev.addr;
      seg.blocks[loc.block].size += prev.size;
      seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) - 1);
      --loc.block;
    }
  }
  if (loc.block + 1 < seg.blocks.size()) {
    Block& next = seg.blocks[loc.block + 1];
    if (is_free(next) && next.mapped) {
      seg.blocks[loc.block].size += next.size;
      seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) + 1);
    }
  }
  seg.blocks[loc.block].gc_count_base = get_free_blocks_call_count_[small ? 1 : 0];
  total_allocated_memory_ += mapped;
  increase(&DeviceStats::reserved_bytes, small, mapped);
  stats_.num_device_alloc += 1;  // per map call, not per page
  trace(TraceAction::kSegmentMap, addr, mapped, seg.stream);
  return seg.blocks[loc.block].addr;
}

std::optional<std::uint64_t> ReferenceAllocator::unmap_block(std::uint64_t addr) {
  Loc loc = locate(addr);
  Segment& seg = segments_[loc.segment];
  const bool small = seg.is_small;
  const Block original = seg.blocks[loc.block];
  // Only pages entirely inside the free block are unmapped.
  const std::uint64_t first = ceil_div(original.addr - seg.base, seg.page_size);
  const std::uint64_t last = (original.addr + original.size - seg.base) / seg.page_size;
  if (first >= last) return std::nullopt;
  const std::uint64_t start = seg.base + first * seg.page_size;
  const std::uint64_t bytes = (last - first) * seg.page_size;
  const std::uint64_t before = start - original.addr;
  const std::uint64_t after = original.size - before - bytes;
  const std::int64_t gc_base = get_free_blocks_call_count_[small ? 1 : 0];

  // The block object becomes the unmapped middle; partial pages before/after become new free blocks.
  Block& b = seg.blocks[loc.block];
  b.addr = start;
  b.size = bytes;
  b.mapped = false;
  if (after > 0) {
    Block tail;
    tail.addr = start + bytes;
    tail.size = after;
    tail.gc_count_base = gc_base;
    seg.blocks.insert(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) + 1, tail);
  }
  if (before > 0) {
    Block head;
    head.addr = original.addr;
    head.size = before;
    head.gc_count_base = gc_base;
    seg.blocks.insert(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block), head);
    ++loc.block;
  }
  // Merge with unmapped neighbours (prev first); the block object survives.
  if (loc.block > 0 && !seg.blocks[loc.block - 1].mapped) {
    seg.blocks[loc.block].addr = seg.blocks[loc.block - 1].addr;
    seg.blocks[loc.block].size += seg.blocks[loc.block - 1].size;
    seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) - 1);
    --loc.block;
  }
  if (loc.block + 1 < seg.blocks.size() && !seg.blocks[loc.block + 1].mapped) {
    seg.blocks[loc.block].size += seg.blocks[loc.block + 1].size;
    seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) + 1);
  }
  device_.unmap_physical(bytes);
  total_allocated_memory_ -= bytes;
  decrease(&DeviceStats::reserved_bytes, small, bytes);
  stats_.num_device_free += 1;
  trace(TraceAction::kSegmentUnmap, start, bytes, seg.stream);
  return seg.blocks[loc.block].addr;
}

bool ReferenceAllocator::release_available_cached_blocks(std::uint64_t rounded, StreamId stream, bool small) {
  if (config_.max_split_size == upstream::kUnlimitedSplitSize) return false;
  const std::vector<PoolEntry> entries = pool(small);
  const std::uint64_t key = std::max(rounded, config_.max_split_size);
  std::size_t i = 0;
  while (i < entries.size() && std::tie(entries[i].stream, entries[i].size) < std::tie(stream, key)) ++i;
  if (i < entries.size() && entries[i].stream == stream && !entries[i].expandable) {
    release_block(entries[i].addr);  // the smallest oversize block that is large enough
    return true;
  }
  // No single block is large enough: free oversize blocks from the largest down.
  if (i == 0) return false;
  --i;
  std::uint64_t released = 0;
  while (released < key && entries[i].size >= config_.max_split_size && entries[i].stream == stream) {
    const std::size_t current = i;
    const bool is_first = current == 0;
    if (!is_first) --i;
    if (!entries[current].expandable) {
      released += entries[current].size;
      release_block(entries[current].addr);
    }
    if (is_first) break;
  }
  // Blocks released on the way stay released even when this returns false.
  return released >= key;
}

bool ReferenceAllocator::release_cached_blocks() {
  synchronize_and_free_events();
  release_blocks(/*small=*/false);
  release_blocks(/*small=*/true);
  return true;
}

void ReferenceAllocator::release_blocks(bool small) {
  std::vector<std::uint64_t> to_unmap;
  for (const PoolEntry& e : pool(small)) {
    if (e.expandable) {
      to_unmap.push_back(e.addr);
    } else if (!is_split(locate(e.addr))) {
      release_block(e.addr);
    }
  }
  for (std::uint64_t addr : to_unmap) {
    const std::uint64_t now = unmap_block(addr).value_or(addr);
    const Loc loc = locate(now);
    if (!is_split(loc)) {
      // The whole address range is one unmapped block again: give the reservation back (no trace).
      const Segment& seg = segments_[loc.segment];
      if (seg.blocks[0].mapped) violated("releasing an expandable segment that still has mapped memory");
      device_.release_address_space(seg.base);
      segments_.erase(segments_.begin() + static_cast<std::ptrdiff_t>(loc.segment));
    }
  }
}

void ReferenceAllocator::release_block(std::uint64_t addr) {
  const Loc loc = locate(addr);
  const Segment seg = segments_[loc.segment];
  if (seg.expandable || seg.blocks.size() != 1) violated("release_block of a split or expandable block");
  const std::uint64_t size = seg.blocks[0].size;
  stats_.num_device_free += 1;
  trace(TraceAction::kSegmentFree, seg.base, size, seg.stream);
  device_.free(seg.base);
  total_allocated_memory_ -= size;
  decrease(&DeviceStats::segment, seg.is_small, 1);
  decrease(&DeviceStats::reserved_bytes, seg.is_small, size);
  if (size >= config_.max_split_size) stats_.oversize_segments.decrease(1);
  segments_.erase(segments_.begin() + static_cast<std::ptrdiff_t>(loc.segment));
}

void ReferenceAllocator::garbage_collect_cached_blocks() {
  const auto gc_threshold =
      static_cast<std::uint64_t>(config_.garbage_collection_threshold * static_cast<double>(*limit_));
  if (total_allocated_memory_ <= gc_threshold) return;
  const std::uint64_t target = total_allocated_memory_ - gc_threshold;
  const std::int64_t clock = get_free_blocks_call_count_[0];
  auto age = [clock](const Block& b) { return static_cast<std::uint64_t>(clock - b.gc_count_base); };

  // Upstream sums the age of every unsplit large-pool block (expandable ones included, although
  // those are never released below).
  std::uint64_t total_age = 0;
  std::int64_t count = 0;
  for (const PoolEntry& e : pool(false)) {
    const Loc loc = locate(e.addr);
    if (!is_split(loc)) {
      total_age += age(block_at(loc));
      ++count;
    }
  }
  if (count == 0) return;
  std::uint64_t reclaimed = 0;
  bool freed = true;
  while (reclaimed < target && freed && count > 0) {
    const double threshold = static_cast<double>(total_age) / static_cast<double>(count);
    freed = false;
    // A whole sweep, even past the target, so that GC does not trigger again at once.
    for (const PoolEntry& e : pool(false)) {
      const Loc loc = locate(e.addr);
      const Block& b = block_at(loc);
      if (!is_split(loc) && !e.expandable && static_cast<double>(age(b)) >= threshold) {
        freed = true;
        reclaimed += b.size;
        total_age -= age(b);
        --count;
        release_block(e.addr);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// free, events (spec 4, 6)

void ReferenceAllocator::free(std::uint64_t ptr) {
  auto loc = find(ptr);
  if (!loc || !block_at(*loc).allocated) {
    throw AllocatorUsageError("free of " + hex(ptr) + ", which is not a live allocation");
  }
  Segment& seg = segments_[loc->segment];
  Block& b = block_at(*loc);
  b.allocated = false;
  decrease(&DeviceStats::allocation, seg.is_small, 1);
  decrease(&DeviceStats::allocated_bytes, seg.is_small, b.size);
  trace(TraceAction::kFreeRequested, b.addr, b.requested_size, seg.stream);
  if (b.size >= config_.max_split_size) stats_.oversize_allocations.decrease(1);
  if (!b.stream_uses.empty()) {
    insert_events(b);
  } else {
    free_block(ptr);
  }
}

void ReferenceAllocator::record_stream(std::uint64_t ptr, StreamId stream) {
  auto loc = find(ptr);
  if (!loc || !block_at(*loc).allocated) {
    throw AllocatorUsageError("record_stream on " + hex(ptr) + ", which is not a live allocation");
  }
  if (segments_[loc->segment].stream == stream) return;  // uses on the allocation stream need nothing
  block_at(*loc).stream_uses.insert(stream);
}

void ReferenceAllocator::insert_events(Block& block) {
  for (StreamId s : block.stream_uses) {
    block.event_count += 1;
    events_[s].push_back({events_recorded_[s]++, block.addr});
  }
  block.stream_uses.clear();
}

bool ReferenceAllocator::event_done(StreamId stream, const PendingEvent& event) const {
  if (completion_ == EventCompletion::kAtNextMalloc) return true;
  auto it = events_completed_.find(stream);
  return it != events_completed_.end() && event.sequence < it->second;
}

void ReferenceAllocator::process_events() {
  for (auto& [stream, queue] : events_) {
    while (!queue.empty() && event_done(stream, queue.front())) {
      const std::uint64_t addr = queue.front().block_addr;
      queue.erase(queue.begin());
      Block& b = block_at(locate(addr));
      b.event_count -= 1;
      if (b.event_count == 0) free_block(addr);
    }
  }
  std::erase_if(events_, [](const auto& entry) { return entry.second.empty(); });
}

void ReferenceAllocator::synchronize_and_free_events() {
  stats_.num_sync_all_streams += 1;
  for (auto& [stream, queue] : events_) {
    for (const PendingEvent& e : queue) {
      Block& b = block_at(locate(e.block_addr));
      b.event_count -= 1;
      if (b.event_count == 0) free_block(e.block_addr);
    }
    queue.clear();
  }
  events_.clear();
}

void ReferenceAllocator::mark_stream_complete(StreamId stream) {
  events_completed_[stream] = events_recorded_[stream];
}

void ReferenceAllocator::complete_pending_free(std::uint64_t ptr) {
  auto loc = find(ptr);
  if (!loc || block_at(*loc).allocated || block_at(*loc).event_count == 0) {
    throw AllocatorUsageError("complete_pending_free of " + hex(ptr) + ", which has no pending free");
  }
  for (auto& [stream, queue] : events_) {
    std::erase_if(queue, [ptr](const PendingEvent& e) { return e.block_addr == ptr; });
  }
  std::erase_if(events_, [](const auto& entry) { return entry.second.empty(); });
  block_at(*loc).event_count = 0;
  free_block(ptr);
}

void ReferenceAllocator::free_block(std::uint64_t addr) {
  Loc loc = locate(addr);
  Segment& seg = segments_[loc.segment];
  const bool small = seg.is_small;
  const Block freed = seg.blocks[loc.block];
  trace(TraceAction::kFreeCompleted, freed.addr, freed.requested_size, seg.stream);

  std::int64_t net_blocks = 0;
  std::int64_t net_bytes = 0;
  // Previous neighbour first; only with a neighbour of the same mapped state.
  if (loc.block > 0) {
    const Block& prev = seg.blocks[loc.block - 1];
    if (is_free(prev) && prev.mapped == freed.mapped) {
      net_blocks -= 1;
      net_bytes -= static_cast<std::int64_t>(prev.size);
      seg.blocks[loc.block].addr = prev.addr;
      seg.blocks[loc.block].size += prev.size;
      seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) - 1);
      --loc.block;
    }
  }
  if (loc.block + 1 < seg.blocks.size()) {
    const Block& next = seg.blocks[loc.block + 1];
    if (is_free(next) && next.mapped == freed.mapped) {
      net_blocks -= 1;
      net_bytes -= static_cast<std::int64_t>(next.size);
      seg.blocks[loc.block].size += next.size;
      seg.blocks.erase(seg.blocks.begin() + static_cast<std::ptrdiff_t>(loc.block) + 1);
    }
  }
  Block& merged = seg.blocks[loc.block];
  merged.gc_count_base = get_free_blocks_call_count_[small ? 1 : 0];
  if (seg.blocks.size() > 1) {
    net_blocks += 1;
    net_bytes += static_cast<std::int64_t>(merged.size);
  }
  // inactive_split is not kept for expandable segments.
  if (!seg.expandable) {
    if (net_blocks > 0) increase(&DeviceStats::inactive_split, small, static_cast<std::uint64_t>(net_blocks));
    if (net_blocks < 0) decrease(&DeviceStats::inactive_split, small, static_cast<std::uint64_t>(-net_blocks));
    if (net_bytes > 0) increase(&DeviceStats::inactive_split_bytes, small, static_cast<std::uint64_t>(net_bytes));
    if (net_bytes < 0) decrease(&DeviceStats::inactive_split_bytes, small, static_cast<std::uint64_t>(-net_bytes));
  }
  decrease(&DeviceStats::active, small, 1);
  decrease(&DeviceStats::active_bytes, small, freed.size);
  decrease(&DeviceStats::requested_bytes, small, freed.requested_size);
}

// ---------------------------------------------------------------------------------------------------
// Settings

void ReferenceAllocator::empty_cache() { release_cached_blocks(); }

void ReferenceAllocator::set_memory_fraction(double fraction) {
  if (!(fraction >= 0.0 && fraction <= 1.0)) {
    throw AllocatorUsageError("invalid fraction: " + std::to_string(fraction) + ". Please set within [0, 1].");
  }
  // Newer: fraction of totalGlobalMem, and 1.0 means no limit. Older (<= ~2.8): fraction of
  // cudaMemGetInfo's total, and every call sets a limit (which also enables GC).
  const std::uint64_t total =
      profile_.fraction_of_total_global_mem ? device_.spec().global_mem() : device_.mem_get_info().total;
  limit_.reset();
  if (!profile_.fraction_one_is_unlimited || fraction < 1.0) {
    limit_ = static_cast<std::uint64_t>(fraction * static_cast<double>(total));
  }
}

void ReferenceAllocator::update_settings(std::string_view settings) {
  config_ = AllocatorConfig::parse(settings, profile_, &config_);
}

// ---------------------------------------------------------------------------------------------------
// Introspection

std::vector<SegmentInfo> ReferenceAllocator::segments() const {
  Snapshot snap;
  for (const Segment& seg : segments_) {
    // One entry per contiguous mapped run (a whole segment when not expandable).
    SegmentInfo* current = nullptr;
    for (const Block& b : seg.blocks) {
      if (!b.mapped) {
        current = nullptr;
        continue;
      }
      if (current == nullptr) {
        snap.segments.emplace_back();
        current = &snap.segments.back();
        current->address = b.addr;
        current->stream = seg.stream;
        current->is_small = seg.is_small;
        current->is_expandable = seg.expandable;
      }
      BlockInfo info;
      info.address = b.addr;
      info.size = b.size;
      info.requested_size = b.requested_size;
      const bool active = b.allocated || b.event_count > 0 || !b.stream_uses.empty();
      info.state = b.allocated ? BlockState::kActiveAllocated
                               : (active ? BlockState::kActivePendingFree : BlockState::kInactive);
      current->total_size += b.size;
      if (b.allocated) current->allocated_size += b.size;
      if (active) {
        current->active_size += b.size;
        current->requested_size += b.requested_size;
      }
      current->blocks.push_back(info);
    }
  }
  std::sort(snap.segments.begin(), snap.segments.end(),
            [](const SegmentInfo& a, const SegmentInfo& b) { return a.address < b.address; });
  return snap.segments;
}

Snapshot ReferenceAllocator::snapshot() {
  Snapshot snap;
  snap.alloc_conf = config_.source;
  snap.segments = segments();
  std::uint64_t total_active = 0;
  for (const SegmentInfo& s : snap.segments) total_active += s.active_size;
  trace(TraceAction::kSnapshot, 0, total_active, 0);
  return snap;
}

FragmentationInfo ReferenceAllocator::fragmentation() const {
  FragmentationInfo f;
  f.reserved = static_cast<std::uint64_t>(stats_.reserved_bytes[kAggregate].current);
  f.allocated = static_cast<std::uint64_t>(stats_.allocated_bytes[kAggregate].current);
  f.free_cached = f.reserved - static_cast<std::uint64_t>(stats_.active_bytes[kAggregate].current);
  for (const Segment& seg : segments_) {
    bool holds_live = false;
    for (const Block& b : seg.blocks) holds_live = holds_live || !is_free(b);
    for (const Block& b : seg.blocks) {
      if (!b.mapped || !is_free(b)) continue;
      f.largest_free_block = std::max(f.largest_free_block, b.size);
      if (!holds_live) continue;
      // Like the inactive_split stat, not kept for expandable segments.
      if (!seg.expandable) f.inactive_split += b.size;
      // The last reclaim step of an OOM unmaps the whole free pages of an expandable segment; only the
      // rest is stranded. A cudaMalloc segment with live blocks is never returned.
      std::uint64_t returnable = 0;
      if (seg.expandable) {
        const std::uint64_t first = ceil_div(b.addr - seg.base, seg.page_size);
        const std::uint64_t last = (b.addr + b.size - seg.base) / seg.page_size;
        if (last > first) returnable = (last - first) * seg.page_size;
      }
      f.stranded += b.size - returnable;
    }
  }
  return f;
}

std::uint64_t ReferenceAllocator::block_size(std::uint64_t ptr) const {
  auto loc = find(ptr);
  if (!loc || !block_at(*loc).allocated) throw AllocatorUsageError(hex(ptr) + " is not a live allocation");
  return block_at(*loc).size;
}

bool ReferenceAllocator::is_live(std::uint64_t ptr) const {
  auto loc = find(ptr);
  return loc && block_at(*loc).allocated;
}

void ReferenceAllocator::check_invariants() const {
  DeviceStats recount;
  std::uint64_t reserved = 0;
  for (const Segment& seg : segments_) {
    if (seg.blocks.empty()) violated("empty segment at " + hex(seg.base));
    std::uint64_t cursor = seg.base;
    const int kind = seg.is_small ? kSmallPool : kLargePool;
    for (std::size_t k = 0; k < seg.blocks.size(); ++k) {
      const Block& b = seg.blocks[k];
      if (b.addr != cursor || b.size == 0) violated("blocks do not tile the segment at " + hex(seg.base));
      cursor += b.size;
      if (!seg.expandable && !b.mapped) violated("unmapped block outside an expandable segment");
      if (k > 0) {
        const Block& prev = seg.blocks[k - 1];
        if (is_free(prev) && is_free(b) && prev.mapped == b.mapped) violated("adjacent free blocks at " + hex(b.addr));
      }
      if (b.mapped) reserved += b.size;
      const bool active = !is_free(b);
      if (b.allocated) {
        recount.allocation[kind].current += 1;
        recount.allocated_bytes[kind].current += static_cast<std::int64_t>(b.size);
      }
      if (active) {
        recount.active[kind].current += 1;
        recount.active_bytes[kind].current += static_cast<std::int64_t>(b.size);
        recount.requested_bytes[kind].current += static_cast<std::int64_t>(b.requested_size);
      } else if (b.mapped && !seg.expandable && seg.blocks.size() > 1) {
        recount.inactive_split[kind].current += 1;
        recount.inactive_split_bytes[kind].current += static_cast<std::int64_t>(b.size);
      }
    }
    if (!seg.expandable) {
      recount.segment[kind].current += 1;
      recount.reserved_bytes[kind].current += static_cast<std::int64_t>(cursor - seg.base);
    } else {
      for (const Block& b : seg.blocks) {
        if (b.mapped) recount.reserved_bytes[kind].current += static_cast<std::int64_t>(b.size);
      }
    }
  }
  if (reserved != total_allocated_memory_) violated("total_allocated_memory differs from the mapped bytes");
  // Every pending block has exactly event_count queued events, and only pending blocks have any.
  std::map<std::uint64_t, int> queued;
  for (const auto& [stream, queue] : events_) {
    for (const PendingEvent& e : queue) queued[e.block_addr] += 1;
  }
  for (const Segment& seg : segments_) {
    for (const Block& b : seg.blocks) {
      const auto it = queued.find(b.addr);
      const int n = it == queued.end() ? 0 : it->second;
      if (n != b.event_count || (n > 0 && b.allocated)) violated("event bookkeeping of the block at " + hex(b.addr));
      if (!b.allocated && !b.stream_uses.empty()) violated("a freed block still lists stream uses");
    }
  }
  auto check = [this](const StatArray& want, const StatArray& got, const char* name) {
    for (int k : {kSmallPool, kLargePool}) {
      if (want[k].current != got[k].current) {
        violated(std::string(name) + "[" + std::to_string(k) + "] is " + std::to_string(got[k].current) +
                 ", recount " + std::to_string(want[k].current));
      }
    }
    if (got[kAggregate].current != got[kSmallPool].current + got[kLargePool].current) {
      violated(std::string(name) + ".all differs from small + large");
    }
  };
  check(recount.allocation, stats_.allocation, "allocation");
  check(recount.allocated_bytes, stats_.allocated_bytes, "allocated_bytes");
  check(recount.active, stats_.active, "active");
  check(recount.active_bytes, stats_.active_bytes, "active_bytes");
  check(recount.requested_bytes, stats_.requested_bytes, "requested_bytes");
  check(recount.inactive_split, stats_.inactive_split, "inactive_split");
  check(recount.inactive_split_bytes, stats_.inactive_split_bytes, "inactive_split_bytes");
  check(recount.segment, stats_.segment, "segment");
  check(recount.reserved_bytes, stats_.reserved_bytes, "reserved_bytes");
}

}  // namespace offsim::sim::test
