// Simulation of c10/cuda/CUDACachingAllocator.cpp (DeviceCachingAllocator). The structure follows the
// upstream functions one to one (malloc, get_free_block, alloc_block, alloc_found_block, free,
// free_block, try_merge_blocks, release_available_cached_blocks, release_cached_blocks, release_blocks,
// garbage_collect_cached_blocks, the expandable-segment functions, process_events), so that a divergence
// from a real trace can be traced to one rule. Private pools (CUDA graphs, MemPool) are not modelled.
#include "offsim/sim/caching_allocator.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "address_map.hpp"
#include "free_block_index.hpp"
#include "node_free_list.hpp"
#include "offsim/sim/errors.hpp"

// The per-request path (malloc, free and their helpers) is forced inline: a replay spends most of its
// time in calls of a few dozen instructions, and GCC left them out of line (call, spills, returns cost
// ~15% of a replay, measured with callgrind).
#define OFFSIM_HOT inline __attribute__((always_inline))

namespace offsim::sim {

namespace {

constexpr std::uint32_t kNil = 0xffffffffu;
// PyTorch refuses requests of 1 EiB or more before any bookkeeping ("more than 1EB memory").
constexpr std::uint64_t kMaxRequest = 1ULL << 60;

// One cache line each: std::vector's 16-byte alignment let a 64-byte Block straddle two lines, so that a
// free touching a block and its two neighbours could miss six lines instead of three (callgrind's cache
// simulation: 14% fewer L1 read misses in an inference-like replay once aligned).
struct alignas(64) Block {
  std::uint64_t ptr = 0;
  std::uint64_t size = 0;
  std::uint64_t requested_size = 0;  // stale on free blocks, as upstream
  std::uint64_t gc_count_base = 0;
  StreamId stream = 0;
  std::uint32_t prev = kNil;
  std::uint32_t next = kNil;
  std::uint32_t expandable = kNil;  // index into expandable segments; kNil for cudaMalloc segments
  std::uint32_t event_count = 0;
  bool small = false;  // which pool (small_blocks / large_blocks)
  bool allocated = false;
  bool mapped = true;
  bool alive = false;
  bool has_stream_uses = false;  // record_stream targets are in State::stream_uses (rare)
};
static_assert(sizeof(Block) == 64, "a Block is one cache line");

// Key of BlockComparatorAddress (stream, ptr) for unmapped expandable-segment blocks. A copy: a block
// is always removed from its set before its ptr or size changes, exactly as upstream.
struct AddressKey {
  StreamId stream;
  std::uint64_t ptr;
  std::uint32_t block;
  friend bool operator<(const AddressKey& a, const AddressKey& b) {
    if (a.stream != b.stream) return a.stream < b.stream;
    return a.ptr < b.ptr;
  }
};

// A pool (small_blocks / large_blocks): its free mapped blocks ordered by BlockComparatorSize
// (stream, size, ptr), kept as one FreeBlockIndex per stream in ascending stream order, and its unmapped
// expandable-segment blocks.
struct BlockPool {
  explicit BlockPool(bool is_small) : small(is_small) {}
  bool small;
  std::vector<std::pair<StreamId, std::unique_ptr<FreeBlockIndex>>> streams;
  std::set<AddressKey, std::less<AddressKey>, NodeFreeList<AddressKey>> unmapped;
  std::uint64_t get_free_blocks_call_count = 0;  // GC age clock

  // Every free and every split looks its stream's index up: the first (lowest, usually the default
  // stream 0) is kept beside the list and checked inline, the rest out of line (an out-of-line lookup was
  // ~5% of a replay; reading the first through the vector, ~2%).
  StreamId first_stream = 0;
  FreeBlockIndex* first_index = nullptr;  // null while no stream has an index
  FreeBlockIndex* find_stream(StreamId stream) const {
    if (stream == first_stream && first_index != nullptr) [[likely]] return first_index;
    return find_later_stream(stream);
  }
  FreeBlockIndex& stream_index(StreamId stream) {
    if (FreeBlockIndex* index = find_stream(stream)) [[likely]] return *index;
    return add_stream(stream);
  }
  [[gnu::noinline]] FreeBlockIndex* find_later_stream(StreamId stream) const {
    for (const auto& [s, index] : streams) {
      if (s == stream) return index.get();
    }
    return nullptr;
  }
  [[gnu::noinline]] FreeBlockIndex& add_stream(StreamId stream) {
    auto it = std::lower_bound(streams.begin(), streams.end(), stream,
                               [](const auto& entry, StreamId s) { return entry.first < s; });
    FreeBlockIndex& index = *streams.emplace(it, stream, std::make_unique<FreeBlockIndex>())->second;
    first_stream = streams.front().first;
    first_index = streams.front().second.get();
    return index;
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& entry : streams) n += entry.second->size();
    return n;
  }
  bool empty() const { return size() == 0; }
  /// Every free block in comparator order: f(stream, entry).
  template <typename F>
  void for_each(F&& f) const {
    // Not a structured binding: clang before 16 (the fuzz build) cannot capture one in a lambda.
    for (const auto& per_stream : streams) {
      const auto& stream = per_stream.first;
      per_stream.second->for_each([&](const FreeBlockIndex::Entry& e) { f(stream, e); });
    }
  }
};

struct ExpandableSegment {
  std::uint64_t base = 0;
  std::uint64_t size = 0;  // reserved address space
  std::uint64_t page = 0;  // 2 MiB (small pool) or large_segment_size (large pool)
  bool alive = true;
};

struct PendingEvent {
  std::uint32_t block;
  std::uint64_t sequence;  // order of recording; kExplicit completes through a watermark per stream
};

inline __attribute__((always_inline)) void update(StatArray& stats, bool small, std::int64_t delta) {
  Stat& pool = stats[small ? kSmallPool : kLargePool];
  if (delta >= 0) {
    stats[kAggregate].increase(delta);
    pool.increase(delta);
  } else {
    stats[kAggregate].decrease(-delta);
    pool.decrease(-delta);
  }
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

}  // namespace

struct CachingAllocator::State {
  State(Device& d, AllocatorConfig c, const VersionProfile& p, EventCompletion e)
      : device(&d), config(std::move(c)), profile(&p), completion(e) {
    // stats.max_split_size is set once at construction (spec section 8); SIZE_MAX reads as -1.
    stats.max_split_size = static_cast<std::int64_t>(config.max_split_size);
    if (config.per_process_memory_fraction) set_memory_fraction(*config.per_process_memory_fraction);
  }

  Device* device;
  AllocatorConfig config;
  const VersionProfile* profile;
  EventCompletion completion;

  std::vector<Block> blocks;
  std::uint32_t free_block_head = kNil;  // dead ids, chained through Block::next
  BlockPool small_pool{true};
  BlockPool large_pool{false};
  std::vector<ExpandableSegment> expandable_segments;
  AddressMap active;  // ptr -> allocated or pending-free block
  std::unordered_map<std::uint32_t, std::vector<StreamId>> stream_uses;  // block -> record_stream targets
  std::map<StreamId, std::deque<PendingEvent>> pending;     // per recorded stream, FIFO
  std::map<StreamId, std::uint64_t> completed_through;      // kExplicit watermarks
  std::uint64_t event_sequence = 0;

  DeviceStats stats;
  std::uint64_t total_allocated_memory = 0;
  bool set_fraction = false;
  std::uint64_t allowed_memory_maximum = 0;
  OomInfo last_oom;
  std::vector<TraceEvent>* trace = nullptr;
  TraceBuffer* buffer = nullptr;
  std::int64_t time_us = 0;

  // ---- small helpers ---------------------------------------------------------------------------

  BlockPool& pool_of(const Block& b) { return b.small ? small_pool : large_pool; }
  const BlockPool& pool_of_const(const Block& b) const { return b.small ? small_pool : large_pool; }
  bool is_split(const Block& b) const { return b.prev != kNil || b.next != kNil; }
  bool is_expandable(std::uint32_t id) const { return blocks[id].expandable != kNil; }

