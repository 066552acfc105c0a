#include "sim/support/trace_generator.hpp"

#include <iterator>
#include <map>
#include <random>
#include <vector>

namespace offsim::test {

namespace {

using sim::BlockInfo;
using sim::BlockState;
using sim::SegmentInfo;
using sim::StreamId;
using sim::TraceAction;
using sim::TraceEvent;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kSmallSegment = 2 * kMiB;
constexpr std::uint64_t kLargeSegment = 20 * kMiB;
constexpr std::uint64_t kExpandableBase = 0x7e0000000000;
constexpr StreamId kSideStream = 0x55d0c0ffee00;

struct Block {
  std::uint64_t size;
  std::uint64_t requested;
  bool pending;
};
struct Segment {
  std::uint64_t size;
  StreamId stream;
  bool small;
  bool expandable;
  std::map<std::uint64_t, Block> blocks;
};

class Model {
 public:
  explicit Model(const GeneratedTraceOptions& options) : options_(options), random_(options.seed) {}

  void step(std::vector<TraceEvent>& out) {
    time_ += pick(1, 1000);
    // Allocation wins while few blocks are live and loses once many are, so the live set stays near a
    // hundred blocks however long the trace is (like a training loop's steady state).
    const auto roll = pick(0, 99);
    if (roll < (live_blocks() < 100 ? 55 : 35)) {
      alloc(out);
    } else if (roll < 75) {
      free(out);
    } else if (roll < 83) {
      complete_pending(out);
    } else if (roll < 91) {
      release_empty(out);
    } else if (roll < 96) {
      unmap_tail(out);
    } else if (roll < 98) {
      emit(out, TraceAction::kOom, pick(0, 8ULL << 30U), pick(1, 1ULL << 34U), 0);
    } else {
      std::uint64_t active = 0;
      for (const auto& [address, segment] : segments_) {
        for (const auto& [block_address, block] : segment.blocks) active += block.size;
      }
      emit(out, TraceAction::kSnapshot, 0, active, 0);
    }
  }

  std::vector<SegmentInfo> materialize() const {
    std::vector<SegmentInfo> result;
    for (const auto& [address, segment] : segments_) {
      SegmentInfo info;
      info.device = options_.device;
      info.address = address;
      info.total_size = segment.size;
      info.stream = segment.stream;
      info.is_small = segment.small;
      info.is_expandable = segment.expandable;
      std::uint64_t cursor = address;
      for (const auto& [block_address, block] : segment.blocks) {
        if (block_address > cursor) info.blocks.push_back(BlockInfo{cursor, block_address - cursor, 0, BlockState::kInactive});
        info.blocks.push_back(BlockInfo{block_address, block.size, block.requested,
                                        block.pending ? BlockState::kActivePendingFree : BlockState::kActiveAllocated});
        info.active_size += block.size;
        if (!block.pending) info.allocated_size += block.size;
        info.requested_size += block.requested;
        cursor = block_address + block.size;
      }
      if (cursor < address + segment.size) {
        info.blocks.push_back(BlockInfo{cursor, address + segment.size - cursor, 0, BlockState::kInactive});
      }
      result.push_back(std::move(info));
    }
    return result;
  }

 private:
  std::size_t live_blocks() const {
    std::size_t count = 0;
    for (const auto& [address, segment] : segments_) count += segment.blocks.size();
    return count;
  }

  std::uint64_t pick(std::uint64_t low, std::uint64_t high) {
    return std::uniform_int_distribution<std::uint64_t>(low, high)(random_);
  }

  void emit(std::vector<TraceEvent>& out, TraceAction action, std::uint64_t addr, std::uint64_t size, StreamId stream,
            std::uint8_t flags = sim::kTraceFlagNone) {
    out.push_back(TraceEvent{addr, size, stream, time_, action, flags});
  }

  // First gap of at least `bytes` in a segment of this pool and stream.
  bool find_gap(bool small, StreamId stream, std::uint64_t bytes, std::uint64_t& segment_address, std::uint64_t& at) {
    for (auto& [address, segment] : segments_) {
      if (segment.small != small || segment.stream != stream) continue;
      std::uint64_t cursor = address;
      for (const auto& [block_address, block] : segment.blocks) {
        if (block_address - cursor >= bytes) break;
        cursor = block_address + block.size;
      }
      if (address + segment.size - cursor >= bytes) {
        // The gap found is either before some block or at the tail; check the chosen cursor fits.
        auto next = segment.blocks.lower_bound(cursor);
        const std::uint64_t limit = next == segment.blocks.end() ? address + segment.size : next->first;
        if (limit - cursor >= bytes) {
          segment_address = address;
          at = cursor;
          return true;
        }
      }
    }
    return false;
  }

