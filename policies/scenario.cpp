#include "offsim/policies/scenario.hpp"

#include <fstream>

#include <algorithm>
#include <iterator>

#include "offsim/policies/json_fields.hpp"
#include "offsim/policies/policy_settings.hpp"
#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Scenario messages name fields from the document's root: "scenario.stages[2].workload.vae.height".
JsonFieldNaming scenario_naming() { return {"scenario", false, false}; }

int dimension(const JsonFields& f, const char* key, int min) {
  return static_cast<int>(f.integer(key, min, kMaxVaeDimension));
}

ScenarioFinding read_finding(const JsonFields& f) {
  ScenarioFinding finding;
  finding.policy = f.string("policy");
  if (finding.policy.empty()) f.fail("policy", "must name a policy id");
  if (f.has("also")) finding.also = f.strings("also");
  finding.property = f.string("property");
  if (finding.property.size() != 2 || finding.property[0] != 'P' || finding.property[1] < '1' || finding.property[1] > '5') {
    f.fail("property", "must be P1, P2, P3, P4 or P5, got \"" + finding.property + "\"");
  }
  finding.aspect = f.optional_string("aspect").value_or("");
  if (f.has("seed")) {
    // RapidCheck seeds are 64-bit unsigned: beyond JsonFields::integer's int64.
    const json& seed = f.raw("seed");
    if (!seed.is_number_unsigned()) f.fail("seed", "must be an integer >= 0 (RapidCheck seeds are 64-bit unsigned)");
    finding.seed = seed.get<std::uint64_t>();
  }
  return finding;
}