  // Dead blocks are chained through their `next` field (a free list inside `blocks`): recycling an id
  // costs no vector push, which GCC kept out of line.
  OFFSIM_HOT std::uint32_t new_block() {
    std::uint32_t id = free_block_head;
    if (id != kNil) {
      free_block_head = blocks[id].next;
      blocks[id] = Block{};
    } else {
      id = static_cast<std::uint32_t>(blocks.size());
      blocks.emplace_back();
    }
    blocks[id].alive = true;
    return id;
  }
  OFFSIM_HOT void delete_block(std::uint32_t id) {
    blocks[id].alive = false;
    blocks[id].next = free_block_head;
    free_block_head = id;
  }

  OFFSIM_HOT void insert_into_blocks(std::uint32_t id) {
    Block& b = blocks[id];
    BlockPool& pool = pool_of(b);
    b.gc_count_base = pool.get_free_blocks_call_count;  // BlockPool::insert_into_blocks resets the GC age
    pool.stream_index(b.stream).insert(b.size, b.ptr, id);
  }
  OFFSIM_HOT void erase_from_blocks(std::uint32_t id) {
    const Block& b = blocks[id];
    FreeBlockIndex* index = pool_of(b).find_stream(b.stream);
    const FreeBlockIndex::Position p = index->find(b.size, b.ptr);
    index->erase(p);
  }
  void insert_unmapped(std::uint32_t id) {
    const Block& b = blocks[id];
    pool_of(blocks[id]).unmapped.insert({b.stream, b.ptr, id});
  }
  void erase_unmapped(std::uint32_t id) {
    const Block& b = blocks[id];
    pool_of(blocks[id]).unmapped.erase({b.stream, b.ptr, id});
  }

  // A TraceBuffer sink takes an inline append; a std::vector sink a push_back that GCC keeps out of line
  // (~40 instructions a push). Replay uses the former.
  __attribute__((always_inline)) void record(TraceAction action, std::uint64_t addr, std::uint64_t size,
                                             StreamId stream) {
    if (buffer != nullptr) {
      buffer->push(addr, size, stream, time_us, action);
    } else if (trace != nullptr) {
      // Passing the fields one by one: a whole TraceEvent temporary passed by reference was written with
      // 8-byte stores and read back with 16-byte loads, a store-forwarding stall.
#if defined(__cpp_aggregate_paren_init)
      trace->emplace_back(addr, size, stream, time_us, action, kTraceFlagNone);
#else  // clang before 16 (the fuzz build) has no parenthesized aggregate initialization
      trace->push_back(TraceEvent{addr, size, stream, time_us, action, kTraceFlagNone});
#endif
    }
  }

  bool expandable_segments_enabled() const {
    // ROCm builds ignore the flag ("expandable_segments not supported on this platform") until the HIP
    // VMM implementation (PR #177974, ROCm builds of 2.11).
    if (device->spec().platform == Platform::kRocm && !profile->rocm_expandable_segments) return false;
    return config.expandable_segments;
  }
  bool gc_active() const { return set_fraction && config.garbage_collection_threshold > 0.0; }

  // ---- configuration ---------------------------------------------------------------------------

  void set_memory_fraction(double fraction) {
    if (!(fraction >= 0.0 && fraction <= 1.0)) {
      throw AllocatorUsageError("Invalid fraction value: " + std::to_string(fraction) + ". It should be in [0, 1]");
    }
    if (profile->fraction_one_is_unlimited) {
      // PR #161035: limit = fraction * totalGlobalMem; 1.0 removes the limit.
      if (fraction >= 1.0) {
        set_fraction = false;
        allowed_memory_maximum = 0;
        return;
      }
      allowed_memory_maximum = static_cast<std::uint64_t>(fraction * static_cast<double>(device->spec().global_mem()));
    } else {
      // Older: fraction of cudaMemGetInfo's total, and any call (1.0 too) sets a limit.
      allowed_memory_maximum = static_cast<std::uint64_t>(fraction * static_cast<double>(device->mem_get_info().total));
    }
    set_fraction = true;
  }

  // ---- sizes (spec section 2) ------------------------------------------------------------------

  OFFSIM_HOT std::uint64_t round_size(std::uint64_t size) const { return config.round_size(size); }

  std::uint64_t allocation_size(std::uint64_t size) const {
    if (size <= kSmallSize) return kSmallBuffer;
    if (size < kMinLargeAlloc) return config.large_segment_size;
    return kRoundLarge * ceil_div(size, kRoundLarge);
  }

  bool should_split(std::uint32_t id, std::uint64_t size) const {
    const Block& b = blocks[id];
    const std::uint64_t remaining = b.size - size;
    if (b.small || expandable_segments_enabled()) return remaining >= kMinBlockSize;
    return size < config.max_split_size && remaining > kSmallSize;
  }

  // ---- malloc (spec section 3) -----------------------------------------------------------------

  std::optional<std::uint64_t> malloc(std::uint64_t orig_size, StreamId stream) {
    if (orig_size == 0) return 0;
    if (orig_size >= kMaxRequest) {
      throw InvalidSizeError("Tried to allocate more than 1EB memory (" + std::to_string(orig_size) + " bytes)");
    }
    process_events();
    const std::uint64_t size = round_size(orig_size);
    BlockPool& pool = size <= kSmallSize ? small_pool : large_pool;
    const std::uint64_t alloc_size = allocation_size(size);

    std::uint32_t block = get_free_block(pool, size, stream);
    if (block == kNil) {
      if (gc_active()) garbage_collect_cached_blocks();
      block = alloc_block(pool, size, alloc_size, stream, /*retry=*/false);
      if (block == kNil && release_available_cached_blocks(pool, size, stream)) {
        block = alloc_block(pool, size, alloc_size, stream, false);
      }
      if (block == kNil) {
        // Last step: empty the cache and try the driver once more. The pool is NOT searched again, even
        // if synchronizing completed a pending free that would fit (upstream issue #189504).
        release_cached_blocks();
        block = alloc_block(pool, size, alloc_size, stream, /*retry=*/true);
      }
    }
    if (block == kNil) {
      report_oom(orig_size, size, alloc_size, stream, pool);
      return std::nullopt;
    }
    return alloc_found_block(block, size, orig_size, should_split(block, size));
  }

  // No std::optional: through one, the position was stored in two halves and reloaded whole for the
  // erase that follows, a store-forwarding stall (perf: ~9% of malloc's time on one instruction).
  struct Candidate {
    FreeBlockIndex* index = nullptr;  // null: no candidate
    FreeBlockIndex::Position position{};
    std::uint32_t block = kNil;
    explicit operator bool() const { return index != nullptr; }
  };

  // get_free_block without its side effects: the best-fit candidate, if any.
  OFFSIM_HOT Candidate find_free_block(const BlockPool& pool, std::uint64_t size, StreamId stream) const {
    FreeBlockIndex* index = pool.find_stream(stream);
    if (index == nullptr) return {};
    const FreeBlockIndex::Position none = index->end();
    FreeBlockIndex::Position it = index->lower_bound(size, 0);
    if (it == none) return {};
    if (is_expandable(index->at(it).block)) {
      if (expandable_segments_enabled()) {
        // Best fit measures an expandable block by what it can grow to: a block in front of the unmapped
        // tail is avoided if a later candidate would waste less address space.
        auto expandable_size = [&](std::uint32_t id) {
          const Block& b = blocks[id];
          return b.size + (b.next != kNil && !blocks[b.next].mapped ? blocks[b.next].size : 0);
        };
        FreeBlockIndex::Position next = index->next(it);
        while (is_expandable(index->at(it).block) && next != none &&
               expandable_size(index->at(next).block) < expandable_size(index->at(it).block)) {
          it = next;
          next = index->next(next);
        }
      } else {
        // Expandable segments were turned off after some were created: only non-expandable blocks.
        do {
          it = index->next(it);
        } while (it != none && is_expandable(index->at(it).block));
        if (it == none) return {};
      }
    }
    const std::uint64_t found = index->at(it).size;
    // Rule A: a request below max_split_size never takes an oversize block.
    if (size < config.max_split_size && found >= config.max_split_size) return {};
    // Rule B: an oversize request takes a larger oversize block only within the rounding tolerance.
    if (size >= config.max_split_size && found >= size + config.max_non_split_rounding_size) return {};
    return Candidate{index, it, index->at(it).block};
  }

