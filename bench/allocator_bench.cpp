// Allocator and replay throughput (DESIGN.md section 4: >= 20 M allocator events/s on one core, and a
// cost per event that does not grow with the length of the run). Workloads are generated before timing:
//   inference: many short-lived small activations (< 1 MiB), medium tensors, a few large ones, lifetimes
//              mostly stack-like (freed in reverse), as a denoise loop allocates;
//   training:  iterations of a forward pass that keeps its activations, a backward pass that frees them in
//              reverse while allocating gradients, and an optimizer step; a long-lived parameter set;
//   recorded VAE: the requests of real model runs, the CPU-recorded VAE decodes and encodes in traces/cpu
//              (diffusers' SD1.5, SDXL, FLUX.1 and Qwen-Image VAEs: real tensor sizes and lifetimes), one
//              after another as a pipeline runs them. BM_Replay_RecordedVae/7000000 (1.05e7 events) is the
//              "large real trace" of DESIGN.md section 4's >= 20 M events/s target. The random mixes above
//              are stress cases: harder on branch prediction than a model, which repeats its requests.
// BM_Allocator_* drives CachingAllocator directly (statistics and trace emission on: every event is
// appended to a trace vector that is cleared in chunks); BM_Replay_* replays a recorded trace of the same
// workload through sim::replay (fidelity comparison on). items_per_second = allocator events (alloc or
// free requests) per second, per CPU second of this process.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <unordered_map>
#include <vector>

#include "offsim/sim/caching_allocator.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/trace_file.hpp"

namespace {

using namespace offsim;
using namespace offsim::sim;

struct Op {
  bool alloc;
  std::uint32_t slot;   // which live tensor
  std::uint64_t size;   // alloc only
};

std::vector<Op> inference_ops(std::size_t events, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Op> ops;
  ops.reserve(events);
  std::vector<std::uint32_t> stack;
  std::vector<std::uint32_t> free_slots;
  std::uint32_t next_slot = 0;
  while (ops.size() < events) {
    const bool grow = stack.empty() || (stack.size() < 400 && rng() % 100 < 52);
    if (grow) {
      const auto kind = rng() % 100;
      std::uint64_t size;
      if (kind < 70) size = 512 + rng() % (1 * MiB);                 // small activations
      else if (kind < 97) size = 1 * MiB + rng() % (40 * MiB);       // medium
      else size = 64 * MiB + rng() % (512 * MiB);                    // large
      std::uint32_t slot;
      if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
      } else {
        slot = next_slot++;
      }
      ops.push_back({true, slot, size});
      stack.push_back(slot);
    } else {
      // Mostly last-in first-out, sometimes an older tensor.
      const std::size_t k = rng() % 8 == 0 ? rng() % stack.size() : stack.size() - 1;
      const std::uint32_t slot = stack[k];
      stack.erase(stack.begin() + static_cast<std::ptrdiff_t>(k));
      ops.push_back({false, slot, 0});
      free_slots.push_back(slot);
    }
  }
  return ops;
}

std::vector<Op> training_ops(std::size_t events, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<Op> ops;
  ops.reserve(events);
  std::uint32_t next_slot = 0;
  std::vector<std::uint32_t> free_slots;
  auto take = [&] {
    if (!free_slots.empty()) {
      const std::uint32_t s = free_slots.back();
      free_slots.pop_back();
      return s;
    }
    return next_slot++;
  };
  // Long-lived parameters.
  std::vector<std::uint64_t> layer_sizes;
  for (int l = 0; l < 48; ++l) layer_sizes.push_back(512 * 1024 + rng() % (24 * MiB));
  for (std::uint64_t size : layer_sizes) {
    if (ops.size() >= events) break;
    ops.push_back({true, take(), size});
  }
  while (ops.size() < events) {
    std::vector<std::uint32_t> activations;
    for (std::uint64_t size : layer_sizes) {  // forward: keep activations
      const std::uint32_t s = take();
      ops.push_back({true, s, size / 2 + rng() % 4096});
      activations.push_back(s);
      const std::uint32_t scratch = take();  // a temporary freed at once
      ops.push_back({true, scratch, 4096 + rng() % (2 * MiB)});
      ops.push_back({false, scratch, 0});
      free_slots.push_back(scratch);
    }
    for (auto it = activations.rbegin(); it != activations.rend(); ++it) {  // backward
      const std::uint32_t grad = take();
      ops.push_back({true, grad, 1 * MiB + rng() % (8 * MiB)});
      ops.push_back({false, *it, 0});
      free_slots.push_back(*it);
      ops.push_back({false, grad, 0});
      free_slots.push_back(grad);
    }
  }
  ops.resize(events);
  return ops;
}

