// A simulated run as a Chrome trace (JSON trace-event format) that ui.perfetto.dev and chrome://tracing
// open: counter tracks for reserved and allocated bytes and the device capacity, one slice per stage step
// (with E, F_P, T and the provenance of T as arguments), instant events for evictions and unhandled OOMs.
// Time is simulated: 1 µs on the trace's clock is one allocator call.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "offsim/policies/runner.hpp"
#include "offsim/policies/scenario.hpp"

namespace offsim::report {

nlohmann::json perfetto_trace(const policies::RunRecord& run, const policies::Scenario& scenario);

/// Writes perfetto_trace() atomically.
void write_perfetto_trace(const std::filesystem::path& path, const policies::RunRecord& run, const policies::Scenario& scenario);

}  // namespace offsim::report
