// One step of a random allocator workload, and how to apply it to any allocator with CachingAllocator's
// interface. Steps name live allocations by index (modulo the number live), so that a shrunk sequence
// stays meaningful when earlier steps disappear or start failing.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim::test {

struct AllocatorOp {
  enum class Kind : std::uint8_t {
    kMalloc,              // malloc(size, stream)
    kFree,                // free(live[target])
    kRecordStream,        // record_stream(live[target], stream)
    kMarkStreamComplete,  // mark_stream_complete(stream)
    kEmptyCache,          // empty_cache()
    kSetMemoryFraction,   // set_memory_fraction(fraction)
    kUpdateSettings,      // update_settings(settings)
    kCompletePendingFree, // complete_pending_free(pending[target]), pending blocks in address order
  };
  Kind kind = Kind::kMalloc;
  std::uint64_t size = 0;
  StreamId stream = 0;
  std::uint32_t target = 0;
  double fraction = 1.0;
  std::string settings;

  static AllocatorOp malloc(std::uint64_t size, StreamId stream = 0) { return {Kind::kMalloc, size, stream, 0, 1.0, {}}; }
  static AllocatorOp free(std::uint32_t target) { return {Kind::kFree, 0, 0, target, 1.0, {}}; }
  static AllocatorOp record_stream(std::uint32_t target, StreamId stream) {
    return {Kind::kRecordStream, 0, stream, target, 1.0, {}};
  }
  static AllocatorOp mark_stream_complete(StreamId stream) {
    return {Kind::kMarkStreamComplete, 0, stream, 0, 1.0, {}};
  }
  static AllocatorOp empty_cache() { return {Kind::kEmptyCache, 0, 0, 0, 1.0, {}}; }
  static AllocatorOp set_memory_fraction(double fraction) {
    return {Kind::kSetMemoryFraction, 0, 0, 0, fraction, {}};
  }
  static AllocatorOp complete_pending_free(std::uint32_t target) {
    return {Kind::kCompletePendingFree, 0, 0, target, 1.0, {}};
  }
  static AllocatorOp update_settings(std::string settings) {
    return {Kind::kUpdateSettings, 0, 0, 0, 1.0, std::move(settings)};
  }
};

/// "malloc(20971520, s1)", "free(live[3])", ... (RapidCheck prints counterexamples with this).
std::string to_string(const AllocatorOp& op);
std::ostream& operator<<(std::ostream& os, const AllocatorOp& op);

/// The allocations a workload holds, in allocation order.
struct LiveAllocations {
  std::vector<std::uint64_t> ptrs;

  std::optional<std::size_t> pick(std::uint32_t target) const {
    if (ptrs.empty()) return std::nullopt;
    return target % ptrs.size();
  }
};

/// What one step did: the pointer malloc returned (nullopt on OOM), or the pointer a free/record
/// applied to, for the log printed with a counterexample.
struct OpOutcome {
  bool skipped = false;  // free / record_stream / complete_pending_free with nothing to act on
  std::optional<std::uint64_t> ptr;
  std::string describe(const AllocatorOp& op) const;
};

template <typename Allocator>
OpOutcome apply_op(Allocator& alloc, LiveAllocations& live, const AllocatorOp& op) {
  OpOutcome out;
  switch (op.kind) {
    case AllocatorOp::Kind::kMalloc:
      out.ptr = alloc.malloc(op.size, op.stream);
      if (out.ptr) live.ptrs.push_back(*out.ptr);
      break;
    case AllocatorOp::Kind::kFree:
      if (auto k = live.pick(op.target)) {
        out.ptr = live.ptrs[*k];
        alloc.free(*out.ptr);
        live.ptrs.erase(live.ptrs.begin() + static_cast<std::ptrdiff_t>(*k));
      } else {
        out.skipped = true;
      }
      break;
    case AllocatorOp::Kind::kRecordStream:
      if (auto k = live.pick(op.target)) {
        out.ptr = live.ptrs[*k];
        alloc.record_stream(*out.ptr, op.stream);
      } else {
        out.skipped = true;
      }
      break;
    case AllocatorOp::Kind::kMarkStreamComplete:
      alloc.mark_stream_complete(op.stream);
      break;
    case AllocatorOp::Kind::kEmptyCache:
      alloc.empty_cache();
      break;
    case AllocatorOp::Kind::kSetMemoryFraction:
      alloc.set_memory_fraction(op.fraction);
      break;
    case AllocatorOp::Kind::kUpdateSettings:
      alloc.update_settings(op.settings);
      break;
    case AllocatorOp::Kind::kCompletePendingFree: {
      // Replay's use: the recorded free_completed of a block freed with recorded streams.
      std::vector<std::uint64_t> pending;
      for (const SegmentInfo& seg : alloc.segments()) {
        for (const BlockInfo& b : seg.blocks) {
          if (b.state == BlockState::kActivePendingFree) pending.push_back(b.address);
        }
      }
      if (pending.empty()) {
        out.skipped = true;
      } else {
        out.ptr = pending[op.target % pending.size()];
        alloc.complete_pending_free(*out.ptr);
      }
      break;
    }
  }
  return out;
}

}  // namespace offsim::sim::test
