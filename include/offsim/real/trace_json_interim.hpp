// INTERIM trace output. offsim's own trace format (include/offsim/sim/trace_file.hpp, TraceWriter) is being
// written by another engineer; until it lands `offsim record` writes its traces with this function as
// JSON: {"format": "offsim-trace-interim-json", "format_version": 1, "metadata": {...}, "scopes": [...],
// "events": [[action, addr, size, stream, time_us, flags, scope], ...], "summary": {...}}. Replace the
// call site with TraceWriter once it exists; the scope sidecar ("scopes" and each event's scope index) has
// no place in sim::Trace and stays here.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/recording.hpp"

namespace offsim::real {

/// The document described above. `summary` is copied in as is.
nlohmann::json trace_to_interim_json(const AnnotatedTrace& trace, const Recording& recording,
                                     const nlohmann::json& summary);

/// Writes the document atomically (sim::AtomicOutputFile). Throws offsim::Error naming the path on failure.
void write_trace_json_interim(const std::string& path, const AnnotatedTrace& trace, const Recording& recording,
                              const nlohmann::json& summary);

}  // namespace offsim::real
