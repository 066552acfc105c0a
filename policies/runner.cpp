#include "offsim/policies/runner.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "offsim/policies/out_of_memory.hpp"
#include "offsim/policies/sim_backend.hpp"
#include "offsim/policies/working_memory_run.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

constexpr std::uint64_t kColdDeviceBytes = 1024 * GiB;

// Forwards to the simulator and samples reserved/allocated after every call, for the timeline. The
// allocator's clock is the sample index, so trace events line up with the timeline.
class RecordingBackend final : public MemoryBackend {
 public:
  RecordingBackend(SimBackend& inner, std::vector<TimelinePoint>* timeline, std::optional<std::size_t> segments_at,
                   std::vector<sim::SegmentInfo>* segments_out)
      : inner_(inner), timeline_(timeline), segments_at_(segments_at), segments_out_(segments_out) {}

  std::optional<std::uint64_t> allocate(std::uint64_t bytes, StreamId stream) override {
    tick();
    auto ptr = inner_.allocate(bytes, stream);
    sample();
    return ptr;
  }
  void free(std::uint64_t address) override {
    tick();
    inner_.free(address);
    sample();
  }
  MemInfo mem_get_info() const override { return inner_.mem_get_info(); }
  MemoryStats stats() const override { return inner_.stats(); }
  std::optional<sim::DeviceStats> device_stats() const override { return inner_.device_stats(); }
  void empty_cache() override {
    tick();
    inner_.empty_cache();
    sample();
  }
  void reset_peak_stats() override { inner_.reset_peak_stats(); }
  const OomReport& last_oom() const override { return inner_.last_oom(); }
  std::string name() const override { return inner_.name(); }

 private:
  void tick() { inner_.set_time_us(static_cast<std::int64_t>(samples_)); }
  void sample() {
    if (segments_at_ && *segments_at_ == samples_) *segments_out_ = inner_.segments();
    ++samples_;
    if (timeline_ == nullptr) return;
    const MemoryStats s = inner_.stats();
    timeline_->push_back({s.reserved, s.allocated});
  }
  SimBackend& inner_;
  std::vector<TimelinePoint>* timeline_;
  std::optional<std::size_t> segments_at_;
  std::vector<sim::SegmentInfo>* segments_out_;
  std::size_t samples_ = 0;
};

std::uint64_t releasable_and_stranded(const SimBackend& sim, std::uint64_t& stranded) {
  const sim::FragmentationInfo f = sim.fragmentation();
  stranded = f.stranded;
  return f.free_cached - f.stranded;
}

}  // namespace

bool fits_alone(const Scenario& scenario, const Stage& stage) {
  SimBackend backend(scenario.device, sim::AllocatorConfig::parse(scenario.alloc_conf, *scenario.torch), *scenario.torch);
  std::unordered_map<std::uint64_t, std::uint64_t> live;
  if (!apply_prior_history(backend, scenario, live)) return false;
  std::vector<ResidentModel> models;
  for (const std::string& id : stage.models) models.emplace_back(*scenario.model(id).manifest);
  for (ResidentModel& m : models) {
    if (!m.load_all(backend)) return false;
  }
  if (!stage.working_memory) return true;
  return !run_working_memory(backend, *stage.working_memory->trace, 0).oom;
}

std::optional<std::uint64_t> cold_peak(const Scenario& scenario, const Stage& stage) {
  if (!stage.working_memory) return 0;
  sim::DeviceSpec device = scenario.device;
  device.total_bytes = kColdDeviceBytes;
  device.total_global_mem = 0;
  device.context_bytes = 0;
  device.other_process_bytes = 0;
  SimBackend backend(device, sim::AllocatorConfig::parse(scenario.alloc_conf, *scenario.torch), *scenario.torch);
  std::vector<ResidentModel> models;
  for (const std::string& id : stage.models) models.emplace_back(*scenario.model(id).manifest);
  for (ResidentModel& m : models) {
    if (!m.load_all(backend)) return std::nullopt;
  }
  backend.empty_cache();
  const WorkingMemoryOutcome out = run_working_memory(backend, *stage.working_memory->trace, 0);
  if (out.oom) return std::nullopt;
  return out.peak_growth;
}