VaeWorkload read_vae_workload(const JsonFields& f) {
  VaeWorkload w;
  w.family = f.parsed("family", [](const std::string& s) { return parse_vae_family(s); });
  w.op = f.parsed("op", [](const std::string& s) { return parse_vae_op(s); });
  w.pixel_height = dimension(f, "height", 1);
  w.pixel_width = dimension(f, "width", 1);
  if (f.has("frames")) w.frames = dimension(f, "frames", 1);
  if (f.has("batch")) w.batch = dimension(f, "batch", 1);
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  if (f.has("tile_size")) w.tile_size = dimension(f, "tile_size", 0);
  if (f.has("backend")) w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  w.memory_optimization = f.optional_boolean("memory_optimization").value_or(false);
  if (f.has("vae_tile_sample_min_size")) w.vae_tile_sample_min_size = dimension(f, "vae_tile_sample_min_size", 1);
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

DenoiseWorkload read_denoise_workload(const JsonFields& f) {
  DenoiseWorkload w;
  w.model = f.parsed("model", [](const std::string& s) { return parse_diffusion_model(s); });
  w.noise_shape = f.integers("noise_shape", 1, kMaxLatentDimension);
  if (f.has("ref_latent_elements")) w.ref_latent_elements = f.integers("ref_latent_elements", 0, kMaxLatentElements);
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  w.efficient_attention = f.optional_boolean("efficient_attention").value_or(true);
  if (f.has("model_dim")) w.model_dim = static_cast<int>(f.integer("model_dim", 1, kMaxModelDim));
  if (f.has("backend")) w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

const std::vector<std::string_view> kVaeKeys = {"family", "op", "height", "width", "frames", "batch", "dtype",
                                                "tile_size", "backend", "memory_optimization",
                                                "vae_tile_sample_min_size"};
const std::vector<std::string_view> kDenoiseKeys = {"model", "noise_shape", "ref_latent_elements", "dtype",
                                                    "efficient_attention", "model_dim", "backend"};

Workload read_workload(const JsonFields& stage) {
  const JsonFields w = stage.object("workload", {"vae", "denoise"});
  if (w.has("vae") && w.has("denoise")) w.fail("denoise", "a workload is \"vae\" or \"denoise\", not both");
  if (w.has("vae")) return read_vae_workload(w.object("vae", kVaeKeys));
  if (w.has("denoise")) return read_denoise_workload(w.object("denoise", kDenoiseKeys));
  w.fail("", "must hold \"vae\" or \"denoise\"");
}

// The inline working-memory form: {"label", "provenance", "ops": [["alloc", bytes, {options}], ["free", k]]}.
std::shared_ptr<const sim::Trace> read_working_memory(const JsonFields& f, bool allow_live) {
  auto trace = std::make_shared<sim::Trace>();
  sim::Provenance& p = trace->metadata.provenance;
  if (f.has("provenance")) {
    const JsonFields pf = f.object("provenance", {"kind", "source", "citation", "gpu", "torch_version", "command",
                                                  "date", "notes"});
    const std::string kind = pf.string("kind");
    const auto parsed = sim::parse_provenance_kind(kind);
    if (!parsed) pf.fail("kind", "unknown provenance \"" + kind + "\" (gpu-measured, published, cpu-recorded, synthetic)");
    p.kind = *parsed;
    p.source = pf.optional_string("source").value_or("");
    p.citation = pf.optional_string("citation").value_or("");
    p.gpu = pf.optional_string("gpu").value_or("");
    p.torch_version = pf.optional_string("torch_version").value_or("");
    p.command = pf.optional_string("command").value_or("");
    p.date = pf.optional_string("date").value_or("");
    p.notes = pf.optional_string("notes").value_or("");
  } else {
    p.kind = sim::ProvenanceKind::kSynthetic;
  }
  if (p.source.empty()) p.source = f.document().source();
  trace->metadata.label = f.optional_string("label").value_or("");
  const json& ops = f.raw("ops");
  if (!ops.is_array()) f.fail("ops", "must be a list of [\"alloc\", bytes] / [\"free\", index] entries");
  // Each alloc's size and whether it was freed, by alloc index: a free finds its size in O(1), so that n
  // operations parse in O(n).
  std::vector<std::uint64_t> sizes;
  std::vector<bool> freed;
  trace->events.reserve(ops.size() + ops.size() / 2);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const json& op = ops[i];
    if (!op.is_array() || op.size() < 2 || op.size() > 3 || !op[0].is_string()) {
      f.fail("ops", {i}, "must be [\"alloc\", bytes, {options}] or [\"free\", alloc_index]");
    }
    const std::string& kind = op[0].get_ref<const std::string&>();
    if (kind == "alloc") {
      if (!op[1].is_number_unsigned() || op[1].get<std::uint64_t>() == 0) {
        f.fail("ops", {i, std::size_t{1}}, "alloc needs a byte count > 0, got " + op[1].dump());
      }
      const std::uint64_t bytes = op[1].get<std::uint64_t>();
      // PyTorch refuses a request of 1 EiB or more (CUDACachingAllocator.cpp, "Tried to allocate more than
      // 1EB memory"): exactly 1 EiB too, which would otherwise stop the run naming neither file nor op.
      if (bytes >= kMaxJsonBytes) {
        f.fail("ops", {i, std::size_t{1}}, "alloc of " + op[1].dump() + " bytes is 1 EiB or more, which PyTorch "
                                           "refuses as one request (\"Tried to allocate more than 1EB memory\")");
      }
      sim::TraceEvent e;
      e.action = sim::TraceAction::kAlloc;
      e.size = bytes;
      e.addr = (sizes.size() + 1) * 4096;  // a handle, not a device address: replay maps it
      if (op.size() > 2) {
        const json& options = op[2];
        if (!options.is_object()) f.fail("ops", {i, std::size_t{2}}, "alloc options must be an object such as {\"fallible\": true}");
        for (const auto& [key, value] : options.items()) {
          if (key != "fallible") f.fail("ops", {i, std::size_t{2}, key}, "unknown key" + did_you_mean(key, {"fallible"}));
          if (!value.is_boolean()) f.fail("ops", {i, std::size_t{2}, key}, "must be true or false");
        }
        if (options.value("fallible", false)) e.flags = sim::kTraceFlagFallible;
      }
      trace->events.push_back(e);
      sizes.push_back(bytes);
      freed.push_back(false);
    } else if (kind == "free") {
      if (op.size() != 2) f.fail("ops", {i}, "free takes one argument, the index of an earlier alloc");
      if (!op[1].is_number_unsigned() || op[1].get<std::uint64_t>() >= sizes.size()) {
        f.fail("ops", {i, std::size_t{1}}, "free needs the index of an earlier alloc (0 to " +
                                               std::to_string(sizes.size()) + " - 1), got " + op[1].dump());
      }
      const std::size_t k = op[1].get<std::size_t>();
      if (freed[k]) f.fail("ops", {i, std::size_t{1}}, "alloc " + std::to_string(k) + " is freed twice");
      freed[k] = true;
      sim::TraceEvent e;
      e.action = sim::TraceAction::kFreeRequested;
      e.addr = (k + 1) * 4096;
      e.size = sizes[k];
      trace->events.push_back(e);
      e.action = sim::TraceAction::kFreeCompleted;
      trace->events.push_back(e);
    } else {
      f.fail("ops", {i, std::size_t{0}}, "unknown op \"" + kind + "\" (alloc or free)");
    }
  }
  for (std::size_t k = 0; k < freed.size() && !allow_live; ++k) {
    if (!freed[k]) f.fail("ops", "alloc " + std::to_string(k) + " is never freed: a stage must release its working memory");
  }
  return trace;
}

const std::vector<std::string_view> kWorkingMemoryKeys = {"label", "provenance", "ops"};

json workload_to_json(const Workload& workload) {
  if (const auto* v = std::get_if<VaeWorkload>(&workload)) {
    json j = {{"family", to_string(v->family)}, {"op", to_string(v->op)}, {"height", v->pixel_height},
              {"width", v->pixel_width}, {"dtype", to_string(v->dtype)}, {"backend", to_string(v->backend)}};
    if (v->frames != 1) j["frames"] = v->frames;
    if (v->batch != 1) j["batch"] = v->batch;
    if (v->tile_size) j["tile_size"] = *v->tile_size;
    if (v->memory_optimization) j["memory_optimization"] = true;
    if (v->vae_tile_sample_min_size) j["vae_tile_sample_min_size"] = *v->vae_tile_sample_min_size;
    return {{"vae", j}};
  }
  const auto& d = std::get<DenoiseWorkload>(workload);
  json j = {{"model", to_string(d.model)}, {"noise_shape", d.noise_shape}, {"dtype", to_string(d.dtype)},
            {"efficient_attention", d.efficient_attention}, {"backend", to_string(d.backend)}};
  if (!d.ref_latent_elements.empty()) j["ref_latent_elements"] = d.ref_latent_elements;
  if (d.model_dim) j["model_dim"] = *d.model_dim;
  return {{"denoise", j}};
}

StageKind parse_stage_kind(const JsonFields& f) {
  const std::string kind = f.string("kind");
  std::vector<std::string_view> known;
  for (StageKind k : {StageKind::kTextEncode, StageKind::kDenoise, StageKind::kVaeDecode, StageKind::kVaeEncode,
                      StageKind::kOther}) {
    if (to_string(k) == kind) return k;
    known.push_back(to_string(k));
  }
  f.fail("kind", "unknown stage kind \"" + kind + "\"" + did_you_mean(kind, known));
}

sim::Platform parse_platform(const JsonFields& f) {
  const std::string p = f.optional_string("platform").value_or("cuda");
  if (p == "cuda") return sim::Platform::kCuda;
  if (p == "rocm") return sim::Platform::kRocm;
  f.fail("platform", "must be \"cuda\" or \"rocm\", got \"" + p + "\"");
}

}  // namespace

