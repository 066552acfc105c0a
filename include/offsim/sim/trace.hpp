// One in-memory trace: the allocator events of one device with the state before the first event and
// where the data came from. Every reader (snapshot pickle, snapshot JSON, offsim's own format) produces
// this and every writer consumes it; streaming readers (trace_file.hpp) yield the same events one at a
// time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/sim/snapshot.hpp"
#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

/// Where the numbers of a trace come from, strongest first (DESIGN.md section 2, "Where T comes from").
enum class ProvenanceKind : std::uint8_t {
  kGpuMeasured,            // recorded on a real GPU (traces/ from GPU runs)
  kPublishedMeasurement,   // imported from a published measurement, with its citation
  kCpuRecordedSimulated,   // libtorch CPU recording replayed through the simulator: structure only
  kSynthetic,              // generated; tests only, labelled synthetic wherever shown
};
std::string_view to_string(ProvenanceKind kind);  // "gpu-measured", "published", "cpu-recorded", "synthetic"
std::optional<ProvenanceKind> parse_provenance_kind(std::string_view text);

struct Provenance {
  ProvenanceKind kind = ProvenanceKind::kSynthetic;
  std::string source;         // file, URL or command it was made from
  std::string citation;       // for published measurements: repo, PR/issue, quote location
  std::string gpu;            // e.g. "NVIDIA H100 80GB HBM3", "AMD Radeon Pro W7900 (ROCm)"
  std::string torch_version;  // e.g. "2.11.0+cu130"
  std::string driver;
  std::string command;        // how it was produced
  std::string date;           // ISO 8601
  std::string license;        // where it came from outside this project
  std::string notes;          // rewrites applied, caveats
};

struct TraceMetadata {
  Provenance provenance;
  std::string alloc_conf;         // PYTORCH_CUDA_ALLOC_CONF in effect when recorded
  std::uint64_t device_total_bytes = 0;  // 0 when unknown
  int device = 0;                 // which device's trace this is
  /// The recording is partial: PyTorch's ring buffer dropped earlier events, so `initial_segments` was
  /// reconstructed by rewinding the final state through the recorded events (as
  /// torch/utils/viz/process_alloc_data.js does).
  bool reconstructed_initial_state = false;
  std::string label;              // short human name
};

struct Trace {
  TraceMetadata metadata;
  /// Allocator state before the first event (empty for a recording that started from a fresh
  /// allocator). Blocks that are allocated here must be freed by later events or still live at the end.
  std::vector<SegmentInfo> initial_segments;
  /// Allocator state after the last event when the source recorded one (snapshot `segments`).
  std::vector<SegmentInfo> final_segments;
  std::vector<TraceEvent> events;
};

}  // namespace offsim::sim
