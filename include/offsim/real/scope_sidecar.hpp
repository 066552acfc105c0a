// The scope sidecar of a recorded trace: offsim's trace format (sim/trace_file.hpp) carries events and
// provenance but no names, so `offsim record` writes beside each TRACE a TRACE.scopes.json that names the
// module and kernel every event belongs to (the per-op structure the CUDA rewrite works on):
//   {"format": "offsim-scope-sidecar", "format_version": 1, "trace_events": N, "summary": {...},
//    "scopes": [{"name", "parent", "kernel"?}, ...], "event_scopes": [scope index of trace event i, ...]}
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/recording.hpp"

namespace offsim::real {

/// "<trace path>.scopes.json".
std::string scope_sidecar_path(const std::string& trace_path);

/// The document described above; `summary` is copied in as is.
nlohmann::json scope_sidecar_json(const AnnotatedTrace& trace, const Recording& recording,
                                  const nlohmann::json& summary);

/// Writes it atomically (sim::AtomicOutputFile). Throws offsim::Error naming the path on failure.
void write_scope_sidecar(const std::string& path, const AnnotatedTrace& trace, const Recording& recording,
                         const nlohmann::json& summary);

}  // namespace offsim::real