  OFFSIM_HOT std::uint32_t get_free_block(BlockPool& pool, std::uint64_t size, StreamId stream) {
    if (gc_active()) ++pool.get_free_blocks_call_count;  // GC ages count search calls
    const Candidate c = find_free_block(pool, size, stream);
    if (!c) return kNil;
    c.index->erase(c.position);
    return c.block;
  }

  // Whether alloc_block(retry=false) would succeed now (no side effects).
  bool alloc_block_would_succeed(const BlockPool& pool, std::uint64_t size, std::uint64_t alloc_size,
                                 StreamId stream) const {
    if (set_fraction && total_allocated_memory + alloc_size > allowed_memory_maximum) return false;
    const std::uint64_t free = device->mem_get_info().free;
    if (!expandable_segments_enabled()) {
      const std::uint64_t g = device->spec().granularity;
      return free >= (g == 0 ? alloc_size : ceil_div(alloc_size, g) * g);
    }
    const std::uint64_t page = page_size(pool.small);
    for (auto it = pool.unmapped.lower_bound({stream, 0, 0}); it != pool.unmapped.end() && it->stream == stream; ++it) {
      std::uint32_t candidate = it->block;
      if (allocatable(blocks[candidate].prev)) candidate = blocks[candidate].prev;
      std::uint64_t have = 0, mapped = 0;
      for (std::uint32_t b = candidate; have < size && allocatable(b); b = blocks[b].next) {
        have += blocks[b].size;
        if (blocks[b].mapped) mapped += blocks[b].size;
      }
      if (have >= size) return free >= ceil_div(size - std::min(size, mapped), page) * page;
    }
    return free >= ceil_div(size, page) * page;
  }

  bool would_reclaim(std::uint64_t orig_size, StreamId stream) const {
    const std::uint64_t size = round_size(orig_size);
    const BlockPool& pool = size <= kSmallSize ? small_pool : large_pool;
    if (find_free_block(pool, size, stream)) return false;
    if (gc_active()) {
      const auto gc_limit = static_cast<std::uint64_t>(config.garbage_collection_threshold *
                                                       static_cast<double>(allowed_memory_maximum));
      if (total_allocated_memory > gc_limit) return true;
    }
    return !alloc_block_would_succeed(pool, size, allocation_size(size), stream);
  }

  std::uint32_t alloc_block(BlockPool& pool, std::uint64_t size, std::uint64_t alloc_size, StreamId stream,
                            bool retry) {
    if (retry) ++stats.num_alloc_retries;
    // The limit is checked with alloc_size even on the expandable path.
    if (set_fraction && total_allocated_memory + alloc_size > allowed_memory_maximum) return kNil;
    if (expandable_segments_enabled()) return try_allocate_expandable_block(pool, size, stream);

    const std::optional<std::uint64_t> ptr = device->malloc(alloc_size);
    if (!ptr) return kNil;
    total_allocated_memory += alloc_size;
    const std::uint32_t id = new_block();
    Block& b = blocks[id];
    b.ptr = *ptr;
    b.size = alloc_size;
    b.stream = stream;
    b.small = pool.small;
    update(stats.segment, pool.small, 1);
    update(stats.reserved_bytes, pool.small, static_cast<std::int64_t>(alloc_size));
    if (alloc_size >= config.max_split_size) stats.oversize_segments.increase(1);
    ++stats.num_device_alloc;
    record(TraceAction::kSegmentAlloc, *ptr, alloc_size, stream);
    return id;
  }

  OFFSIM_HOT std::uint64_t alloc_found_block(std::uint32_t id, std::uint64_t size, std::uint64_t orig_size, bool split) {
    const bool already_split = is_split(blocks[id]);
    const bool es = is_expandable(id);
    const bool small = blocks[id].small;
    std::uint32_t result = id;
    if (split) {
      // The new block takes the low addresses; the original object becomes the remainder.
      const std::uint32_t carved = new_block();
      Block& remaining = blocks[id];
      Block& b = blocks[carved];
      b.ptr = remaining.ptr;
      b.size = size;
      b.stream = remaining.stream;
      b.small = remaining.small;
      b.expandable = remaining.expandable;
      b.prev = remaining.prev;
      if (b.prev != kNil) blocks[b.prev].next = carved;
      b.next = id;
      remaining.prev = carved;
      remaining.ptr += size;
      remaining.size -= size;
      insert_into_blocks(id);
      if (already_split && !es) {
        update(stats.inactive_split_bytes, small, -static_cast<std::int64_t>(size));
      } else if (!es) {
        update(stats.inactive_split_bytes, small, static_cast<std::int64_t>(blocks[id].size));
        update(stats.inactive_split, small, 1);
      }
      result = carved;
    } else if (already_split && !es) {
      update(stats.inactive_split_bytes, small, -static_cast<std::int64_t>(blocks[id].size));
      update(stats.inactive_split, small, -1);
    }
    Block& b = blocks[result];
    b.allocated = true;
    b.requested_size = orig_size;
    record(TraceAction::kAlloc, b.ptr, orig_size, b.stream);
    active.put(b.ptr, result);
    const auto block_size = static_cast<std::int64_t>(b.size);
    update(stats.allocation, small, 1);
    update(stats.allocated_bytes, small, block_size);
    update(stats.active, small, 1);
    update(stats.active_bytes, small, block_size);
    update(stats.requested_bytes, small, static_cast<std::int64_t>(orig_size));
    if (b.size >= config.max_split_size) stats.oversize_allocations.increase(1);
    return b.ptr;
  }

  // ---- free (spec section 4) -------------------------------------------------------------------

  OFFSIM_HOT std::uint32_t find_active(std::uint64_t ptr, const char* what) const {
    const std::uint32_t id = active.find(ptr);
    if (id == AddressMap::kMissing) not_live(ptr, what);
    return id;
  }

  [[noreturn, gnu::cold, gnu::noinline]] static void not_live(std::uint64_t ptr, const char* what) {
    throw AllocatorUsageError(std::string(what) + ": pointer " + std::to_string(ptr) +
                              " is not a live allocation (unknown address or already freed)");
  }

  void free(std::uint64_t ptr) {
    if (try_free(ptr)) return;
    // Not freed: say why. find_active throws for an address that is not in the active map; one that is
    // there but not allocated waits for its pending free.
    find_active(ptr, "free");
    throw AllocatorUsageError("free: pointer " + std::to_string(ptr) + " was already freed (its free is pending)");
  }

  OFFSIM_HOT bool try_free(std::uint64_t ptr) {
    const std::size_t slot = active.find_slot(ptr);
    if (slot == AddressMap::kNoSlot) return false;
    const std::uint32_t id = active.value_at(slot);
    if (!blocks[id].allocated) return false;
    free_allocated(id, slot);
    return true;
  }

  // `slot`: where the block is in `active`, so that completing the free does not probe for it again.
  OFFSIM_HOT void free_allocated(std::uint32_t id, std::size_t slot) {
    Block& b = blocks[id];
    b.allocated = false;
    update(stats.allocation, b.small, -1);
    update(stats.allocated_bytes, b.small, -static_cast<std::int64_t>(b.size));
    record(TraceAction::kFreeRequested, b.ptr, b.requested_size, b.stream);
    if (b.size >= config.max_split_size) stats.oversize_allocations.decrease(1);
    if (b.has_stream_uses) {
      insert_events(id);
    } else {
      free_block(id, slot);
    }
  }

  void insert_events(std::uint32_t id) {
    // Upstream iterates an unordered stream set; ascending stream ids make the simulation deterministic.
    auto uses = stream_uses.find(id);
    std::vector<StreamId> streams = std::move(uses->second);
    stream_uses.erase(uses);
    blocks[id].has_stream_uses = false;
    std::sort(streams.begin(), streams.end());
    for (StreamId s : streams) {
      ++blocks[id].event_count;
      pending[s].push_back({id, ++event_sequence});
    }
  }

