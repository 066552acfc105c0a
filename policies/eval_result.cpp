#include "offsim/policies/eval_result.hpp"

#include <algorithm>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

json optional_bytes(const std::optional<std::uint64_t>& v) { return v ? json(*v) : json(nullptr); }

json segments_json(const std::vector<sim::SegmentInfo>& segments) {
  json out = json::array();
  for (const sim::SegmentInfo& s : segments) {
    json blocks = json::array();
    for (const sim::BlockInfo& b : s.blocks) {
      blocks.push_back({{"address", b.address}, {"size", b.size}, {"requested_size", b.requested_size},
                        {"state", sim::to_string(b.state)}});
    }
    out.push_back({{"address", s.address}, {"total_size", s.total_size}, {"allocated_size", s.allocated_size},
                   {"active_size", s.active_size}, {"stream", s.stream},
                   {"segment_type", s.is_small ? "small" : "large"}, {"is_expandable", s.is_expandable},
                   {"blocks", blocks}});
  }
  return out;
}

json stage_json(const StageRecord& r) {
  const StageDecision& d = r.decision;
  json evictions = json::array();
  for (const Eviction& e : d.evictions) evictions.push_back({{"model", e.model}, {"bytes", e.bytes}});
  json loads = json::array();
  for (const LoadDecision& l : d.loads) {
    loads.push_back({{"model", l.model}, {"free_memory_bytes", l.free_memory}, {"estimate_bytes", l.estimate},
                     {"weights_loaded_bytes", l.weights_loaded}, {"stop_reason", to_string(l.stop)},
                     {"evictions", l.evictions}});
  }
  json out = {{"stage", r.stage},
              {"call", r.call},
              {"step", r.step},
              {"estimate_bytes", optional_bytes(d.estimate)},
              {"estimate_source", d.estimate_source},
              {"free_memory_bytes", d.free_memory ? json(*d.free_memory) : json(nullptr)},
              {"weights_loaded_bytes", d.weights_loaded},
              {"stop_reason", to_string(d.stop)},
              {"loads", loads},
              {"evictions", evictions},
              {"driver_free_before_bytes", r.driver_free_before},
              {"reserved_before_bytes", r.reserved_before},
              {"allocated_before_bytes", r.allocated_before},
              {"releasable_before_bytes", r.releasable_before},
              {"stranded_before_bytes", r.stranded_before},
              {"t_warm_bytes", r.has_working_memory || r.streamed_weights > 0 ? json(r.t_warm) : json(nullptr)},
              {"t_cold_bytes", optional_bytes(r.t_cold)},
              {"working_memory", r.has_working_memory ? json(r.working_memory_label) : json(nullptr)},
              {"provenance", r.has_working_memory ? json(sim::to_string(r.provenance)) : json(nullptr)},
              {"streamed_weights_bytes", r.streamed_weights},
              {"handled_ooms", r.handled_ooms},
              {"bytes_to_device", r.bytes_to_device},
              {"bytes_to_host", r.bytes_to_host},
              {"timeline", {r.timeline_begin, r.timeline_end}},
              {"fallback", nullptr},
              {"oom", nullptr}};
  if (r.fallback_after && d.oom_fallback) {
    out["fallback"] = {{"label", d.oom_fallback->label}, {"after", r.fallback_after->message},
                       {"requested_bytes", r.fallback_after->requested}};
  }
  if (r.oom) {
    out["oom"] = {{"requested_bytes", r.oom->requested}, {"message", r.oom->message},
                  {"device_free_bytes", r.oom->device_free}, {"reserved_bytes", r.oom->reserved},
                  {"allocated_bytes", r.oom->allocated}, {"stranded_bytes", r.oom->stranded},
                  {"segments", segments_json(r.oom_segments)}};
  }
  return out;
}

}  // namespace

EvalResult evaluate(const std::string& policy_id, const Scenario& scenario, const PropertyOptions& options) {
  EvalResult result;
  result.scenario = &scenario;
  auto policy = make_policy(policy_id);
  result.run = run_policy(*policy, scenario);
  PropertyOptions o = options;
  if (!o.make_policy) o.make_policy = [policy_id] { return make_policy(policy_id); };
  result.properties = check_properties(scenario, result.run, o);
  result.peak = peak_segments(policy_id, scenario, result.run);
  return result;
}

