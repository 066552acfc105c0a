#include "offsim/real/trace_json_interim.hpp"

#include <filesystem>

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

nlohmann::json metadata_json(const sim::TraceMetadata& m) {
  const sim::Provenance& p = m.provenance;
  return {
      {"label", m.label},
      {"alloc_conf", m.alloc_conf},
      {"device_total_bytes", m.device_total_bytes},
      {"device", m.device},
      {"reconstructed_initial_state", m.reconstructed_initial_state},
      {"provenance",
       {{"kind", std::string(sim::to_string(p.kind))},
        {"source", p.source},
        {"citation", p.citation},
        {"gpu", p.gpu},
        {"torch_version", p.torch_version},
        {"driver", p.driver},
        {"command", p.command},
        {"date", p.date},
        {"license", p.license},
        {"notes", p.notes}}},
  };
}

nlohmann::json kernel_json(const KernelCall& call) {
  nlohmann::json out{{"kind", to_string(call.kind)}, {"op", call.op}};
  if (call.convolution) {
    const ConvolutionCall& c = *call.convolution;
    out["convolution"] = {{"batch", c.batch},       {"in_channels_per_group", c.in_channels_per_group},
                          {"groups", c.groups},     {"kernel", c.kernel},
                          {"stride", c.stride},     {"padding", c.padding},
                          {"output", c.output},     {"element_size", c.element_size}};
  }
  if (call.attention) {
    const FusedAttentionCall& a = *call.attention;
    out["attention"] = {{"batch_heads", a.batch_heads},       {"queries", a.queries},
                        {"keys", a.keys},                     {"value_head_dim", a.value_head_dim},
                        {"element_size", a.element_size},     {"reduced_precision", a.reduced_precision}};
  }
  return out;
}

}  // namespace

nlohmann::json trace_to_interim_json(const AnnotatedTrace& trace, const Recording& recording,
                                     const nlohmann::json& summary) {
  if (trace.event_scopes.size() != trace.trace.events.size()) {
    throw Error("interim trace JSON: event scope list does not match the events");
  }
  nlohmann::json scopes = nlohmann::json::array();
  for (const ScopeRecord& s : recording.scopes) {
    nlohmann::json scope{{"name", s.name}, {"parent", s.parent}};
    if (s.kernel) scope["kernel"] = kernel_json(*s.kernel);
    scopes.push_back(std::move(scope));
  }
  nlohmann::json events = nlohmann::json::array();
  for (std::size_t i = 0; i < trace.trace.events.size(); ++i) {
    const sim::TraceEvent& e = trace.trace.events[i];
    events.push_back({std::string(sim::to_string(e.action)), e.addr, e.size, e.stream, e.time_us, e.flags,
                      trace.event_scopes[i]});
  }
  return {
      {"format", "offsim-trace-interim-json"},
      {"format_version", 1},
      {"event_fields", {"action", "addr", "size", "stream", "time_us", "flags", "scope"}},
      {"metadata", metadata_json(trace.trace.metadata)},
      {"summary", summary},
      {"scopes", std::move(scopes)},
      {"events", std::move(events)},
  };
}

void write_trace_json_interim(const std::string& path, const AnnotatedTrace& trace, const Recording& recording,
                              const nlohmann::json& summary) {
  sim::AtomicOutputFile out{std::filesystem::path(path)};
  out.write(trace_to_interim_json(trace, recording, summary).dump());
  out.write("\n");
  out.commit();
}

}  // namespace offsim::real