  // `active_slot`: the block's slot in `active` if the caller has it (valid: nothing was put or erased
  // since), else AddressMap::kNoSlot.
  OFFSIM_HOT void free_block(std::uint32_t id, std::size_t active_slot = AddressMap::kNoSlot) {
    const std::uint64_t original_ptr = blocks[id].ptr;
    const std::uint64_t original_size = blocks[id].size;
    const std::uint64_t requested = blocks[id].requested_size;
    record(TraceAction::kFreeCompleted, original_ptr, requested, blocks[id].stream);

    std::int64_t net_blocks = 0;
    std::int64_t net_bytes = 0;
    for (const std::uint32_t candidate : {blocks[id].prev, blocks[id].next}) {
      const std::uint64_t subsumed = try_merge_blocks(id, candidate);
      if (subsumed > 0) {
        net_blocks -= 1;
        net_bytes -= static_cast<std::int64_t>(subsumed);
      }
    }
    if (active_slot != AddressMap::kNoSlot) {
      active.erase_slot(active_slot);
    } else {
      active.erase(original_ptr);
    }
    insert_into_blocks(id);
    const Block& b = blocks[id];
    if (is_split(b)) {
      net_blocks += 1;
      net_bytes += static_cast<std::int64_t>(b.size);
    }
    if (b.expandable == kNil) {
      // inactive_split is not tracked for expandable segments (upstream comment in free_block).
      update(stats.inactive_split, b.small, net_blocks);
      update(stats.inactive_split_bytes, b.small, net_bytes);
    }
    update(stats.active, b.small, -1);
    update(stats.active_bytes, b.small, -static_cast<std::int64_t>(original_size));
    update(stats.requested_bytes, b.small, -static_cast<std::int64_t>(requested));
  }

  OFFSIM_HOT bool mergeable(std::uint32_t id) const {
    const Block& b = blocks[id];
    return !b.allocated && b.event_count == 0 && !b.has_stream_uses;
  }

  // Whether freeing dst merges its neighbour src into it (free_block, try_merge_blocks upstream).
  OFFSIM_HOT bool merges_with(std::uint32_t dst, std::uint32_t src) const {
    return src != kNil && mergeable(src) && blocks[dst].mapped == blocks[src].mapped;
  }

  OFFSIM_HOT std::uint64_t try_merge_blocks(std::uint32_t dst, std::uint32_t src) {
    if (!merges_with(dst, src)) return 0;
    if (blocks[src].mapped) {
      erase_from_blocks(src);
    } else {
      erase_unmapped(src);
    }
    Block& d = blocks[dst];
    const Block& s = blocks[src];
    if (d.prev == src) {  // [src dst]
      d.ptr = s.ptr;
      d.prev = s.prev;
      if (d.prev != kNil) blocks[d.prev].next = dst;
    } else {  // [dst src]
      d.next = s.next;
      if (d.next != kNil) blocks[d.next].prev = dst;
    }
    const std::uint64_t subsumed = s.size;
    d.size += subsumed;
    delete_block(src);
    return subsumed;
  }

  // ---- events (spec section 6) -----------------------------------------------------------------

  void complete_one(std::uint32_t id) {
    if (--blocks[id].event_count == 0) free_block(id);
  }

  void process_events() {
    for (auto it = pending.begin(); it != pending.end();) {
      auto& queue = it->second;
      const std::uint64_t watermark =
          completion == EventCompletion::kAtNextMalloc ? event_sequence : completed_through[it->first];
      while (!queue.empty() && queue.front().sequence <= watermark) {
        const std::uint32_t id = queue.front().block;
        queue.pop_front();
        complete_one(id);
      }
      it = queue.empty() ? pending.erase(it) : std::next(it);
    }
  }

  void synchronize_and_free_events() {
    ++stats.num_sync_all_streams;
    auto queues = std::move(pending);
    pending.clear();
    for (auto& [stream, queue] : queues) {
      for (const PendingEvent& e : queue) complete_one(e.block);
    }
  }

  // ---- returning memory to the driver (spec section 5) -----------------------------------------

  void release_block(std::uint32_t id) {
    const Block b = blocks[id];
    ++stats.num_device_free;
    record(TraceAction::kSegmentFree, b.ptr, b.size, b.stream);
    device->free(b.ptr);
    total_allocated_memory -= b.size;
    update(stats.segment, b.small, -1);
    update(stats.reserved_bytes, b.small, -static_cast<std::int64_t>(b.size));
    if (b.size >= config.max_split_size) stats.oversize_segments.decrease(1);
    erase_from_blocks(id);
    delete_block(id);
  }

  [[noreturn]] void old_release_of_expandable() const {
    throw AllocatorUsageError("PyTorch " + profile->name +
                              " fails an internal assert here: release_block() of an expandable-segment block "
                              "(max_split_size_mb combined with expandable_segments; fixed in 2025)");
  }

  bool release_available_cached_blocks(BlockPool& pool, std::uint64_t size, StreamId stream) {
    if (config.max_split_size == kUnlimitedSplitSize) return false;
    const std::uint64_t key_size = std::max(size, config.max_split_size);
    FreeBlockIndex* index = pool.find_stream(stream);
    if (index == nullptr || index->empty()) return false;
    FreeBlockIndex::Position it = index->lower_bound(key_size, 0);
    if (it != index->end() && !(profile->reclaim_skips_expandable && is_expandable(index->at(it).block))) {
      if (is_expandable(index->at(it).block)) old_release_of_expandable();
      release_block(index->at(it).block);
      return true;
    }
    // No single block is large enough: free oversize blocks from the largest down.
    if (it == index->begin()) return false;
    std::uint64_t released = 0;
    it = index->prev(it);
    while (released < key_size && index->at(it).size >= config.max_split_size) {
      const FreeBlockIndex::Entry current = index->at(it);
      const bool at_begin = it == index->begin();
      // Stepping back first keeps `it` valid: erasing a later entry never moves an earlier one.
      if (!at_begin) it = index->prev(it);
      if (is_expandable(current.block)) {
        if (!profile->reclaim_skips_expandable) old_release_of_expandable();
      } else {
        released += current.size;
        release_block(current.block);
      }
      if (at_begin) break;
    }
    // Blocks released so far stay released even when this returns false.
    return released >= key_size;
  }

  void release_cached_blocks() {
    synchronize_and_free_events();
    release_blocks(large_pool);
    release_blocks(small_pool);
  }

  void release_blocks(BlockPool& pool) {
    std::vector<std::uint32_t> to_unmap;
    std::vector<std::uint32_t> to_release;
    pool.for_each([&](StreamId, const FreeBlockIndex::Entry& e) {
      const Block& b = blocks[e.block];
      if (b.expandable != kNil) {
        to_unmap.push_back(e.block);
      } else if (b.prev == kNil && b.next == kNil) {
        to_release.push_back(e.block);
      }
    });
    for (std::uint32_t id : to_release) release_block(id);
    for (std::uint32_t id : to_unmap) {
      unmap_block(id);
      const Block& b = blocks[id];
      if (b.prev == kNil && b.next == kNil && !b.mapped) release_expandable_segment(id);
    }
  }

  void garbage_collect_cached_blocks() {
    const auto gc_limit = static_cast<std::uint64_t>(config.garbage_collection_threshold *
                                                     static_cast<double>(allowed_memory_maximum));
    if (total_allocated_memory <= gc_limit) return;
    const std::uint64_t target = total_allocated_memory - gc_limit;
    BlockPool& pool = large_pool;  // only the default large pool is collected
    auto freeable = [&](std::uint32_t id) {
      return !is_split(blocks[id]) && !(profile->reclaim_skips_expandable && is_expandable(id));
    };
    auto age = [&](std::uint32_t id) { return pool.get_free_blocks_call_count - blocks[id].gc_count_base; };
    double total_age = 0.0;
    std::int64_t count = 0;
    pool.for_each([&](StreamId, const FreeBlockIndex::Entry& e) {
      if (freeable(e.block)) {
        total_age += static_cast<double>(age(e.block));
        ++count;
      }
    });
    if (count == 0) return;
    std::uint64_t reclaimed = 0;
    bool freed = true;
    while (reclaimed < target && freed && count > 0) {
      const double threshold_age = total_age / static_cast<double>(count);
      freed = false;
      // Frees every block at least as old as the average, without stopping at the target, so that GC
      // is not triggered again right away (upstream comment). Releasing a block does not change the
      // others' order or age, so collecting the sweep's order first is the same as walking and erasing.
      std::vector<std::uint32_t> sweep;
      pool.for_each([&](StreamId, const FreeBlockIndex::Entry& e) { sweep.push_back(e.block); });
      for (const std::uint32_t id : sweep) {
        if (freeable(id) && static_cast<double>(age(id)) >= threshold_age) {
          if (is_expandable(id)) old_release_of_expandable();
          freed = true;
          reclaimed += blocks[id].size;
          total_age -= static_cast<double>(age(id));
          --count;
          release_block(id);
        }
      }
    }
  }

