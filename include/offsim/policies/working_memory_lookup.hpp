// A stage's working memory for a workload, when the caller names the workload instead of a trace (the Python
// route's stand-in stages): offsim's strongest trace for it, in DESIGN.md's order of provenance.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "offsim/policies/scenario.hpp"
#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies {

/// The first of: a published measurement of exactly this workload (traces/published/, as a stage trace that
/// reproduces the published peak); a GPU-recorded trace (traces/gpu/index.tsv); a CPU-recorded one
/// (traces/cpu/index.tsv, with the kernels of the backend: memory-efficient attention and implicit-GEMM
/// convolutions on CUDA, math attention and column-buffer convolutions on ROCm). Each keeps its provenance
/// (WorkingMemory::label()). nullopt when none matches; `why_none` then says what was looked for and where.
/// Tiled, batched, multi-frame and memory-optimized workloads match nothing (no trace records one).
std::optional<WorkingMemory> find_working_memory(const std::filesystem::path& root, const VaeWorkload& workload,
                                                 std::string* why_none = nullptr);

}  // namespace offsim::policies