  void alloc(std::vector<TraceEvent>& out) {
    const bool small = pick(0, 9) < 7;
    std::uint64_t requested = small ? pick(1, kMiB) : pick(kMiB + 1, 64 * kMiB);
    std::uint64_t rounded = std::max<std::uint64_t>(512, (requested + 511) / 512 * 512);
    const StreamId stream = (!small && options_.expandable) || pick(0, 4) != 0 ? 0 : kSideStream;
    std::uint64_t segment_address = 0;
    std::uint64_t at = 0;
    if (!find_gap(small, stream, rounded, segment_address, at)) {
      if (!small && stream == 0 && options_.expandable && pick(0, 1) == 0) {
        // Grow the expandable reservation at its end by whole 20 MiB pages.
        const std::uint64_t pages = (rounded + kLargeSegment - 1) / kLargeSegment;
        const std::uint64_t start = kExpandableBase + expandable_mapped_;
        emit(out, TraceAction::kSegmentMap, start, pages * kLargeSegment, 0);
        expandable_mapped_ += pages * kLargeSegment;
        auto& segment = segments_[kExpandableBase];
        segment.size = expandable_mapped_;
        segment.stream = 0;
        segment.small = false;
        segment.expandable = true;
      } else {
        const std::uint64_t size =
            small ? kSmallSegment : (rounded <= 10 * kMiB ? kLargeSegment : (rounded + 2 * kMiB - 1) / (2 * kMiB) * (2 * kMiB));
        const std::uint64_t address = next_address_;
        next_address_ += size + 4 * kMiB;
        emit(out, TraceAction::kSegmentAlloc, address, size, stream);
        segments_[address] = Segment{size, stream, small, false, {}};
      }
      if (!find_gap(small, stream, rounded, segment_address, at)) return;  // the new room is elsewhere
    }
    Segment& segment = segments_[segment_address];
    if (!segment.small && !options_.expandable) {
      // PyTorch leaves a remainder of at most 1 MiB with a large-pool block (should_split). A block whose
      // remainder nothing recorded bounds cannot be rewound exactly, so the generator asks for the whole
      // gap instead: the trace stays consistent with the allocator's rules and rewinds exactly.
      const auto next = segment.blocks.lower_bound(at);
      const std::uint64_t limit = next == segment.blocks.end() ? segment_address + segment.size : next->first;
      if (limit - at - rounded <= kMiB) {
        requested = limit - at;
        rounded = requested;
      }
    }
    segment.blocks[at] = Block{rounded, requested, false};
    emit(out, TraceAction::kAlloc, at, requested, stream, pick(0, 19) == 0 ? sim::kTraceFlagFallible : sim::kTraceFlagNone);
  }

  template <typename Predicate>
  bool pick_block(Predicate predicate, std::uint64_t& segment_address, std::uint64_t& block_address) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> candidates;
    for (const auto& [address, segment] : segments_) {
      for (const auto& [at, block] : segment.blocks) {
        if (predicate(block)) candidates.emplace_back(address, at);
      }
    }
    if (candidates.empty()) return false;
    std::tie(segment_address, block_address) = candidates[pick(0, candidates.size() - 1)];
    return true;
  }

  void free(std::vector<TraceEvent>& out) {
    std::uint64_t segment_address = 0;
    std::uint64_t at = 0;
    if (!pick_block([](const Block& b) { return !b.pending; }, segment_address, at)) return;
    Segment& segment = segments_[segment_address];
    Block& block = segment.blocks[at];
    emit(out, TraceAction::kFreeRequested, at, block.requested, segment.stream);
    if (pick(0, 3) != 0) {
      emit(out, TraceAction::kFreeCompleted, at, block.requested, segment.stream);
      segment.blocks.erase(at);
    } else {
      block.pending = true;
    }
  }

  void complete_pending(std::vector<TraceEvent>& out) {
    std::uint64_t segment_address = 0;
    std::uint64_t at = 0;
    if (!pick_block([](const Block& b) { return b.pending; }, segment_address, at)) return;
    Segment& segment = segments_[segment_address];
    emit(out, TraceAction::kFreeCompleted, at, segment.blocks[at].requested, segment.stream);
    segment.blocks.erase(at);
  }

  void release_empty(std::vector<TraceEvent>& out) {
    for (auto it = segments_.begin(); it != segments_.end(); ++it) {
      if (!it->second.expandable && it->second.blocks.empty()) {
        emit(out, TraceAction::kSegmentFree, it->first, it->second.size, it->second.stream);
        segments_.erase(it);
        return;
      }
    }
  }

  void unmap_tail(std::vector<TraceEvent>& out) {
    if (expandable_mapped_ == 0) return;
    Segment& segment = segments_[kExpandableBase];
    const std::uint64_t end = kExpandableBase + expandable_mapped_;
    const std::uint64_t page_start = end - kLargeSegment;
    if (!segment.blocks.empty()) {
      const auto& [last_address, last] = *segment.blocks.rbegin();
      if (last_address + last.size > page_start) return;
    }
    emit(out, TraceAction::kSegmentUnmap, page_start, kLargeSegment, 0);
    expandable_mapped_ -= kLargeSegment;
    if (expandable_mapped_ == 0) {
      segments_.erase(kExpandableBase);
    } else {
      segment.size = expandable_mapped_;
    }
  }

  GeneratedTraceOptions options_;
  std::mt19937_64 random_;
  std::map<std::uint64_t, Segment> segments_;
  std::uint64_t next_address_ = 0x7f0000000000;
  std::uint64_t expandable_mapped_ = 0;
  std::int64_t time_ = 1'700'000'000'000'000;
};

}  // namespace

sim::Trace generate_trace(const GeneratedTraceOptions& options) {
  Model model(options);
  std::vector<TraceEvent> prefix;
  while (prefix.size() < options.dropped_prefix) model.step(prefix);
  sim::Trace trace;
  trace.metadata.device = options.device;
  trace.metadata.label = "generated seed " + std::to_string(options.seed);
  trace.metadata.provenance.kind = sim::ProvenanceKind::kSynthetic;
  trace.metadata.provenance.source = "tests/sim/support/trace_generator.cpp";
  trace.metadata.alloc_conf = options.expandable ? "expandable_segments:True" : "";
  trace.initial_segments = model.materialize();
  while (trace.events.size() < options.events) model.step(trace.events);  // may end a few entries later
  trace.final_segments = model.materialize();
  return trace;
}

}  // namespace offsim::test