  // ---- expandable segments (spec section 7) ----------------------------------------------------

  std::uint64_t page_size(bool small) const { return small ? kSmallBuffer : config.large_segment_size; }

  bool allocatable(std::uint32_t id) const { return id != kNil && mergeable(id); }

  std::uint32_t find_expandable_block(BlockPool& pool, std::uint64_t size, StreamId stream) {
    auto has_available_address_space = [&](std::uint32_t id) {
      std::uint64_t bytes = 0;
      while (bytes < size && allocatable(id)) {
        bytes += blocks[id].size;
        id = blocks[id].next;
      }
      return bytes >= size;
    };
    for (auto it = pool.unmapped.lower_bound({stream, 0, 0}); it != pool.unmapped.end() && it->stream == stream; ++it) {
      std::uint32_t candidate = it->block;
      // The lowest unmapped range may be preceded by a free mapped block that can be used too.
      if (allocatable(blocks[candidate].prev)) candidate = blocks[candidate].prev;
      if (has_available_address_space(candidate)) return candidate;
    }
    // A new segment reserves 9/8 of the device's memory as address space, in whole pages.
    const std::uint64_t page = page_size(pool.small);
    const std::uint64_t global = device->spec().global_mem();
    std::uint64_t va_size = page * ceil_div(global + global / 8, page);
    if (const std::optional<std::uint64_t> preferred = device->preferred_address()) {
      va_size = fit_reservation_at(*preferred, va_size, ceil_div(size, page) * page, page);
    }
    ExpandableSegment segment;
    segment.base = device->reserve_address_space(va_size);
    segment.size = va_size;
    segment.page = page;
    expandable_segments.push_back(segment);
    const std::uint32_t id = new_block();
    Block& b = blocks[id];
    b.ptr = segment.base;
    b.size = va_size;
    b.stream = stream;
    b.small = pool.small;
    b.mapped = false;
    b.expandable = static_cast<std::uint32_t>(expandable_segments.size() - 1);
    insert_unmapped(id);
    return id;
  }

  // A replay reserves a new segment's address space where the recording did (`preferred`). On a device
  // larger than the recording's (1 TiB when the recorded total is unknown) the 9/8-of-the-device
  // reservations overlap where the real ones did not: an earlier reservation whose unmapped tail holds
  // `preferred` gives that tail up (the recording shows another reservation there, so the real one ended
  // below it), and the new one is cut at the next reservation above it. Returns the size to reserve; a
  // range too small for `needed` is left alone (the device then places the segment elsewhere).
  std::uint64_t fit_reservation_at(std::uint64_t preferred, std::uint64_t va_size, std::uint64_t needed,
                                   std::uint64_t page) {
    for (ExpandableSegment& segment : expandable_segments) {
      if (!segment.alive || preferred <= segment.base || preferred >= segment.base + segment.size) continue;
      const std::uint32_t tail = tail_block(segment);
      if (tail == kNil || blocks[tail].mapped || blocks[tail].ptr > preferred) continue;
      erase_unmapped(tail);
      if (blocks[tail].ptr == preferred) {
        blocks[blocks[tail].prev].next = kNil;
        delete_block(tail);
      } else {
        blocks[tail].size = preferred - blocks[tail].ptr;
        insert_unmapped(tail);
      }
      segment.size = preferred - segment.base;
      device->shrink_address_space(segment.base, segment.size);
    }
    const std::uint64_t room = device->room_at(preferred) / page * page;
    if (room >= va_size || room < needed) return va_size;
    return room;
  }

  // The last block of an expandable segment's chain (its highest addresses), or kNil.
  std::uint32_t tail_block(const ExpandableSegment& segment) const {
    const std::uint64_t last = segment.base + segment.size;
    for (std::uint32_t id = 0; id < blocks.size(); ++id) {
      const Block& b = blocks[id];
      if (b.alive && b.expandable != kNil && &expandable_segments[b.expandable] == &segment && b.ptr + b.size == last) {
        return id;
      }
    }
    return kNil;
  }

  bool map_block(std::uint32_t id, std::uint64_t size) {
    const ExpandableSegment& segment = expandable_segments[blocks[id].expandable];
    const std::uint64_t offset = blocks[id].ptr - segment.base;
    const std::uint64_t first = offset / segment.page;
    const std::uint64_t last = ceil_div(offset + size, segment.page);
    const std::uint64_t mapped = (last - first) * segment.page;
    // ExpandableSegment::map creates the pages one by one and releases them all if one fails.
    if (!device->map_physical(mapped)) return false;
    const std::uint64_t mapped_ptr = blocks[id].ptr;
    erase_unmapped(id);
    blocks[id].mapped = true;
    if (mapped < blocks[id].size) {
      const std::uint32_t rest = new_block();
      Block& r = blocks[rest];
      Block& b = blocks[id];
      r.ptr = b.ptr + mapped;
      r.size = b.size - mapped;
      r.stream = b.stream;
      r.small = b.small;
      r.expandable = b.expandable;
      r.mapped = false;
      r.prev = id;
      r.next = b.next;
      if (r.next != kNil) blocks[r.next].prev = rest;
      b.next = rest;
      b.size = mapped;
      insert_unmapped(rest);
    }
    try_merge_blocks(id, blocks[id].prev);
    try_merge_blocks(id, blocks[id].next);
    insert_into_blocks(id);
    total_allocated_memory += mapped;
    update(stats.reserved_bytes, blocks[id].small, static_cast<std::int64_t>(mapped));
    ++stats.num_device_alloc;
    record(TraceAction::kSegmentMap, mapped_ptr, mapped, blocks[id].stream);
    return true;
  }

  std::uint32_t try_allocate_expandable_block(BlockPool& pool, std::uint64_t size, StreamId stream) {
    std::uint32_t candidate = find_expandable_block(pool, size, stream);
    // candidate: unmapped -> ..., or free -> unmapped -> ...
    if (!blocks[candidate].mapped && !map_block(candidate, std::min(blocks[candidate].size, size))) return kNil;
    while (blocks[candidate].size < size) {
      const std::uint64_t remaining = size - blocks[candidate].size;
      const std::uint32_t next = blocks[candidate].next;
      // map_block merges the newly mapped block with the free candidate in front of it.
      if (!map_block(next, std::min(remaining, blocks[next].size))) return kNil;
      candidate = next;
    }
    erase_from_blocks(candidate);
    return candidate;
  }

