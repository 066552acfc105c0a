#include "offsim/real/scope_sidecar.hpp"

#include <filesystem>

#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

nlohmann::json kernel_json(const KernelCall& call) {
  nlohmann::json out{{"kind", to_string(call.kind)}, {"op", call.op}};
  if (call.convolution) {
    const ConvolutionCall& c = *call.convolution;
    out["convolution"] = {{"batch", c.batch},   {"in_channels_per_group", c.in_channels_per_group},
                          {"groups", c.groups}, {"kernel", c.kernel},
                          {"stride", c.stride}, {"padding", c.padding},
                          {"output", c.output}, {"element_size", c.element_size}};
  }
  if (call.attention) {
    const FusedAttentionCall& a = *call.attention;
    out["attention"] = {{"batch_heads", a.batch_heads},   {"queries", a.queries},
                        {"keys", a.keys},                 {"value_head_dim", a.value_head_dim},
                        {"element_size", a.element_size}, {"reduced_precision", a.reduced_precision}};
  }
  return out;
}

}  // namespace

std::string scope_sidecar_path(const std::string& trace_path) { return trace_path + ".scopes.json"; }

nlohmann::json scope_sidecar_json(const AnnotatedTrace& trace, const Recording& recording,
                                  const nlohmann::json& summary) {
  if (trace.event_scopes.size() != trace.trace.events.size()) {
    throw Error("scope sidecar: the event scope list does not match the trace's events");
  }
  nlohmann::json scopes = nlohmann::json::array();
  for (const ScopeRecord& s : recording.scopes) {
    nlohmann::json scope{{"name", s.name}, {"parent", s.parent}};
    if (s.kernel) scope["kernel"] = kernel_json(*s.kernel);
    scopes.push_back(std::move(scope));
  }
  return {{"format", "offsim-scope-sidecar"},
          {"format_version", 1},
          {"trace_events", trace.trace.events.size()},
          {"summary", summary},
          {"scopes", std::move(scopes)},
          {"event_scopes", trace.event_scopes}};
}

void write_scope_sidecar(const std::string& path, const AnnotatedTrace& trace, const Recording& recording,
                         const nlohmann::json& summary) {
  sim::AtomicOutputFile out{std::filesystem::path(path)};
  out.write(scope_sidecar_json(trace, recording, summary).dump());
  out.write("\n");
  out.commit();
}

}  // namespace offsim::real