RunRecord run_policy(Policy& policy, const Scenario& scenario, const RunOptions& options) {
  RunRecord record;
  record.policy = policy.info();
  record.scenario = scenario.name;
  sim::DeviceSpec device = scenario.device;
  if (options.capacity) device.total_bytes = *options.capacity;
  record.device_total = device.total_bytes;
  SimBackend sim(device, sim::AllocatorConfig::parse(scenario.alloc_conf, *scenario.torch), *scenario.torch);
  record.allocator_model = sim.name();
  RecordingBackend backend(sim, options.record_timeline ? &record.timeline : nullptr, options.segments_at_sample,
                           &record.sampled_segments);
  RunContext context(scenario, backend);

  std::uint64_t run_peak_reserved = 0, run_peak_allocated = 0;
  std::unordered_map<std::uint64_t, std::uint64_t> prior_live;
  auto fold_peaks = [&] {
    const MemoryStats s = backend.stats();
    run_peak_reserved = std::max(run_peak_reserved, s.peak_reserved);
    run_peak_allocated = std::max(run_peak_allocated, s.peak_allocated);
  };
  auto finish_record = [&] {
    fold_peaks();
    record.peak_reserved = run_peak_reserved;
    record.peak_allocated = run_peak_allocated;
    for (const ScenarioModel& m : scenario.models) {
      record.bytes_to_device += context.model(m.id).bytes_to_device();
      record.bytes_to_host += context.model(m.id).bytes_to_host();
      record.bytes_offloaded += context.model(m.id).bytes_unloaded();
    }
    for (const StageRecord& s : record.stages) {
      record.evictions += s.decision.evictions.size();
      record.bytes_to_device += s.decision.streamed_to_device;  // never resident, so not in the models' counters
    }
    record.transfer_seconds =
        static_cast<double>(record.bytes_to_device + record.bytes_to_host) / scenario.pcie_bytes_per_second;
    if (options.keep_trace) {
      record.trace = std::move(sim.trace());
      record.final_segments = sim.segments();
    }
  };

  // The process's earlier allocations come first; what they keep stays live for the whole run.
  if (!apply_prior_history(backend, scenario, prior_live)) {
    record.failure = "the scenario's prior history does not fit on the device: " + backend.last_oom().message;
    finish_record();
    return record;
  }
  for (const std::string& id : scenario.initially_resident) {
    if (!context.model(id).load_all(backend)) {
      record.failure = "the scenario's initially resident models do not fit on the device (" + id + "): " +
                       backend.last_oom().message;
      finish_record();
      return record;
    }
  }
  // Weights already on the device when the run starts were not moved by the policy.
  for (const ScenarioModel& m : scenario.models) context.model(m.id).reset_traffic();
  policy.begin_run(context);

  const int calls = options.calls.value_or(scenario.calls);
  std::vector<std::optional<std::uint64_t>> cold(scenario.stages.size());
  std::vector<bool> cold_known(scenario.stages.size(), false);
  for (int call = 0; call < calls; ++call) {
    for (std::size_t si = 0; si < scenario.stages.size(); ++si) {
      const Stage& stage = scenario.stages[si];
      for (int step = 0; step < stage.steps; ++step) {
        StageRecord rec;
        rec.call = call;
        rec.step = step;
        rec.stage_index = si;
        rec.stage = stage.name;
        rec.timeline_begin = record.timeline.size();
        std::uint64_t h2d_before = 0, d2h_before = 0;
        for (const std::string& id : context.model_ids()) {
          h2d_before += context.model(id).bytes_to_device();
          d2h_before += context.model(id).bytes_to_host();
        }
        const StageStep where{&stage, call, step};
        rec.decision = policy.prepare(context, where);
        if (rec.decision.load_oom) {
          rec.oom = rec.decision.load_oom;
          rec.oom_segments = sim.segments();
        } else {
          const MemoryStats before = backend.stats();
          rec.driver_free_before = backend.mem_get_info().free;
          rec.reserved_before = before.reserved;
          rec.allocated_before = before.allocated;
          rec.releasable_before = releasable_and_stranded(sim, rec.stranded_before);
          rec.memory_limit = sim.memory_limit();
          rec.streamed_weights = rec.decision.streamed_weights;
          if (stage.first_run_outside_allocator && call == 0 && step == 0) {  // the stage's first run
            // The driver hands it out when the stage's kernels first need it, after the policy decided.
            const Stage::OutsideAllocator& outside = *stage.first_run_outside_allocator;
            if (!sim.device().allocate_external(outside.label, outside.bytes)) {
              rec.oom = outside_allocator_oom(outside.label, outside.bytes, backend);
              rec.oom_segments = sim.segments();
            }
          }
          if (!rec.oom && (stage.working_memory || rec.streamed_weights > 0)) {
            fold_peaks();
            static const sim::Trace kNoActivations;
            const sim::Trace& trace = stage.working_memory ? *stage.working_memory->trace : kNoActivations;
            WorkingMemoryOutcome out = run_working_memory(backend, trace, rec.streamed_weights);
            rec.t_warm = out.peak_growth;
            rec.handled_ooms = out.handled_ooms;
            if (out.oom && rec.decision.oom_fallback) {
              // The caller catches it: the attempt's tensors are gone with the exception (run_working_memory
              // freed them), and the fallback runs in the state they left.
              rec.fallback_after = std::move(out.oom);
              ++rec.handled_ooms;
              const WorkingMemoryOutcome retry =
                  run_working_memory(backend, *rec.decision.oom_fallback->working_memory, rec.streamed_weights);
              rec.t_warm = std::max(rec.t_warm, retry.peak_growth);
              rec.handled_ooms += retry.handled_ooms;
              out.oom = retry.oom;
            }
            if (out.oom) {
              rec.oom = out.oom;
              rec.oom_segments = sim.segments();
            }
          }
          if (stage.working_memory) {
            rec.has_working_memory = true;
            rec.working_memory_label = stage.working_memory->label();
            rec.provenance = stage.working_memory->provenance();
            if (options.compute_cold) {
              if (!cold_known[si]) {
                cold[si] = cold_peak(scenario, stage);
                cold_known[si] = true;
              }
              rec.t_cold = cold[si];
            }
          }
          policy.finish(context, where);
        }
        std::uint64_t h2d_after = 0, d2h_after = 0;
        for (const std::string& id : context.model_ids()) {
          h2d_after += context.model(id).bytes_to_device();
          d2h_after += context.model(id).bytes_to_host();
        }
        rec.bytes_to_device = h2d_after - h2d_before + rec.decision.streamed_to_device;
        rec.bytes_to_host = d2h_after - d2h_before;
        rec.timeline_end = record.timeline.size();
        const bool failed = rec.oom.has_value();
        if (failed) {
          record.failure = "unhandled OOM in stage \"" + stage.name + "\" (call " + std::to_string(call + 1) +
                           (stage.steps > 1 ? ", step " + std::to_string(step + 1) : "") + "): " + rec.oom->message;
        }
        record.stages.push_back(std::move(rec));
        if (failed) {
          record.calls.push_back({call, false, {}, {}, backend.stats().reserved, backend.stats().allocated});
          finish_record();
          return record;
        }
      }
    }
    policy.end_call(context, call);
    CallRecord call_record;
    call_record.call = call;
    call_record.completed = true;
    call_record.claim = policy.residency(context);
    for (const std::string& id : call_record.claim.offloaded) {
      const std::uint64_t resident = context.model(id).device_bytes();
      if (resident > 0) call_record.claimed_offloaded_but_resident.emplace_back(id, resident);
    }
    call_record.reserved_after = backend.stats().reserved;
    call_record.allocated_after = backend.stats().allocated;
    record.calls.push_back(std::move(call_record));
  }
  record.completed = true;
  finish_record();
  return record;
}

}  // namespace offsim::policies
