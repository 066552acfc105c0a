// One allocator trace entry, in PyTorch's vocabulary (torch.cuda.memory._snapshot()["device_traces"]).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace offsim::sim {

/// PyTorch refuses a request of 1 EiB or more before any bookkeeping (CUDACachingAllocator.cpp, "Tried to
/// allocate more than 1EB memory"), so no recorded trace holds one: trace readers refuse such an alloc
/// with the file and the entry instead of letting a replay stop on it.
inline constexpr std::uint64_t kMaxTraceRequest = std::uint64_t{1} << 60;

/// Raw CUDA stream handle as PyTorch records it; 0 is the default stream.
using StreamId = std::uint64_t;

enum class TraceAction : std::uint8_t {
  kAlloc,          // addr = block address, size = requested bytes
  kFreeRequested,  // free() called; size = block.requested_size
  kFreeCompleted,  // block really reusable (after cross-stream events); size = requested_size
  kSegmentAlloc,   // cudaMalloc of a segment; size = segment bytes
  kSegmentFree,    // cudaFree of a whole segment
  kSegmentMap,     // expandable segments: pages mapped at addr
  kSegmentUnmap,   // expandable segments: pages unmapped
  kOom,            // allocation failed; addr = device free bytes, size = rounded request
  kSnapshot,       // a snapshot was taken; size = sum of active bytes
};
inline constexpr int kTraceActionCount = 9;

/// PyTorch's spelling ("alloc", "free_requested", ...).
std::string_view to_string(TraceAction action);
std::optional<TraceAction> parse_trace_action(std::string_view name);

/// Flags an application attaches to an alloc request (not part of PyTorch's record).
enum TraceFlags : std::uint8_t {
  kTraceFlagNone = 0,
  /// The caller catches an OOM for this request and recovers (cuDNN workspace fallback, tiled-decode
  /// retry): its failure is a *handled* OOM, not a failure of the run.
  kTraceFlagFallible = 1,
};

struct TraceEvent {
  std::uint64_t addr = 0;  // for kOom: the device's free bytes (PyTorch stores device_free here)
  std::uint64_t size = 0;
  StreamId stream = 0;
  std::int64_t time_us = 0;
  TraceAction action = TraceAction::kAlloc;
  std::uint8_t flags = kTraceFlagNone;

  friend bool operator==(const TraceEvent&, const TraceEvent&) = default;
};

}  // namespace offsim::sim