std::string_view to_string(StageKind kind) {
  switch (kind) {
    case StageKind::kTextEncode: return "text_encode";
    case StageKind::kDenoise: return "denoise";
    case StageKind::kVaeDecode: return "vae_decode";
    case StageKind::kVaeEncode: return "vae_encode";
    case StageKind::kOther: return "other";
  }
  return "other";
}

std::string WorkingMemory::label() const {
  const sim::Provenance& p = trace->metadata.provenance;
  std::string out(to_string(p.kind));
  if (!p.citation.empty()) out += ": " + p.citation;
  else if (!p.source.empty()) out += ": " + p.source;
  return out;
}

const ScenarioModel& Scenario::model(const std::string& id) const {
  for (const ScenarioModel& m : models) {
    if (m.id == id) return m;
  }
  throw ConfigError("scenario \"" + name + "\" has no model \"" + id + "\"");
}

std::shared_ptr<const sim::Trace> working_memory_from_document(const JsonDocument& doc, bool allow_live) {
  return read_working_memory(JsonFields(doc, {"working_memory", false, false}, kWorkingMemoryKeys), allow_live);
}

json working_memory_to_json(const sim::Trace& trace) {
  const sim::Provenance& p = trace.metadata.provenance;
  json prov = {{"kind", to_string(p.kind)}};
  for (const auto& [key, value] : {std::pair{"source", &p.source}, {"citation", &p.citation}, {"gpu", &p.gpu},
                                   {"torch_version", &p.torch_version}, {"command", &p.command},
                                   {"date", &p.date}, {"notes", &p.notes}}) {
    if (!value->empty()) prov[key] = *value;
  }
  json ops = json::array();
  std::map<std::uint64_t, std::size_t> index;  // live address -> alloc index
  std::size_t allocs = 0;
  for (const sim::TraceEvent& e : trace.events) {
    if (e.action == sim::TraceAction::kAlloc) {
      json op = json::array({"alloc", e.size});
      if (e.flags & sim::kTraceFlagFallible) op.push_back({{"fallible", true}});
      ops.push_back(op);
      index[e.addr] = allocs++;
    } else if (e.action == sim::TraceAction::kFreeRequested) {
      auto it = index.find(e.addr);
      if (it != index.end()) {
        ops.push_back(json::array({"free", it->second}));
        index.erase(it);
      }
    }
  }
  json out = {{"provenance", prov}, {"ops", ops}};
  if (!trace.metadata.label.empty()) out["label"] = trace.metadata.label;
  return out;
}

