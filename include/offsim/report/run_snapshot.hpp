// A simulated run as a PyTorch memory snapshot (what torch.cuda.memory._dump_snapshot writes), so that
// PyTorch's memory_viz (https://pytorch.org/memory_viz, or torch/utils/viz) opens it: the run's allocator
// events as device_traces[0] (time_us = allocator call index) and the segments after the last event. The
// run starts from an empty allocator, so every block in the final segments was allocated by a recorded event.
#pragma once

#include <filesystem>

#include "offsim/policies/runner.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::report {

/// `run` must come from run_policy with RunOptions::keep_trace (throws ConfigError otherwise: an empty
/// snapshot would look like a run that allocated nothing).
sim::Trace run_trace(const policies::RunRecord& run, const policies::Scenario& scenario);

/// Writes run_trace() as a snapshot pickle, atomically.
void write_run_snapshot(const std::filesystem::path& path, const policies::RunRecord& run, const policies::Scenario& scenario);

}  // namespace offsim::report
