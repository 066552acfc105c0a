// Trace I/O throughput: writing and reading offsim's .otrace format, PyTorch snapshot pickles and their
// JSON form, on a generated trace of 1e7 events (OFFSIM_TRACE_IO_BENCH_EVENTS overrides), reported as
// bytes_per_second of the file. DESIGN.md section 4: >= 100 MB/s reading offsim's format, and a 1 GB
// trace must not need 10 GB of RAM: every benchmark reports the process's peak RSS so far (peak_rss_MiB);
// the streaming ones run first, so their figure is their own. Throughput is per CPU second of this process
// (user + system, which includes the kernel's copies from the page cache), so that it means the same on
// a shared, loaded machine; the Time column is wall time.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "offsim/sim/snapshot_json.hpp"
#include "offsim/sim/snapshot_pickle.hpp"
#include "offsim/sim/trace_file.hpp"

namespace {

namespace fs = std::filesystem;
using namespace offsim::sim;

std::uint64_t event_count() {
  if (const char* text = std::getenv("OFFSIM_TRACE_IO_BENCH_EVENTS")) return std::strtoull(text, nullptr, 10);
  return 10'000'000;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// A training-loop-like trace generated on the fly (bounded memory): one 4 GiB segment, then requests of
/// 512 B .. 64 MiB in a ring of 4096 slots, each freed (free_requested + free_completed) 64 allocations
/// later, with an oom or a snapshot now and then. The final state is built from the live slots at the end.
class SyntheticSource : public TraceEventSource {
 public:
  explicit SyntheticSource(std::uint64_t events) : events_(events) {
    metadata_.label = "trace_io_bench synthetic";
    metadata_.provenance.kind = ProvenanceKind::kSynthetic;
  }
  const TraceMetadata& metadata() const override { return metadata_; }
  const std::vector<SegmentInfo>& initial_segments() const override { return initial_; }
  const std::vector<SegmentInfo>& final_segments() const override { return final_; }

  bool next(TraceEvent& event) override {
    if (produced_ == events_) {
      if (final_.empty() && events_ > 0) final_ = final_state();
      return false;
    }
    event = make(produced_++);
    return true;
  }

 private:
  static constexpr std::uint64_t kBase = 0x7f0000000000;
  static constexpr std::uint64_t kSlot = 1ULL << 26U;  // 64 MiB: 64 slots = one 4 GiB segment
  static constexpr std::uint64_t kSlots = 64;
  static constexpr std::uint64_t kLag = 32;

  TraceEvent make(std::uint64_t i) {
    time_ += 1 + (i * 7919) % 97;
    if (i == 0) return TraceEvent{kBase, kSlots * kSlot, 0, time_, TraceAction::kSegmentAlloc, kTraceFlagNone};
    // Steady state: per allocation, alloc then (kLag allocations later) free_requested, free_completed.
    const std::uint64_t phase = (i - 1) % 3;
    const std::uint64_t n = (i - 1) / 3;
    if (phase == 0) {
      if (n % 997 == 996) return TraceEvent{1ULL << 30U, 1ULL << 34U, 0, time_, TraceAction::kOom, kTraceFlagNone};
      const std::uint64_t size = 512 + (n * 2654435761ULL) % (kSlot - 512);
      sizes_[n % kSlots] = size;
      live_[n % kSlots] = true;
      return TraceEvent{kBase + (n % kSlots) * kSlot, size, 0, time_, TraceAction::kAlloc, kTraceFlagNone};
    }
    const std::uint64_t victim = (n + kSlots - kLag) % kSlots;
    if (!live_[victim]) return TraceEvent{0, 0, 0, time_, TraceAction::kSnapshot, kTraceFlagNone};
    const TraceAction action = phase == 1 ? TraceAction::kFreeRequested : TraceAction::kFreeCompleted;
    pending_[victim] = phase == 1;
    if (phase == 2) live_[victim] = false;
    return TraceEvent{kBase + victim * kSlot, sizes_[victim], 0, time_, action, kTraceFlagNone};
  }

  std::vector<SegmentInfo> final_state() const {
    SegmentInfo segment;
    segment.address = kBase;
    segment.total_size = kSlots * kSlot;
    std::uint64_t cursor = kBase;
    for (std::uint64_t slot = 0; slot < kSlots; ++slot) {
      if (!live_[slot]) continue;
      const std::uint64_t address = kBase + slot * kSlot;
      const std::uint64_t size = (sizes_[slot] + 511) / 512 * 512;
      if (address > cursor) segment.blocks.push_back(BlockInfo{cursor, address - cursor, 0, BlockState::kInactive});
      segment.blocks.push_back(BlockInfo{address, size, sizes_[slot],
                                         pending_[slot] ? BlockState::kActivePendingFree : BlockState::kActiveAllocated});
      segment.active_size += size;
      if (!pending_[slot]) segment.allocated_size += size;
      segment.requested_size += sizes_[slot];
      cursor = address + size;
    }
    if (cursor < kBase + segment.total_size) {
      segment.blocks.push_back(BlockInfo{cursor, kBase + segment.total_size - cursor, 0, BlockState::kInactive});
    }
    return {segment};
  }

  std::uint64_t events_;
  std::uint64_t produced_ = 0;
  std::int64_t time_ = 1'700'000'000'000'000;
  std::uint64_t sizes_[kSlots] = {};
  bool live_[kSlots] = {};
  bool pending_[kSlots] = {};
  TraceMetadata metadata_;
  std::vector<SegmentInfo> initial_;
  std::vector<SegmentInfo> final_;
};

fs::path bench_file(const std::string& name) {
  static const fs::path directory = [] {
    fs::path d = fs::temp_directory_path() / "offsim_trace_io_bench";
    fs::create_directories(d);
    return d;
  }();
  return directory / name;
}

void report(benchmark::State& state, std::uint64_t file_bytes, std::uint64_t events) {
  state.SetBytesProcessed(static_cast<std::int64_t>(file_bytes * state.iterations()));
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.counters["file_MiB"] = static_cast<double>(file_bytes) / (1024.0 * 1024.0);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

void BM_OtraceWrite(benchmark::State& state) {
  const auto path = bench_file("bench.otrace");
  for (auto _ : state) {
    SyntheticSource source(event_count());
    write_trace_file(path, source);
  }
  report(state, fs::file_size(path), event_count() * state.iterations());
}

void BM_OtraceRead(benchmark::State& state) {
  const auto path = bench_file("bench.otrace");
  if (!fs::exists(path)) {
    SyntheticSource source(event_count());
    write_trace_file(path, source);
  }
  std::uint64_t events = 0;
  for (auto _ : state) {
    TraceReader reader(path);
    TraceEvent event;
    std::uint64_t sum = 0;
    while (reader.next(event)) sum += event.size;
    benchmark::DoNotOptimize(sum);
    events += reader.events_read();
  }
  report(state, fs::file_size(path), events);
}

void BM_SnapshotPickleWrite(benchmark::State& state) {
  const auto path = bench_file("bench.pickle");
  for (auto _ : state) {
    SyntheticSource source(event_count());
    write_snapshot_pickle(path, source);
  }
  report(state, fs::file_size(path), event_count() * state.iterations());
}

void BM_SnapshotJsonWrite(benchmark::State& state) {
  const auto path = bench_file("bench.json");
  for (auto _ : state) {
    SyntheticSource source(event_count());
    write_snapshot_json(path, source);
  }
  report(state, fs::file_size(path), event_count() * state.iterations());
}

// Reading a snapshot keeps its events (40 bytes each) to rewind the dump-time state, so these come last.
void BM_SnapshotPickleRead(benchmark::State& state) {
  const auto path = bench_file("bench.pickle");
  std::uint64_t events = 0;
  for (auto _ : state) {
    const Trace trace = read_snapshot_pickle(path);
    events += trace.events.size();
  }
  report(state, fs::file_size(path), events);
}

void BM_SnapshotJsonRead(benchmark::State& state) {
  const auto path = bench_file("bench.json");
  std::uint64_t events = 0;
  for (auto _ : state) {
    const Trace trace = read_snapshot_json(path);
    events += trace.events.size();
  }
  report(state, fs::file_size(path), events);
  fs::remove_all(bench_file("").parent_path());
}

BENCHMARK(BM_OtraceWrite)->Unit(benchmark::kMillisecond)->Iterations(1)->MeasureProcessCPUTime();
BENCHMARK(BM_OtraceRead)->Unit(benchmark::kMillisecond)->Iterations(3)->MeasureProcessCPUTime();
BENCHMARK(BM_SnapshotPickleWrite)->Unit(benchmark::kMillisecond)->Iterations(1)->MeasureProcessCPUTime();
BENCHMARK(BM_SnapshotJsonWrite)->Unit(benchmark::kMillisecond)->Iterations(1)->MeasureProcessCPUTime();
BENCHMARK(BM_SnapshotPickleRead)->Unit(benchmark::kMillisecond)->Iterations(1)->MeasureProcessCPUTime();
BENCHMARK(BM_SnapshotJsonRead)->Unit(benchmark::kMillisecond)->Iterations(1)->MeasureProcessCPUTime();

}  // namespace