Scenario Scenario::from_json(const json& doc, const std::string& source, const std::filesystem::path& root) {
  return from_document(JsonDocument::from_value(doc, source), root);
}

Scenario Scenario::from_document(const JsonDocument& doc, const std::filesystem::path& root) {
  const JsonFields f(doc, scenario_naming(),
                     {"format", "name", "description", "facts", "finding", "device", "allocator", "models",
                      "initially_resident", "prior_history", "calls", "pcie_gbps", "stages", "policy_settings"});
  const std::string format = f.string("format");
  if (format != "offsim-scenario/1") f.fail("format", "unsupported \"" + format + "\" (expected offsim-scenario/1)");
  Scenario s;
  s.source = doc.source();
  s.name = f.string("name");
  s.description = f.optional_string("description").value_or("");
  if (f.has("facts")) s.facts = f.strings("facts");

  const JsonFields d = f.object("device", {"name", "platform", "total", "total_global_mem", "context", "other_processes"});
  s.device.name = d.string("name");
  s.device.platform = parse_platform(d);
  s.device.total_bytes = d.bytes("total", /*strings_allowed=*/true);
  if (s.device.total_bytes == 0) d.fail("total", "must be > 0");
  if (d.has("total_global_mem")) s.device.total_global_mem = d.bytes("total_global_mem", true);
  if (d.has("context")) s.device.context_bytes = d.bytes("context", true);
  if (d.has("other_processes")) s.device.other_process_bytes = d.bytes("other_processes", true);
  if (s.device.context_bytes + s.device.other_process_bytes >= s.device.total_bytes) {
    d.fail("context", "context + other_processes leave nothing of the device's total");
  }

  if (f.has("allocator")) {
    const JsonFields a = f.object("allocator", {"conf", "torch"});
    s.alloc_conf = a.optional_string("conf").value_or("");
    if (a.has("torch")) {
      s.torch = a.parsed("torch", [](const std::string& v) { return &sim::VersionProfile::by_name(v); });
    }
    try {
      (void)sim::AllocatorConfig::parse(s.alloc_conf, *s.torch);
    } catch (const ConfigError& e) {
      a.fail("conf", e.what());
    }
  }
  if (f.has("calls")) s.calls = static_cast<int>(f.integer("calls", 1, kMaxCalls));
  if (f.has("pcie_gbps")) {
    const double gbps = f.number("pcie_gbps", 0, 1e6);
    if (!(gbps > 0)) f.fail("pcie_gbps", "must be > 0");
    s.pcie_bytes_per_second = gbps * 1e9;
  }

  const json& models = f.raw("models");
  if (!models.is_array() || models.empty()) f.fail("models", "must be a non-empty list");
  for (std::size_t i = 0; i < models.size(); ++i) {
    const JsonFields m = f.element("models", i, {"id", "manifest"});
    ScenarioModel model;
    model.id = m.string("id");
    model.manifest_path = m.string("manifest");
    for (const ScenarioModel& other : s.models) {
      if (other.id == model.id) m.fail("id", "duplicate model id \"" + model.id + "\"");
    }
    const std::filesystem::path path = root / model.manifest_path;
    try {
      model.manifest = ModelManifest::load_shared(path);
    } catch (const ParseError& e) {
      m.fail("manifest", e.what());
    }
    s.models.push_back(std::move(model));
  }
  std::vector<std::string_view> model_ids;
  for (const ScenarioModel& m : s.models) model_ids.push_back(m.id);
  auto known_models = [&](const JsonFields& where, const char* key, const std::vector<std::string>& ids) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (std::find(model_ids.begin(), model_ids.end(), ids[i]) == model_ids.end()) {
        where.fail(key, {i}, "names model \"" + ids[i] + "\", which is not in scenario.models" + did_you_mean(ids[i], model_ids));
      }
    }
  };
  if (f.has("initially_resident")) s.initially_resident = f.strings("initially_resident");
  known_models(f, "initially_resident", s.initially_resident);

  const json& stages = f.raw("stages");
  if (!stages.is_array() || stages.empty()) f.fail("stages", "must be a non-empty list");
  std::uint64_t steps_per_call = 0;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const JsonFields st = f.element("stages", i, {"name", "kind", "models", "steps", "workload", "estimator",
                                                  "working_memory", "first_run_outside_allocator"});
    Stage stage;
    stage.name = st.string("name");
    stage.kind = parse_stage_kind(st);
    stage.models = st.strings("models");
    if (stage.models.empty()) st.fail("models", "a stage runs at least one model");
    known_models(st, "models", stage.models);
    if (st.has("steps")) stage.steps = static_cast<int>(st.integer("steps", 1, kMaxSteps));
    steps_per_call += static_cast<std::uint64_t>(stage.steps);
    if (st.has("workload")) stage.workload = read_workload(st);
    if (st.has("estimator")) {
      stage.estimator = st.string("estimator");
      try {
        (void)find_estimator(*stage.estimator);
      } catch (const ConfigError& e) {
        st.fail("estimator", e.what());
      }
      if (!stage.workload) st.fail("estimator", "an estimator needs the stage's workload");
    }
    if (st.has("working_memory")) {
      const json& wm = st.raw("working_memory");
      WorkingMemory memory;
      if (wm.is_string()) {
        memory.source = wm.get<std::string>();
        try {
          memory.trace = load_working_memory_file(root / memory.source);
        } catch (const Error& e) {
          st.fail("working_memory", e.what());
        }
      } else {
        memory.source = "inline";
        memory.trace = read_working_memory(st.object("working_memory", kWorkingMemoryKeys), /*allow_live=*/false);
      }
      stage.working_memory = std::move(memory);
    }
    if (st.has("first_run_outside_allocator")) {
      const JsonFields outside = st.object("first_run_outside_allocator", {"label", "bytes"});
      stage.first_run_outside_allocator = Stage::OutsideAllocator{outside.string("label"), outside.bytes("bytes", true)};
      if (stage.first_run_outside_allocator->bytes == 0) outside.fail("bytes", "must be > 0");
    }
    s.stages.push_back(std::move(stage));
  }
  // What one run holds grows with the stage steps it runs (a record each) and the allocator calls of their
  // working memory (a timeline point each): refuse up front what would exhaust memory minutes later.
  const std::uint64_t stage_runs = static_cast<std::uint64_t>(s.calls) * steps_per_call;
  if (stage_runs > kMaxStageRuns) {
    f.fail(f.has("calls") ? "calls" : "stages", "calls x the stages' steps = " + std::to_string(stage_runs) +
                                                    " stage steps in one run, more than the " + std::to_string(kMaxStageRuns) +
                                                    " a run may hold");
  }
  std::uint64_t events = 0;
  for (const Stage& st : s.stages) {
    if (st.working_memory) events += static_cast<std::uint64_t>(st.steps) * st.working_memory->trace->events.size();
  }
  events *= static_cast<std::uint64_t>(s.calls);
  if (events > kMaxRunEvents) {
    f.fail(f.has("calls") ? "calls" : "stages", "the working memory replays " + std::to_string(events) +
                                                    " allocator events in one run (calls x steps x events), more than the " +
                                                    std::to_string(kMaxRunEvents) + " a run may hold");
  }
  if (f.has("prior_history")) {
    WorkingMemory prior;
    prior.source = "inline";
    prior.trace = read_working_memory(f.object("prior_history", kWorkingMemoryKeys), /*allow_live=*/true);
    s.prior_history = std::move(prior);
  }
  if (f.has("policy_settings")) {
    const JsonFields settings = f.object("policy_settings", {});
    validate_policy_settings(settings);
    s.policy_settings = settings.value();
  }
  if (f.has("finding")) s.finding = read_finding(f.object("finding", {"policy", "property", "aspect", "also", "seed"}));
  return s;
}