  void unmap_block(std::uint32_t id) {
    const ExpandableSegment& segment = expandable_segments[blocks[id].expandable];
    const std::uint64_t offset = blocks[id].ptr - segment.base;
    const std::uint64_t first = ceil_div(offset, segment.page);
    const std::uint64_t last = (offset + blocks[id].size) / segment.page;
    if (first >= last) return;  // no whole page inside this free block
    const std::uint64_t unmapped_ptr = segment.base + first * segment.page;
    const std::uint64_t unmapped_size = (last - first) * segment.page;
    erase_from_blocks(id);

    const std::uint64_t before = unmapped_ptr - blocks[id].ptr;
    if (before > 0) {
      const std::uint32_t piece = new_block();
      Block& p = blocks[piece];
      Block& b = blocks[id];
      p.ptr = b.ptr;
      p.size = before;
      p.stream = b.stream;
      p.small = b.small;
      p.expandable = b.expandable;
      p.prev = b.prev;
      if (p.prev != kNil) blocks[p.prev].next = piece;
      p.next = id;
      b.prev = piece;
      insert_into_blocks(piece);
    }
    const std::uint64_t after = blocks[id].size - (before + unmapped_size);
    if (after > 0) {
      const std::uint32_t piece = new_block();
      Block& p = blocks[piece];
      Block& b = blocks[id];
      p.ptr = unmapped_ptr + unmapped_size;
      p.size = after;
      p.stream = b.stream;
      p.small = b.small;
      p.expandable = b.expandable;
      p.next = b.next;
      if (p.next != kNil) blocks[p.next].prev = piece;
      p.prev = id;
      b.next = piece;
      insert_into_blocks(piece);
    }
    blocks[id].ptr = unmapped_ptr;
    blocks[id].size = unmapped_size;
    blocks[id].mapped = false;
    try_merge_blocks(id, blocks[id].prev);
    try_merge_blocks(id, blocks[id].next);
    insert_unmapped(id);

    device->unmap_physical(unmapped_size);
    total_allocated_memory -= unmapped_size;
    update(stats.reserved_bytes, blocks[id].small, -static_cast<std::int64_t>(unmapped_size));
    ++stats.num_device_free;
    record(TraceAction::kSegmentUnmap, unmapped_ptr, unmapped_size, blocks[id].stream);
  }

  void release_expandable_segment(std::uint32_t id) {
    ExpandableSegment& segment = expandable_segments[blocks[id].expandable];
    erase_unmapped(id);
    device->release_address_space(segment.base);
    segment.alive = false;
    delete_block(id);
  }

  // ---- OOM (spec section 5.7) ------------------------------------------------------------------

  void report_oom(std::uint64_t orig_size, std::uint64_t size, std::uint64_t alloc_size, StreamId stream,
                  const BlockPool& pool) {
    OomInfo info;
    info.requested = orig_size;
    info.rounded = size;
    info.alloc_size = alloc_size;
    info.stream = stream;
    info.device = device->mem_get_info();
    info.allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].current);
    info.reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].current);
    if (set_fraction) info.limit = allowed_memory_maximum;
    info.process_bytes = device->process_bytes();
    info.hint_links_alloc_conf_section = profile->oom_hint_links_alloc_conf_section;
    pool.for_each([&](StreamId s, const FreeBlockIndex::Entry& e) {
      info.free_cached_bytes += e.size;
      if (s == stream) info.largest_free_cached_block = std::max(info.largest_free_cached_block, e.size);
    });
    record(TraceAction::kOom, info.device.free, size, stream);
    ++stats.num_ooms;
    last_oom = info;
  }

  // ---- introspection ---------------------------------------------------------------------------

  std::uint32_t segment_head(std::uint32_t id) const {
    while (blocks[id].prev != kNil) {
      const std::uint32_t prev = blocks[id].prev;
      if (blocks[id].expandable != kNil && !blocks[prev].mapped) break;
      id = prev;
    }
    return id;
  }

  Snapshot snapshot() const {
    Snapshot out;
    out.alloc_conf = config.source;
    for (std::uint32_t id = 0; id < blocks.size(); ++id) {
      const Block& head = blocks[id];
      if (!head.alive || !head.mapped) continue;
      // A snapshot segment starts at a cudaMalloc'd segment's first block or, for expandable
      // segments, at the first block of each contiguous mapped run.
      if (head.prev != kNil && (head.expandable == kNil || blocks[head.prev].mapped)) continue;
      SegmentInfo segment;
      segment.address = head.ptr;
      segment.stream = head.stream;
      segment.is_small = head.small;
      segment.is_expandable = head.expandable != kNil;
      for (std::uint32_t b = id; b != kNil && blocks[b].mapped; b = blocks[b].next) {
        const Block& block = blocks[b];
        BlockInfo info;
        info.address = block.ptr;
        info.size = block.size;
        info.requested_size = block.requested_size;
        info.state = block.allocated ? BlockState::kActiveAllocated
                     : (block.event_count > 0 ? BlockState::kActivePendingFree : BlockState::kInactive);
        segment.total_size += block.size;
        if (info.state == BlockState::kActiveAllocated) segment.allocated_size += block.size;
        if (info.state != BlockState::kInactive) {
          segment.active_size += block.size;
          segment.requested_size += block.requested_size;
        }
        segment.blocks.push_back(info);
      }
      out.segments.push_back(std::move(segment));
    }
    std::sort(out.segments.begin(), out.segments.end(),
              [](const SegmentInfo& a, const SegmentInfo& b) { return a.address < b.address; });
    return out;
  }

  FragmentationInfo fragmentation() const {
    FragmentationInfo f;
    f.reserved = static_cast<std::uint64_t>(stats.reserved_bytes[kAggregate].current);
    f.allocated = static_cast<std::uint64_t>(stats.allocated_bytes[kAggregate].current);
    f.free_cached = f.reserved - static_cast<std::uint64_t>(stats.active_bytes[kAggregate].current);
    f.inactive_split = static_cast<std::uint64_t>(stats.inactive_split_bytes[kAggregate].current);
    for (const BlockPool* pool : {&small_pool, &large_pool}) {
      pool->for_each([&](StreamId, const FreeBlockIndex::Entry& e) {
        f.largest_free_block = std::max(f.largest_free_block, e.size);
        const Block& b = blocks[e.block];
        if (b.expandable == kNil) {
          if (is_split(b)) f.stranded += b.size;
        } else {
          // Whole free pages are unmapped by the last reclaim step; the partial-page rest is not.
          const ExpandableSegment& segment = expandable_segments[b.expandable];
          const std::uint64_t offset = b.ptr - segment.base;
          const std::uint64_t first = ceil_div(offset, segment.page);
          const std::uint64_t last = (offset + b.size) / segment.page;
          f.stranded += b.size - (last > first ? (last - first) * segment.page : 0);
        }
      });
    }
    return f;
  }

  void check_invariants() const;
  void load_state(const std::vector<SegmentInfo>& segments);
  void check_tiling(const SegmentInfo& segment, const std::string& where) const;
  /// One block of a loaded segment after `prev` in its chain; returns its id.
  std::uint32_t load_block(const BlockInfo& info, const SegmentInfo& segment, std::uint32_t expandable,
                           std::uint32_t prev, bool split, const std::string& where);
  void load_expandable(std::map<std::pair<StreamId, bool>, std::vector<const SegmentInfo*>>& reservations);
};

// Stream id under which pending frees of a loaded snapshot wait: the stream they were recorded on is
// not part of the snapshot.
constexpr StreamId kUnknownStream = ~StreamId{0};

void CachingAllocator::State::load_state(const std::vector<SegmentInfo>& segments) {
  if (active.size() != 0 || total_allocated_memory != 0 || !small_pool.empty() || !large_pool.empty()) {
    throw AllocatorUsageError("load_state: the allocator already holds memory");
  }
  // Expandable runs of one stream and pool belong to one address reservation (keyed by stream and pool).
  std::map<std::pair<StreamId, bool>, std::vector<const SegmentInfo*>> reservations;
  for (const SegmentInfo& segment : segments) {
    const std::string where = "load_state: segment at " + std::to_string(segment.address);
    check_tiling(segment, where);
    if (segment.is_expandable) {
      reservations[{segment.stream, segment.is_small}].push_back(&segment);
      continue;
    }
    device->prefer_next_address(segment.address);
    const std::optional<std::uint64_t> ptr = device->malloc(segment.total_size);
    device->clear_preferred_address();
    if (!ptr) throw AllocatorUsageError(where + " (" + std::to_string(segment.total_size) + " bytes) does not fit on the device");
    if (*ptr != segment.address) throw AllocatorUsageError(where + " overlaps another segment of the state");
    total_allocated_memory += segment.total_size;
    update(stats.segment, segment.is_small, 1);
    update(stats.reserved_bytes, segment.is_small, static_cast<std::int64_t>(segment.total_size));
    if (segment.total_size >= config.max_split_size) stats.oversize_segments.increase(1);
    std::uint32_t prev = kNil;
    for (const BlockInfo& info : segment.blocks) {
      prev = load_block(info, segment, kNil, prev, segment.blocks.size() > 1, where);
    }
  }
  load_expandable(reservations);
  stats.reset_peak();
}

