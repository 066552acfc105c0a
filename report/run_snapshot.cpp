#include "offsim/report/run_snapshot.hpp"

#include "offsim/sim/errors.hpp"
#include "offsim/sim/snapshot_pickle.hpp"

namespace offsim::report {

sim::Trace run_trace(const policies::RunRecord& run, const policies::Scenario& scenario) {
  if (run.trace.empty() && !run.timeline.empty()) {
    throw ConfigError("run of " + run.policy.id + " on " + scenario.name + " kept no allocator trace (RunOptions::keep_trace)");
  }
  sim::Trace trace;
  sim::TraceMetadata& m = trace.metadata;
  m.label = run.policy.id + " on " + scenario.name;
  m.alloc_conf = scenario.alloc_conf;
  m.device_total_bytes = run.device_total;
  m.device = 0;
  m.provenance.kind = sim::ProvenanceKind::kSynthetic;
  m.provenance.source = scenario.source;
  m.provenance.command = "offsim eval --policy " + run.policy.id + " --suite " + scenario.source + " --export-snapshot";
  m.provenance.torch_version = scenario.torch->name + " (allocator profile)";
  m.provenance.gpu = scenario.device.name;
  m.provenance.notes = "simulated by offsim: policy " + run.policy.id + " (" + run.policy.upstream + ") on scenario " + scenario.name +
                       "; time_us is the allocator call index, not wall time; " +
                       (run.completed ? std::string("the run completed") : "the run failed: " + run.failure);
  std::string sources;
  for (const policies::Stage& stage : scenario.stages) {
    if (stage.working_memory) sources += (sources.empty() ? "" : "; ") + stage.name + ": " + stage.working_memory->label();
  }
  if (!sources.empty()) m.provenance.notes += "; working memory from " + sources;
  trace.events = run.trace;
  trace.final_segments = run.final_segments;
  return trace;
}

void write_run_snapshot(const std::filesystem::path& path, const policies::RunRecord& run, const policies::Scenario& scenario) {
  sim::write_snapshot_pickle(path, run_trace(run, scenario));
}

}  // namespace offsim::report