Scenario Scenario::load(const std::filesystem::path& path, const std::filesystem::path& root) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ParseError(path.string(), 0, "cannot open scenario file (not a file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParseError(path.string(), 0, "cannot open scenario file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ParseError(path.string(), 0, "read error");
  return from_document(JsonDocument::parse(std::move(text), path.string()), root);
}

json Scenario::to_json() const {
  json device_json = {{"name", device.name},
                      {"platform", device.platform == sim::Platform::kRocm ? "rocm" : "cuda"},
                      {"total", device.total_bytes}};
  if (device.total_global_mem) device_json["total_global_mem"] = device.total_global_mem;
  if (device.context_bytes) device_json["context"] = device.context_bytes;
  if (device.other_process_bytes) device_json["other_processes"] = device.other_process_bytes;
  json models_json = json::array();
  for (const ScenarioModel& m : models) models_json.push_back({{"id", m.id}, {"manifest", m.manifest_path}});
  json stages_json = json::array();
  for (const Stage& st : stages) {
    json j = {{"name", st.name}, {"kind", to_string(st.kind)}, {"models", st.models}};
    if (st.steps != 1) j["steps"] = st.steps;
    if (st.workload) j["workload"] = workload_to_json(*st.workload);
    if (st.estimator) j["estimator"] = *st.estimator;
    if (st.working_memory) {
      if (st.working_memory->source == "inline") j["working_memory"] = working_memory_to_json(*st.working_memory->trace);
      else j["working_memory"] = st.working_memory->source;
    }
    if (st.first_run_outside_allocator) {
      j["first_run_outside_allocator"] = {{"label", st.first_run_outside_allocator->label},
                                          {"bytes", st.first_run_outside_allocator->bytes}};
    }
    stages_json.push_back(std::move(j));
  }
  json out = {{"format", "offsim-scenario/1"},
              {"name", name},
              {"device", device_json},
              {"allocator", {{"conf", alloc_conf}, {"torch", torch->name}}},
              {"models", models_json},
              {"stages", stages_json}};
  if (!description.empty()) out["description"] = description;
  if (!facts.empty()) out["facts"] = facts;
  if (!initially_resident.empty()) out["initially_resident"] = initially_resident;
  if (calls != 1) out["calls"] = calls;
  if (pcie_bytes_per_second != 25e9) out["pcie_gbps"] = pcie_bytes_per_second / 1e9;
  if (!policy_settings.empty()) out["policy_settings"] = policy_settings;
  if (prior_history) out["prior_history"] = working_memory_to_json(*prior_history->trace);
  if (finding) {
    json f = {{"policy", finding->policy}, {"property", finding->property}};
    if (!finding->also.empty()) f["also"] = finding->also;
    if (!finding->aspect.empty()) f["aspect"] = finding->aspect;
    if (finding->seed) f["seed"] = *finding->seed;
    out["finding"] = std::move(f);
  }
  return out;
}

}  // namespace offsim::policies
