// Replay of a trace's requests on the coarse cudaMallocAsync model (AsyncPoolAllocator), for recordings made
// with backend:cudaMallocAsync (ComfyUI's default) and for `--alloc-conf backend:cudaMallocAsync` what-ifs.
// PyTorch cannot record a trace under that backend (CUDAMallocAsyncAllocator::recordHistory refuses), so the
// recorded segment events, if any, come from the native allocator: nothing is compared, and the result is
// labelled coarse. Internal to sim/ (replay.cpp dispatches here).
#pragma once

#include "offsim/sim/replay.hpp"

namespace offsim::sim {

/// `options.capacity` must be resolved (non-zero). Throws what AsyncPoolAllocator throws for a bad request.
ReplayResult replay_on_async_pool(const ReplayInput& input, const ReplayOptions& options);

}  // namespace offsim::sim