std::optional<PeakSegments> peak_segments(const std::string& policy_id, const Scenario& scenario, const RunRecord& run) {
  if (run.timeline.empty()) return std::nullopt;
  std::size_t at = 0;
  for (std::size_t i = 1; i < run.timeline.size(); ++i) {
    const TimelinePoint& p = run.timeline[i];
    const TimelinePoint& best = run.timeline[at];
    if (p.reserved > best.reserved || (p.reserved == best.reserved && p.allocated > best.allocated)) at = i;
  }
  RunOptions options;
  options.compute_cold = false;
  options.segments_at_sample = at;
  auto policy = make_policy(policy_id);
  RunRecord again = run_policy(*policy, scenario, options);
  if (again.timeline.size() <= at || again.timeline[at].reserved != run.timeline[at].reserved ||
      again.timeline[at].allocated != run.timeline[at].allocated) {
    throw InvariantViolation("policy " + policy_id + " on scenario " + scenario.name +
                             " did not reproduce its own run (timeline sample " + std::to_string(at) +
                             "): the runner or the policy is not deterministic");
  }
  return PeakSegments{at, run.timeline[at].reserved, run.timeline[at].allocated, std::move(again.sampled_segments)};
}

json to_json(const EvalResult& result, std::size_t timeline_points) {
  const RunRecord& run = result.run;
  json stages = json::array();
  for (const StageRecord& r : run.stages) stages.push_back(stage_json(r));
  json calls = json::array();
  for (const CallRecord& c : run.calls) {
    json leftover = json::array();
    for (const auto& [model, bytes] : c.claimed_offloaded_but_resident) leftover.push_back({{"model", model}, {"bytes", bytes}});
    calls.push_back({{"call", c.call}, {"completed", c.completed}, {"offloaded", c.claim.offloaded},
                     {"resident_by_design", c.claim.resident_by_design}, {"claimed_offloaded_but_resident", leftover},
                     {"reserved_after_bytes", c.reserved_after}, {"allocated_after_bytes", c.allocated_after}});
  }
  json properties = json::object();
  for (const PropertyResult& p : result.properties.results) {
    properties[p.id] = {{"verdict", to_string(p.verdict)}, {"checked", p.checked}, {"violations", p.violations},
                        {"detail", p.detail}, {"stages", p.stage_records}};
  }
  // The timeline is thinned to at most `timeline_points` samples, keeping each bucket's reserved peak,
  // and the stage ranges are mapped onto the thinned indices.
  const std::size_t n = run.timeline.size();
  const std::size_t stride = std::max<std::size_t>(1, (n + timeline_points - 1) / std::max<std::size_t>(1, timeline_points));
  json timeline = json::array();
  for (std::size_t i = 0; i < n; i += stride) {
    TimelinePoint best = run.timeline[i];
    for (std::size_t k = i; k < std::min(n, i + stride); ++k) {
      if (run.timeline[k].reserved > best.reserved) best = run.timeline[k];
    }
    timeline.push_back({best.reserved, best.allocated});
  }
  for (json& s : stages) {
    s["timeline"] = {s["timeline"][0].get<std::size_t>() / stride, s["timeline"][1].get<std::size_t>() / stride};
  }
  const Scenario& scenario = *result.scenario;
  return {{"policy", {{"id", run.policy.id}, {"family", run.policy.family}, {"label", run.policy.label},
                      {"upstream", run.policy.upstream}, {"free_memory", run.policy.free_memory_formula}}},
          {"scenario", {{"name", scenario.name}, {"source", scenario.source}, {"description", scenario.description},
                        {"facts", scenario.facts}, {"device_total_bytes", run.device_total},
                        {"platform", scenario.device.platform == sim::Platform::kRocm ? "rocm" : "cuda"},
                        {"alloc_conf", scenario.alloc_conf}, {"torch", scenario.torch->name}, {"calls", scenario.calls}}},
          {"allocator_model", run.allocator_model},
          {"completed", run.completed},
          {"failure", run.failure},
          {"diagnosis", result.properties.diagnosis},
          {"peak_reserved_bytes", run.peak_reserved},
          {"peak_allocated_bytes", run.peak_allocated},
          {"bytes_to_device", run.bytes_to_device},
          {"bytes_to_host", run.bytes_to_host},
          {"transfer_seconds", run.transfer_seconds},
          {"pcie_bytes_per_second", scenario.pcie_bytes_per_second},
          {"evictions", run.evictions},
          {"min_capacity_one_call_bytes", optional_bytes(result.properties.min_capacity_one_call)},
          {"min_capacity_all_calls_bytes", optional_bytes(result.properties.min_capacity_all_calls)},
          {"properties", properties},
          {"stages", stages},
          {"calls", calls},
          {"timeline_stride", stride},
          {"timeline", timeline},
          {"peak", result.peak ? json{{"sample", result.peak->sample},
                                      {"timeline_index", result.peak->sample / stride},
                                      {"reserved_bytes", result.peak->reserved},
                                      {"allocated_bytes", result.peak->allocated},
                                      {"segments", segments_json(result.peak->segments)}}
                               : json(nullptr)}};
}

json to_json(const std::vector<EvalResult>& results, std::size_t timeline_points) {
  json out = {{"format", "offsim-eval/1"}, {"results", json::array()}};
  for (const EvalResult& r : results) out["results"].push_back(to_json(r, timeline_points));
  return out;
}

}  // namespace offsim::policies