// The request stream of one recording: slots are numbered per recording; what is still live at its end
// (its output) is freed there, as a pipeline drops a decoded image once it is saved.
std::vector<Op> recording_ops(const std::filesystem::path& path) {
  const Trace trace = read_trace_file(path);
  std::unordered_map<std::uint64_t, std::uint32_t> slot_of;
  std::vector<Op> ops;
  std::uint32_t next_slot = 0;
  for (const TraceEvent& e : trace.events) {
    if (e.action == TraceAction::kAlloc) {
      slot_of[e.addr] = next_slot;
      ops.push_back({true, next_slot++, e.size});
    } else if (e.action == TraceAction::kFreeRequested) {
      const auto it = slot_of.find(e.addr);
      if (it == slot_of.end()) continue;  // allocated before the recording (none in these)
      ops.push_back({false, it->second, 0});
      slot_of.erase(it);
    }
  }
  std::vector<std::uint32_t> leftover;
  for (const auto& [addr, slot] : slot_of) leftover.push_back(slot);
  std::sort(leftover.begin(), leftover.end());
  for (std::uint32_t slot : leftover) ops.push_back({false, slot, 0});
  return ops;
}

std::vector<Op> recorded_vae_ops(std::size_t events, unsigned) {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(OFFSIM_SOURCE_DIR "/traces/cpu")) {
    if (entry.path().extension() == ".otrace") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<Op>> recordings;
  for (const auto& path : paths) recordings.push_back(recording_ops(path));
  std::vector<Op> ops;
  ops.reserve(events);
  // Slots of consecutive passes must not collide while a pass runs: each pass frees all of its own.
  for (std::size_t pass = 0; ops.size() < events; ++pass) {
    for (const Op& op : recordings[pass % recordings.size()]) ops.push_back(op);
  }
  ops.resize(events);
  return ops;
}

// One op; the free of a tensor whose allocation failed is skipped.
void apply(CachingAllocator& a, const Op& op, std::vector<std::uint64_t>& ptrs) {
  if (op.slot >= ptrs.size()) ptrs.resize(op.slot + 1, 0);
  if (op.alloc) {
    ptrs[op.slot] = a.malloc(op.size).value_or(0);
  } else if (ptrs[op.slot] != 0) {
    a.free(ptrs[op.slot]);
    ptrs[op.slot] = 0;
  }
}

// Applies ops. Returns events executed.
std::size_t drive(CachingAllocator& a, const std::vector<Op>& ops, std::vector<std::uint64_t>& ptrs,
                  std::vector<TraceEvent>& trace) {
  std::size_t done = 0;
  for (const Op& op : ops) {
    apply(a, op, ptrs);
    ++done;
    if (trace.size() > (1u << 16)) trace.clear();  // emission stays on; the sink is drained in chunks
  }
  return done;
}

void run_allocator(benchmark::State& state, std::vector<Op> (*make)(std::size_t, unsigned)) {
  const std::vector<Op> ops = make(static_cast<std::size_t>(state.range(0)), 42);
  std::size_t events = 0;
  for (auto _ : state) {
    Device device({"bench", Platform::kCuda, 80 * GiB});
    CachingAllocator a(device, AllocatorConfig::parse(""));
    std::vector<TraceEvent> trace;
    trace.reserve(1u << 17);
    a.set_trace_sink(&trace);
    std::vector<std::uint64_t> ptrs;
    events += drive(a, ops, ptrs, trace);
    benchmark::DoNotOptimize(a.stats().reserved_bytes[0].peak);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
}

void BM_Allocator_Inference(benchmark::State& state) { run_allocator(state, inference_ops); }
void BM_Allocator_Training(benchmark::State& state) { run_allocator(state, training_ops); }
BENCHMARK(BM_Allocator_Inference)->Arg(100'000)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(BM_Allocator_Training)->Arg(100'000)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

// A recorded trace of the workload: what the simulator itself records, so replay must match it exactly.
Trace record(const std::vector<Op>& ops) {
  Device device({"recorder", Platform::kCuda, 80 * GiB});
  CachingAllocator a(device, AllocatorConfig::parse(""), VersionProfile::newest(), EventCompletion::kExplicit);
  Trace trace;
  trace.metadata.device_total_bytes = 80 * GiB;
  trace.events.reserve(ops.size() * 2 + ops.size() / 4);
  a.set_trace_sink(&trace.events);
  std::vector<std::uint64_t> ptrs;
  for (const Op& op : ops) apply(a, op, ptrs);
  return trace;
}

// Arguments are requests; the trace holds ~1.5 events per request (segment events, free_completed), so
// 7e6 requests replay a trace of more than 1e7 events.
void run_replay(benchmark::State& state, std::vector<Op> (*make)(std::size_t, unsigned)) {
  const Trace trace = record(make(static_cast<std::size_t>(state.range(0)), 7));
  std::size_t events = 0;
  for (auto _ : state) {
    const ReplayResult r = replay(trace, {});
    if (r.events_matched != r.events_total) state.SkipWithError("replay diverged from its own recording");
    events += trace.events.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.counters["trace_events"] = static_cast<double>(trace.events.size());
}

void BM_Replay_Inference(benchmark::State& state) { run_replay(state, inference_ops); }
void BM_Replay_Training(benchmark::State& state) { run_replay(state, training_ops); }
void BM_Replay_RecordedVae(benchmark::State& state) { run_replay(state, recorded_vae_ops); }
BENCHMARK(BM_Replay_Inference)->Arg(100'000)->Arg(1'000'000)->Arg(7'000'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(BM_Replay_Training)->Arg(100'000)->Arg(1'000'000)->Arg(7'000'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(BM_Replay_RecordedVae)->Arg(100'000)->Arg(1'000'000)->Arg(7'000'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

}  // namespace