void CachingAllocator::State::check_tiling(const SegmentInfo& segment, const std::string& where) const {
  if (segment.blocks.empty()) throw AllocatorUsageError(where + " has no blocks");
  std::uint64_t expected = segment.address;
  for (const BlockInfo& block : segment.blocks) {
    if (block.address != expected || block.size == 0) {
      throw AllocatorUsageError(where + ": blocks do not tile the segment at " + std::to_string(block.address));
    }
    expected += block.size;
  }
  if (expected - segment.address != segment.total_size) {
    throw AllocatorUsageError(where + ": block sizes add up to " + std::to_string(expected - segment.address) +
                              ", total_size is " + std::to_string(segment.total_size));
  }
}

std::uint32_t CachingAllocator::State::load_block(const BlockInfo& info, const SegmentInfo& segment,
                                                  std::uint32_t expandable, std::uint32_t prev, bool split,
                                                  const std::string& where) {
  const std::uint32_t id = new_block();
  Block& b = blocks[id];
  b.ptr = info.address;
  b.size = info.size;
  b.requested_size = info.requested_size;
  b.stream = segment.stream;
  b.small = segment.is_small;
  b.expandable = expandable;
  b.prev = prev;
  if (prev != kNil) blocks[prev].next = id;
  const auto size = static_cast<std::int64_t>(info.size);
  if (info.state == BlockState::kInactive) {
    if (merges_with(id, prev)) throw AllocatorUsageError(where + ": adjacent free blocks at " + std::to_string(info.address));
    insert_into_blocks(id);
    if (split && expandable == kNil) {  // inactive_split is not tracked for expandable segments (free_block)
      update(stats.inactive_split, segment.is_small, 1);
      update(stats.inactive_split_bytes, segment.is_small, size);
    }
    return id;
  }
  active.put(b.ptr, id);
  update(stats.active, segment.is_small, 1);
  update(stats.active_bytes, segment.is_small, size);
  update(stats.requested_bytes, segment.is_small, static_cast<std::int64_t>(info.requested_size));
  if (info.state == BlockState::kActiveAllocated) {
    b.allocated = true;
    update(stats.allocation, segment.is_small, 1);
    update(stats.allocated_bytes, segment.is_small, size);
    if (info.size >= config.max_split_size) stats.oversize_allocations.increase(1);
  } else {
    b.event_count = 1;
    pending[kUnknownStream].push_back({id, ++event_sequence});
  }
  return id;
}

// A snapshot lists an expandable segment as its mapped runs; the reservation around them is not recorded.
// Each (stream, pool) gets one reservation from its lowest run, as large as find_expandable_block would make
// it (9/8 of the device) but ending before the next reservation and covering every run; the space between
// runs and after the last one is unmapped, as the allocator leaves it after unmapping pages.
void CachingAllocator::State::load_expandable(
    std::map<std::pair<StreamId, bool>, std::vector<const SegmentInfo*>>& reservations) {
  std::vector<std::vector<const SegmentInfo*>*> by_base;
  for (auto& [key, runs] : reservations) {
    std::sort(runs.begin(), runs.end(), [](const SegmentInfo* a, const SegmentInfo* b) { return a->address < b->address; });
    by_base.push_back(&runs);
  }
  std::sort(by_base.begin(), by_base.end(), [](auto* a, auto* b) { return a->front()->address < b->front()->address; });
  const std::uint64_t global = device->spec().global_mem();
  for (std::size_t r = 0; r < by_base.size(); ++r) {
    const std::vector<const SegmentInfo*>& runs = *by_base[r];
    const SegmentInfo& first = *runs.front();
    const std::string where = "load_state: expandable segment at " + std::to_string(first.address);
    const std::uint64_t page = page_size(first.is_small);
    const std::uint64_t base = first.address;
    const std::uint64_t span = runs.back()->address + runs.back()->total_size - base;
    std::uint64_t size = page * ceil_div(global + global / 8, page);
    if (r + 1 < by_base.size()) size = std::min(size, (by_base[r + 1]->front()->address - base) / page * page);
    size = std::max(size, page * ceil_div(span, page));
    for (const SegmentInfo* run : runs) {
      if ((run->address - base) % page != 0 || run->total_size % page != 0) {
        throw AllocatorUsageError(where + ": the run at " + std::to_string(run->address) + " is not in whole " +
                                  std::to_string(page) + "-byte pages of the reservation");
      }
    }
    device->prefer_next_address(base);
    const std::uint64_t reserved_at = device->reserve_address_space(size);
    device->clear_preferred_address();
    if (reserved_at != base) throw AllocatorUsageError(where + " overlaps another segment of the state");
    ExpandableSegment segment;
    segment.base = base;
    segment.size = size;
    segment.page = page;
    expandable_segments.push_back(segment);
    const auto index = static_cast<std::uint32_t>(expandable_segments.size() - 1);
    auto unmapped = [&](std::uint64_t from, std::uint64_t to, std::uint32_t prev) {
      if (to <= from) return prev;
      const std::uint32_t id = new_block();
      Block& b = blocks[id];
      b.ptr = from;
      b.size = to - from;
      b.stream = first.stream;
      b.small = first.is_small;
      b.mapped = false;
      b.expandable = index;
      b.prev = prev;
      if (prev != kNil) blocks[prev].next = id;
      insert_unmapped(id);
      return id;
    };
    std::uint32_t prev = kNil;
    std::uint64_t cursor = base;
    for (const SegmentInfo* run : runs) {
      if (!device->map_physical(run->total_size)) {
        throw AllocatorUsageError(where + " (" + std::to_string(run->total_size) + " bytes mapped at " +
                                  std::to_string(run->address) + ") does not fit on the device");
      }
      total_allocated_memory += run->total_size;
      update(stats.reserved_bytes, run->is_small, static_cast<std::int64_t>(run->total_size));
      prev = unmapped(cursor, run->address, prev);
      for (const BlockInfo& info : run->blocks) prev = load_block(info, *run, index, prev, false, where);
      cursor = run->address + run->total_size;
    }
    unmapped(cursor, base + size, prev);
  }
}

// ---- self-check --------------------------------------------------------------------------------

