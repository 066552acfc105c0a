#include "offsim/policies/scenario.hpp"

#include <fstream>

#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Reads fields of one JSON object and names "file: path.to.field" in every error.
class Fields {
 public:
  Fields(const json& object, std::string file, std::string path)
      : object_(object), file_(std::move(file)), path_(std::move(path)) {
    if (!object_.is_object()) fail("", "must be a JSON object");
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ParseError(file_, 0, where(key) + ": " + what);
  }
  std::string where(const std::string& key) const { return key.empty() ? path_ : path_ + "." + key; }
  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& raw(const char* key) const {
    if (!has(key)) fail(key, "missing");
    return object_.at(key);
  }
  Fields object(const char* key) const { return Fields(raw(key), file_, where(key)); }

  std::string string(const char* key) const {
    const json& v = raw(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  std::string string_or(const char* key, std::string fallback) const { return has(key) ? string(key) : fallback; }
  std::int64_t integer(const char* key) const {
    const json& v = raw(key);
    if (!v.is_number_integer()) fail(key, "must be an integer");
    return v.get<std::int64_t>();
  }
  std::int64_t positive(const char* key) const {
    const std::int64_t v = integer(key);
    if (v <= 0) fail(key, "must be > 0, got " + std::to_string(v));
    return v;
  }
  double number(const char* key) const {
    const json& v = raw(key);
    if (!v.is_number()) fail(key, "must be a number");
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = raw(key);
    if (!v.is_boolean()) fail(key, "must be true or false");
    return v.get<bool>();
  }
  /// A byte count: an integer, or a string such as "44.98GiB" / "16GB".
  std::uint64_t bytes(const char* key) const {
    const json& v = raw(key);
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_string()) {
      try {
        return parse_bytes(v.get<std::string>(), where(key));
      } catch (const ConfigError& e) {
        fail(key, e.what());
      }
    }
    fail(key, "must be a byte count (an integer or a string such as \"44.98GiB\")");
  }
  std::uint64_t bytes_or(const char* key, std::uint64_t fallback) const { return has(key) ? bytes(key) : fallback; }
  std::vector<std::string> strings(const char* key) const {
    if (!has(key)) return {};
    const json& v = raw(key);
    if (!v.is_array()) fail(key, "must be a list of strings");
    std::vector<std::string> out;
    for (const json& e : v) {
      if (!e.is_string()) fail(key, "must be a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  template <typename F>
  auto parsed(const char* key, F&& parse) const {
    try {
      return parse(string(key));
    } catch (const ConfigError& e) {
      fail(key, e.what());
    }
  }
  const std::string& file() const { return file_; }

 private:
  const json& object_;
  std::string file_;
  std::string path_;
};

ScenarioFinding read_finding(const Fields& f) {
  ScenarioFinding finding;
  finding.policy = f.string("policy");
  if (finding.policy.empty()) f.fail("policy", "must name a policy id");
  finding.also = f.strings("also");
  finding.property = f.string("property");
  if (finding.property.size() != 2 || finding.property[0] != 'P' || finding.property[1] < '1' || finding.property[1] > '5') {
    f.fail("property", "must be P1, P2, P3, P4 or P5, got \"" + finding.property + "\"");
  }
  finding.aspect = f.string_or("aspect", "");
  if (f.has("seed")) {
    const json& seed = f.raw("seed");
    if (!seed.is_number_unsigned()) f.fail("seed", "must be an integer >= 0 (RapidCheck seeds are 64-bit unsigned)");
    finding.seed = seed.get<std::uint64_t>();
  }
  return finding;
}

VaeWorkload read_vae_workload(const Fields& f) {
  VaeWorkload w;
  w.family = f.parsed("family", [](const std::string& s) { return parse_vae_family(s); });
  w.op = f.parsed("op", [](const std::string& s) { return parse_vae_op(s); });
  w.pixel_height = static_cast<int>(f.positive("height"));
  w.pixel_width = static_cast<int>(f.positive("width"));
  if (f.has("frames")) w.frames = static_cast<int>(f.positive("frames"));
  if (f.has("batch")) w.batch = static_cast<int>(f.positive("batch"));
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  if (f.has("tile_size")) w.tile_size = static_cast<int>(f.integer("tile_size"));
  if (f.has("backend")) w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  w.memory_optimization = f.boolean("memory_optimization", false);
  if (f.has("vae_tile_sample_min_size")) w.vae_tile_sample_min_size = static_cast<int>(f.positive("vae_tile_sample_min_size"));
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

DenoiseWorkload read_denoise_workload(const Fields& f) {
  DenoiseWorkload w;
  w.model = f.parsed("model", [](const std::string& s) { return parse_diffusion_model(s); });
  const json& shape = f.raw("noise_shape");
  if (!shape.is_array()) f.fail("noise_shape", "must be a list of integers");
  for (const json& d : shape) {
    if (!d.is_number_integer()) f.fail("noise_shape", "must be a list of integers");
    w.noise_shape.push_back(d.get<std::int64_t>());
  }
  if (f.has("ref_latent_elements")) w.ref_latent_elements = f.raw("ref_latent_elements").get<std::vector<std::int64_t>>();
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  w.efficient_attention = f.boolean("efficient_attention", true);
  if (f.has("model_dim")) w.model_dim = static_cast<int>(f.positive("model_dim"));
  if (f.has("backend")) w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

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

StageKind parse_stage_kind(const Fields& f) {
  const std::string kind = f.string("kind");
  for (StageKind k : {StageKind::kTextEncode, StageKind::kDenoise, StageKind::kVaeDecode, StageKind::kVaeEncode,
                      StageKind::kOther}) {
    if (to_string(k) == kind) return k;
  }
  f.fail("kind", "unknown stage kind \"" + kind + "\" (known: text_encode, denoise, vae_decode, vae_encode, other)");
}

sim::Platform parse_platform(const Fields& f) {
  const std::string p = f.string_or("platform", "cuda");
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

std::shared_ptr<const sim::Trace> working_memory_from_json(const json& doc, const std::string& source,
                                                           bool allow_live) {
  const Fields f(doc, source, "working_memory");
  auto trace = std::make_shared<sim::Trace>();
  sim::Provenance& p = trace->metadata.provenance;
  if (f.has("provenance")) {
    const Fields pf = f.object("provenance");
    const std::string kind = pf.string("kind");
    const auto parsed = sim::parse_provenance_kind(kind);
    if (!parsed) pf.fail("kind", "unknown provenance \"" + kind + "\" (gpu-measured, published, cpu-recorded, synthetic)");
    p.kind = *parsed;
    p.source = pf.string_or("source", "");
    p.citation = pf.string_or("citation", "");
    p.gpu = pf.string_or("gpu", "");
    p.torch_version = pf.string_or("torch_version", "");
    p.command = pf.string_or("command", "");
    p.date = pf.string_or("date", "");
    p.notes = pf.string_or("notes", "");
  } else {
    p.kind = sim::ProvenanceKind::kSynthetic;
  }
  if (p.source.empty()) p.source = source;
  trace->metadata.label = f.string_or("label", "");
  const json& ops = f.raw("ops");
  if (!ops.is_array()) f.fail("ops", "must be a list of [\"alloc\", bytes] / [\"free\", index] entries");
  std::vector<bool> freed;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const json& op = ops[i];
    const std::string at = "ops[" + std::to_string(i) + "]";
    if (!op.is_array() || op.size() < 2 || !op[0].is_string()) {
      f.fail(at, "must be [\"alloc\", bytes, {options}] or [\"free\", alloc_index]");
    }
    const std::string kind = op[0].get<std::string>();
    if (kind == "alloc") {
      if (!op[1].is_number_unsigned() || op[1].get<std::uint64_t>() == 0) f.fail(at, "alloc needs a byte count > 0");
      sim::TraceEvent e;
      e.action = sim::TraceAction::kAlloc;
      e.size = op[1].get<std::uint64_t>();
      e.addr = (freed.size() + 1) * 4096;  // a handle, not a device address: replay maps it
      if (op.size() > 2) {
        if (!op[2].is_object()) f.fail(at, "alloc options must be an object such as {\"fallible\": true}");
        if (op[2].value("fallible", false)) e.flags = sim::kTraceFlagFallible;
      }
      trace->events.push_back(e);
      freed.push_back(false);
    } else if (kind == "free") {
      if (!op[1].is_number_unsigned() || op[1].get<std::uint64_t>() >= freed.size()) {
        f.fail(at, "free needs the index of an earlier alloc");
      }
      const std::size_t k = op[1].get<std::size_t>();
      if (freed[k]) f.fail(at, "alloc " + std::to_string(k) + " is freed twice");
      freed[k] = true;
      sim::TraceEvent e;
      e.action = sim::TraceAction::kFreeRequested;
      e.addr = (k + 1) * 4096;
      for (const sim::TraceEvent& a : trace->events) {
        if (a.action == sim::TraceAction::kAlloc && a.addr == e.addr) e.size = a.size;
      }
      trace->events.push_back(e);
      e.action = sim::TraceAction::kFreeCompleted;
      trace->events.push_back(e);
    } else {
      f.fail(at, "unknown op \"" + kind + "\" (alloc or free)");
    }
  }
  for (std::size_t k = 0; k < freed.size() && !allow_live; ++k) {
    if (!freed[k]) f.fail("ops", "alloc " + std::to_string(k) + " is never freed: a stage must release its working memory");
  }
  return trace;
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
  const Fields f(doc, source, "scenario");
  const std::string format = f.string("format");
  if (format != "offsim-scenario/1") f.fail("format", "unsupported \"" + format + "\" (expected offsim-scenario/1)");
  Scenario s;
  s.source = source;
  s.name = f.string("name");
  s.description = f.string_or("description", "");
  s.facts = f.strings("facts");

  const Fields d = f.object("device");
  s.device.name = d.string("name");
  s.device.platform = parse_platform(d);
  s.device.total_bytes = d.bytes("total");
  if (s.device.total_bytes == 0) d.fail("total", "must be > 0");
  s.device.total_global_mem = d.bytes_or("total_global_mem", 0);
  s.device.context_bytes = d.bytes_or("context", 0);
  s.device.other_process_bytes = d.bytes_or("other_processes", 0);
  if (s.device.context_bytes + s.device.other_process_bytes >= s.device.total_bytes) {
    d.fail("context", "context + other_processes leave nothing of the device's total");
  }

  if (f.has("allocator")) {
    const Fields a = f.object("allocator");
    s.alloc_conf = a.string_or("conf", "");
    if (a.has("torch")) {
      s.torch = a.parsed("torch", [](const std::string& v) { return &sim::VersionProfile::by_name(v); });
    }
    try {
      (void)sim::AllocatorConfig::parse(s.alloc_conf, *s.torch);
    } catch (const ConfigError& e) {
      a.fail("conf", e.what());
    }
  }
  if (f.has("calls")) s.calls = static_cast<int>(f.positive("calls"));
  if (f.has("pcie_gbps")) {
    const double gbps = f.number("pcie_gbps");
    if (!(gbps > 0)) f.fail("pcie_gbps", "must be > 0");
    s.pcie_bytes_per_second = gbps * 1e9;
  }

  const json& models = f.raw("models");
  if (!models.is_array() || models.empty()) f.fail("models", "must be a non-empty list");
  for (std::size_t i = 0; i < models.size(); ++i) {
    const Fields m(models[i], source, "scenario.models[" + std::to_string(i) + "]");
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
  auto known_model = [&](const Fields& where, const char* key, const std::string& id) {
    for (const ScenarioModel& m : s.models) {
      if (m.id == id) return;
    }
    where.fail(key, "names model \"" + id + "\", which is not in scenario.models");
  };
  s.initially_resident = f.strings("initially_resident");
  for (const std::string& id : s.initially_resident) known_model(f, "initially_resident", id);

  const json& stages = f.raw("stages");
  if (!stages.is_array() || stages.empty()) f.fail("stages", "must be a non-empty list");
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const Fields st(stages[i], source, "scenario.stages[" + std::to_string(i) + "]");
    Stage stage;
    stage.name = st.string("name");
    stage.kind = parse_stage_kind(st);
    stage.models = st.strings("models");
    if (stage.models.empty()) st.fail("models", "a stage runs at least one model");
    for (const std::string& id : stage.models) known_model(st, "models", id);
    if (st.has("steps")) stage.steps = static_cast<int>(st.positive("steps"));
    if (st.has("workload")) {
      const Fields w = st.object("workload");
      if (w.has("vae")) stage.workload = read_vae_workload(w.object("vae"));
      else if (w.has("denoise")) stage.workload = read_denoise_workload(w.object("denoise"));
      else w.fail("", "must hold \"vae\" or \"denoise\"");
    }
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
        memory.trace = working_memory_from_json(wm, source);
      }
      stage.working_memory = std::move(memory);
    }
    if (st.has("first_run_outside_allocator")) {
      const Fields outside = st.object("first_run_outside_allocator");
      stage.first_run_outside_allocator = Stage::OutsideAllocator{outside.string("label"), outside.bytes("bytes")};
      if (stage.first_run_outside_allocator->bytes == 0) outside.fail("bytes", "must be > 0");
    }
    s.stages.push_back(std::move(stage));
  }
  if (f.has("prior_history")) {
    WorkingMemory prior;
    prior.source = "inline";
    prior.trace = working_memory_from_json(f.raw("prior_history"), source, /*allow_live=*/true);
    s.prior_history = std::move(prior);
  }
  if (f.has("policy_settings")) {
    if (!f.raw("policy_settings").is_object()) f.fail("policy_settings", "must be an object keyed by policy family");
    s.policy_settings = f.raw("policy_settings");
  }
  if (f.has("finding")) s.finding = read_finding(f.object("finding"));
  return s;
}

Scenario Scenario::load(const std::filesystem::path& path, const std::filesystem::path& root) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open scenario file");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not valid JSON: ") + e.what());
  }
  return from_json(doc, path.string(), root);
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