void CachingAllocator::State::check_invariants() const {
  auto fail = [](const std::string& what) { throw InvariantViolation("caching allocator invariant violated: " + what); };
  DeviceStats recount;
  std::uint64_t reserved = 0;
  std::size_t free_mapped = 0, unmapped = 0, live = 0;
  for (std::uint32_t id = 0; id < blocks.size(); ++id) {
    const Block& b = blocks[id];
    if (!b.alive) continue;
    const bool es = b.expandable != kNil;
    if (b.prev != kNil) {
      const Block& p = blocks[b.prev];
      if (!p.alive || p.next != id || p.ptr + p.size != b.ptr) fail("block list broken before " + std::to_string(b.ptr));
      if (p.small != b.small || p.stream != b.stream || p.expandable != b.expandable) fail("neighbours of different segments");
    }
    if (b.next != kNil && (!blocks[b.next].alive || blocks[b.next].prev != id)) fail("block list broken after " + std::to_string(b.ptr));
    if (b.size == 0 || b.size % kMinBlockSize != 0) fail("block size not a positive multiple of 512");
    const bool free_block = !b.allocated && b.event_count == 0 && !b.has_stream_uses;
    if (free_block && b.next != kNil) {
      const Block& n = blocks[b.next];
      if (!n.allocated && n.event_count == 0 && !n.has_stream_uses && n.mapped == b.mapped) {
        fail("adjacent free blocks not merged at " + std::to_string(b.ptr));
      }
    }
    if (!b.mapped) {
      if (!es || b.allocated) fail("unmapped block outside an expandable segment");
      ++unmapped;
      if (!pool_of_const(b).unmapped.contains({b.stream, b.ptr, id})) fail("unmapped block missing from its pool");
      continue;
    }
    reserved += b.size;
    if (!es && b.prev == kNil) {
      update(recount.segment, b.small, 1);
    }
    if (free_block) {
      ++free_mapped;
      const FreeBlockIndex* index = pool_of_const(b).find_stream(b.stream);
      const bool listed = index != nullptr && index->find(b.size, b.ptr) != index->end() &&
                          index->at(index->find(b.size, b.ptr)).block == id;
      if (!listed) fail("free block missing from its pool");
      if (!es && is_split(b)) {
        update(recount.inactive_split, b.small, 1);
        update(recount.inactive_split_bytes, b.small, static_cast<std::int64_t>(b.size));
      }
    } else {
      ++live;
      if (active.find(b.ptr) != id) fail("active block missing from the active map");
      update(recount.active, b.small, 1);
      update(recount.active_bytes, b.small, static_cast<std::int64_t>(b.size));
      update(recount.requested_bytes, b.small, static_cast<std::int64_t>(b.requested_size));
      if (b.allocated) {
        update(recount.allocation, b.small, 1);
        update(recount.allocated_bytes, b.small, static_cast<std::int64_t>(b.size));
      }
    }
    update(recount.reserved_bytes, b.small, static_cast<std::int64_t>(b.size));
  }
  if (free_mapped != small_pool.size() + large_pool.size()) fail("pools hold blocks that are not free");
  if (unmapped != small_pool.unmapped.size() + large_pool.unmapped.size()) fail("unmapped sets hold stale blocks");
  if (live != active.size()) fail("active map holds stale entries");
  if (reserved != total_allocated_memory) fail("reserved bytes differ from the sum of mapped blocks");
  if (reserved != device->allocator_bytes()) fail("device and allocator disagree about reserved bytes");
  for (int k = 0; k < 3; ++k) {
    auto check = [&](const StatArray& have, const StatArray& want, const char* name) {
      if (have[k].current != want[k].current) {
        fail(std::string(name) + "[" + std::to_string(k) + "].current is " + std::to_string(have[k].current) +
             ", recount gives " + std::to_string(want[k].current));
      }
    };
    check(stats.allocation, recount.allocation, "allocation");
    check(stats.allocated_bytes, recount.allocated_bytes, "allocated_bytes");
    check(stats.active, recount.active, "active");
    check(stats.active_bytes, recount.active_bytes, "active_bytes");
    check(stats.requested_bytes, recount.requested_bytes, "requested_bytes");
    check(stats.reserved_bytes, recount.reserved_bytes, "reserved_bytes");
    check(stats.segment, recount.segment, "segment");
    check(stats.inactive_split, recount.inactive_split, "inactive_split");
    check(stats.inactive_split_bytes, recount.inactive_split_bytes, "inactive_split_bytes");
  }
}

// ---- public interface --------------------------------------------------------------------------

CachingAllocator::CachingAllocator(Device& device, AllocatorConfig config, const VersionProfile& profile,
                                   EventCompletion completion)
    : state_(std::make_unique<State>(device, std::move(config), profile, completion)) {
  if (state_->config.backend != AllocatorBackend::kNative) {
    throw ConfigError("CachingAllocator simulates backend:native; \"" + state_->config.source +
                      "\" selects cudaMallocAsync (use AsyncPoolAllocator)");
  }
}
CachingAllocator::~CachingAllocator() = default;
CachingAllocator::CachingAllocator(CachingAllocator&&) noexcept = default;
CachingAllocator& CachingAllocator::operator=(CachingAllocator&&) noexcept = default;

std::optional<std::uint64_t> CachingAllocator::malloc(std::uint64_t size, StreamId stream) {
  return state_->malloc(size, stream);
}
void CachingAllocator::free(std::uint64_t ptr) { state_->free(ptr); }
bool CachingAllocator::try_free(std::uint64_t ptr) { return state_->try_free(ptr); }

void CachingAllocator::record_stream(std::uint64_t ptr, StreamId stream) {
  const std::uint32_t id = state_->find_active(ptr, "record_stream");
  Block& b = state_->blocks[id];
  if (!b.allocated) throw AllocatorUsageError("record_stream on a freed pointer " + std::to_string(ptr));
  if (stream == b.stream) return;  // uses on the allocation stream need no synchronization
  std::vector<StreamId>& uses = state_->stream_uses[id];
  b.has_stream_uses = true;
  if (std::find(uses.begin(), uses.end(), stream) == uses.end()) {
    uses.push_back(stream);
  }
}

void CachingAllocator::mark_stream_complete(StreamId stream) {
  state_->completed_through[stream] = state_->event_sequence;
}

void CachingAllocator::complete_pending_free(std::uint64_t ptr) {
  State& s = *state_;
  const std::uint32_t id = s.find_active(ptr, "complete_pending_free");
  if (s.blocks[id].allocated || s.blocks[id].event_count == 0) {
    throw AllocatorUsageError("complete_pending_free: pointer " + std::to_string(ptr) + " has no pending free");
  }
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    auto& queue = it->second;
    queue.erase(std::remove_if(queue.begin(), queue.end(), [&](const PendingEvent& e) { return e.block == id; }),
                queue.end());
    it = queue.empty() ? s.pending.erase(it) : std::next(it);
  }
  s.blocks[id].event_count = 0;
  s.free_block(id);
}

void CachingAllocator::load_state(const std::vector<SegmentInfo>& segments) { state_->load_state(segments); }
void CachingAllocator::empty_cache() { state_->release_cached_blocks(); }
void CachingAllocator::set_memory_fraction(double fraction) { state_->set_memory_fraction(fraction); }
void CachingAllocator::update_settings(std::string_view settings) {
  state_->config = AllocatorConfig::parse(settings, *state_->profile, &state_->config);
}

const DeviceStats& CachingAllocator::stats() const { return state_->stats; }
void CachingAllocator::reset_peak_stats() { state_->stats.reset_peak(); }
void CachingAllocator::reset_accumulated_stats() { state_->stats.reset_accumulated(); }
Snapshot CachingAllocator::snapshot() {
  Snapshot out = state_->snapshot();
  std::uint64_t active = 0;
  for (const SegmentInfo& segment : out.segments) active += segment.active_size;
  state_->record(TraceAction::kSnapshot, 0, active, 0);
  return out;
}
std::vector<SegmentInfo> CachingAllocator::segments() const { return state_->snapshot().segments; }
void CachingAllocator::set_trace_sink(std::vector<TraceEvent>* sink) {
  state_->trace = sink;
  state_->buffer = nullptr;
}
void CachingAllocator::set_trace_sink(TraceBuffer* sink) {
  state_->buffer = sink;
  state_->trace = nullptr;
}
void CachingAllocator::set_time_us(std::int64_t time_us) { state_->time_us = time_us; }
const OomInfo& CachingAllocator::last_oom() const { return state_->last_oom; }
bool CachingAllocator::would_reclaim(std::uint64_t size, StreamId stream) const {
  return state_->would_reclaim(size, stream);
}
FragmentationInfo CachingAllocator::fragmentation() const { return state_->fragmentation(); }

std::optional<std::uint64_t> CachingAllocator::memory_limit() const {
  if (!state_->set_fraction) return std::nullopt;
  return state_->allowed_memory_maximum;
}

std::uint64_t CachingAllocator::block_size(std::uint64_t ptr) const {
  return state_->blocks[state_->find_active(ptr, "block_size")].size;
}
std::uint64_t CachingAllocator::size_if_freed(std::uint64_t ptr) const {
  const State& s = *state_;
  const std::uint32_t id = s.find_active(ptr, "size_if_freed");
  const Block& b = s.blocks[id];
  std::uint64_t size = b.size;
  for (const std::uint32_t neighbour : {b.prev, b.next}) {
    if (s.merges_with(id, neighbour)) size += s.blocks[neighbour].size;
  }
  return size;
}
bool CachingAllocator::is_live(std::uint64_t ptr) const {
  const std::uint32_t id = state_->active.find(ptr);
  return id != AddressMap::kMissing && state_->blocks[id].allocated;
}
bool CachingAllocator::uses_expandable_segments() const { return state_->expandable_segments_enabled(); }
const AllocatorConfig& CachingAllocator::config() const { return state_->config; }
const VersionProfile& CachingAllocator::profile() const { return *state_->profile; }
const Device& CachingAllocator::device() const { return *state_->device; }
void CachingAllocator::check_invariants() const { state_->check_invariants(); }

}  // namespace offsim::sim
