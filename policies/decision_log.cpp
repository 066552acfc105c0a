#include "offsim/policies/decision_log.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "offsim/policies/published_measurements.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Byte counts above 1 EiB are no device's: refusing them keeps F_P - E - W_load in int64.
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 60;

// One JSON object of one log line; every error names the file, the line and the field path.
class Fields {
 public:
  Fields(const json& object, const std::string& file, std::size_t line, std::string path)
      : object_(object), file_(file), line_(line), path_(std::move(path)) {
    if (!object_.is_object()) fail("", "must be a JSON object");
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    const std::string field = key.empty() ? path_ : (path_.empty() ? key : path_ + "." + key);
    throw ParseError(file_, line_, (field.empty() ? std::string() : "field \"" + field + "\": ") + what);
  }
  bool present(const std::string& key) const { return object_.contains(key); }
  bool has(const std::string& key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& raw(const std::string& key) const {
    if (!object_.contains(key)) fail(key, "missing");
    return object_.at(key);
  }
  Fields object(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_object()) fail(key, "must be an object");
    return Fields(v, file_, line_, path_.empty() ? key : path_ + "." + key);
  }
  std::optional<Fields> object_or_null(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return object(key);
  }
  std::string string(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  std::string string_or(const std::string& key, const std::string& otherwise) const {
    if (!has(key)) return otherwise;
    return string(key);
  }
  bool boolean(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_boolean()) fail(key, "must be true or false");
    return v.get<bool>();
  }
  bool boolean_or(const std::string& key, bool otherwise) const { return has(key) ? boolean(key) : otherwise; }
  std::int64_t integer(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_number_integer()) fail(key, "must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > kMaxBytes) fail(key, "is out of range");
    return v.get<std::int64_t>();
  }
  std::uint64_t bytes(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_number_integer()) fail(key, "must be an integer number of bytes");
    if (!v.is_number_unsigned()) fail(key, "must be >= 0 bytes, got " + v.dump());
    const std::uint64_t b = v.get<std::uint64_t>();
    if (b > kMaxBytes) fail(key, "is above 1 EiB (" + v.dump() + "): not a byte count of any device");
    return b;
  }
  /// The key must be present; null is allowed.
  std::optional<std::uint64_t> bytes_or_null(const std::string& key) const {
    if (raw(key).is_null()) return std::nullopt;
    return bytes(key);
  }
  std::optional<std::uint64_t> optional_bytes(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return bytes(key);
  }
  std::optional<std::int64_t> signed_bytes_or_null(const std::string& key) const {
    const json& v = raw(key);
    if (v.is_null()) return std::nullopt;
    if (!v.is_number_integer()) fail(key, "must be an integer number of bytes (negative allowed)");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > kMaxBytes) fail(key, "is above 1 EiB");
    const std::int64_t b = v.get<std::int64_t>();
    if (b < -static_cast<std::int64_t>(kMaxBytes)) fail(key, "is below -1 EiB");
    return b;
  }
  const json& array(const std::string& key) const {
    const json& v = raw(key);
    if (!v.is_array()) fail(key, "must be a list");
    return v;
  }
  Fields element(const std::string& key, std::size_t i) const {
    return Fields(object_.at(key).at(i), file_, line_, (path_.empty() ? key : path_ + "." + key) + "[" + std::to_string(i) + "]");
  }
  std::vector<std::string> strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const json& v : array(key)) {
      if (!v.is_string()) fail(key, "must be a list of strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  }
  template <typename F>
  auto parsed(const std::string& key, F parse) const {
    const std::string text = string(key);
    try {
      return parse(text);
    } catch (const ConfigError& e) {
      fail(key, e.what());
    }
  }
  std::size_t line() const { return line_; }

 private:
  const json& object_;
  const std::string& file_;
  std::size_t line_;
  std::string path_;
};

StageKind parse_stage_kind(const Fields& f, const std::string& key) {
  const std::string kind = f.string(key);
  if (kind == "text_encode") return StageKind::kTextEncode;
  if (kind == "denoise") return StageKind::kDenoise;
  if (kind == "vae_decode") return StageKind::kVaeDecode;
  if (kind == "vae_encode") return StageKind::kVaeEncode;
  if (kind == "other") return StageKind::kOther;
  f.fail(key, "unknown stage kind \"" + kind + "\" (text_encode, denoise, vae_decode, vae_encode, other)");
}

std::optional<LoggedStageKey> read_stage_key(const Fields& f) {
  if (!f.has("stage")) {
    (void)f.raw("stage");  // the key must be present; null = made outside a stage
    return std::nullopt;
  }
  const Fields s = f.object("stage");
  LoggedStageKey key;
  key.name = s.string("name");
  if (key.name.empty()) s.fail("name", "must not be empty");
  key.kind = parse_stage_kind(s, "kind");
  const std::int64_t call = s.integer("call");
  const std::int64_t step = s.integer("step");
  if (call < 0 || call > 1000000) s.fail("call", "must be a 0-based call index");
  if (step < 0 || step > 1000000) s.fail("step", "must be a 0-based step index");
  key.call = static_cast<int>(call);
  key.step = static_cast<int>(step);
  return key;
}

std::optional<LoggedMemory> read_memory(const Fields& parent, const std::string& key) {
  const std::optional<Fields> m = parent.object_or_null(key);
  if (!m) {
    (void)parent.raw(key);
    return std::nullopt;
  }
  LoggedMemory out;
  out.free = m->optional_bytes("free_bytes");
  out.total = m->optional_bytes("total_bytes");
  out.allocated = m->optional_bytes("allocated_bytes");
  out.reserved = m->optional_bytes("reserved_bytes");
  out.max_allocated = m->optional_bytes("max_allocated_bytes");
  out.max_reserved = m->optional_bytes("max_reserved_bytes");
  out.inactive_split = m->optional_bytes("inactive_split_bytes");
  if (out.allocated && out.reserved && *out.allocated > *out.reserved) {
    m->fail("allocated_bytes", "is above reserved_bytes (" + std::to_string(*out.reserved) + ")");
  }
  if (out.inactive_split && out.reserved && out.allocated && *out.inactive_split > *out.reserved - *out.allocated) {
    m->fail("inactive_split_bytes", "is above reserved_bytes - allocated_bytes");
  }
  if (out.free && out.total && *out.free > *out.total) m->fail("free_bytes", "is above total_bytes");
  return out;
}

std::optional<LoggedOom> read_oom(const Fields& parent, const std::string& key) {
  const std::optional<Fields> o = parent.object_or_null(key);
  if (!o) return std::nullopt;
  LoggedOom out;
  out.message = o->string("message");
  if (o->present("requested_bytes")) out.requested = o->bytes_or_null("requested_bytes");
  return out;
}

std::vector<LoggedTransfer> read_transfers(const Fields& f, const std::string& key) {
  std::vector<LoggedTransfer> out;
  const json& list = f.array(key);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Fields t = f.element(key, i);
    LoggedTransfer item;
    item.model = t.string("model");
    if (item.model.empty()) t.fail("model", "must not be empty");
    item.bytes = t.bytes("bytes");
    out.push_back(std::move(item));
  }
  return out;
}

std::optional<Backend> header_backend(const Fields& device) {
  if (!device.has("backend")) {
    (void)device.raw("backend");
    return std::nullopt;
  }
  const std::string text = device.string("backend");
  if (text == "cpu") return std::nullopt;  // no device: nothing to look up by backend
  return device.parsed("backend", [](const std::string& s) { return parse_backend(s); });
}

DecisionLogHeader read_header(const Fields& f, std::string& profile, std::string& profile_note) {
  DecisionLogHeader h;
  const Fields p = f.object("policy");
  h.policy_id = p.string("id");
  if (h.policy_id.empty()) p.fail("id", "must not be empty");
  h.policy_family = p.string_or("family", "");
  h.policy_version = p.string_or("version", "");
  h.free_memory_formula = p.string("free_memory_formula");
  h.p1_slack = p.bytes("p1_slack_bytes");
  const Fields d = f.object("device");
  h.device_name = d.string_or("name", "");
  h.device_total = d.bytes_or_null("total_bytes");
  h.backend = header_backend(d);
  h.measured = d.boolean("measured");
  h.memory_source = d.string("memory_source");
  if (h.memory_source != "torch.cuda" && h.memory_source != "offsim-simulator" && h.memory_source != "none") {
    d.fail("memory_source", "must be \"torch.cuda\", \"offsim-simulator\" or \"none\", got \"" + h.memory_source + "\"");
  }
  if (h.measured && h.memory_source != "torch.cuda") {
    d.fail("measured", "true needs memory_source \"torch.cuda\" (figures read from a real device)");
  }
  if (f.has("torch")) {
    const Fields t = f.object("torch");
    h.torch_version = t.string_or("version", "");
  }
  h.alloc_conf = f.string_or("alloc_conf", "");
  profile = sim::VersionProfile::for_torch_version(h.torch_version, &profile_note).name;
  try {
    (void)sim::AllocatorConfig::parse(h.alloc_conf, sim::VersionProfile::by_name(profile));
  } catch (const ConfigError& e) {
    f.fail("alloc_conf", e.what());
  }
  return h;
}

VaeWorkload read_vae_workload(const Fields& f, const DecisionLogHeader& header) {
  VaeWorkload w;
  w.family = f.parsed("family", [](const std::string& s) { return parse_vae_family(s); });
  w.op = f.parsed("op", [](const std::string& s) { return parse_vae_op(s); });
  auto positive = [&](const char* key) {
    const std::int64_t v = f.integer(key);
    if (v <= 0 || v > 1000000) f.fail(key, "must be a positive size, got " + std::to_string(v));
    return static_cast<int>(v);
  };
  w.pixel_height = positive("height");
  w.pixel_width = positive("width");
  if (f.has("frames")) w.frames = positive("frames");
  if (f.has("batch")) w.batch = positive("batch");
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  if (f.has("tile_size")) {
    const std::int64_t t = f.integer("tile_size");
    if (t < 0 || t > 1000000) f.fail("tile_size", "must be >= 0 (0 = the VAE's default tile)");
    w.tile_size = static_cast<int>(t);
  }
  if (f.has("backend")) {
    w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  } else if (header.backend) {
    w.backend = *header.backend;
  } else {
    f.fail("backend", "missing, and the header names no device backend");
  }
  w.memory_optimization = f.boolean_or("memory_optimization", false);
  if (f.has("vae_tile_sample_min_size")) w.vae_tile_sample_min_size = positive("vae_tile_sample_min_size");
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

DenoiseWorkload read_denoise_workload(const Fields& f, const DecisionLogHeader& header) {
  DenoiseWorkload w;
  w.model = f.parsed("model", [](const std::string& s) { return parse_diffusion_model(s); });
  for (const json& d : f.array("noise_shape")) {
    if (!d.is_number_integer()) f.fail("noise_shape", "must be a list of integers");
    w.noise_shape.push_back(d.get<std::int64_t>());
  }
  if (f.has("ref_latent_elements")) {
    for (const json& d : f.array("ref_latent_elements")) {
      if (!d.is_number_integer()) f.fail("ref_latent_elements", "must be a list of integers");
      w.ref_latent_elements.push_back(d.get<std::int64_t>());
    }
  }
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  w.efficient_attention = f.boolean_or("efficient_attention", true);
  if (f.has("model_dim")) w.model_dim = static_cast<int>(f.integer("model_dim"));
  if (f.has("backend")) {
    w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  } else if (header.backend) {
    w.backend = *header.backend;
  } else {
    f.fail("backend", "missing, and the header names no device backend");
  }
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

LoggedDecision read_decision(const Fields& f) {
  LoggedDecision d;
  d.line = f.line();
  d.seq = f.integer("seq");
  d.stage = read_stage_key(f);
  d.models = f.strings("models");
  const Fields e = f.object("estimate");
  d.estimate = e.bytes_or_null("bytes");
  d.estimate_passed_bytes = e.present("passed_bytes") ? e.bytes_or_null("passed_bytes") : std::nullopt;
  d.estimate_passed = e.present("passed") ? e.boolean("passed") : d.estimate_passed_bytes.has_value();
  if (!d.estimate_passed && d.estimate_passed_bytes) e.fail("passed", "is false but passed_bytes holds a value");
  d.estimate_source = e.string("source");
  const Fields fp = f.object("free_memory");
  d.free_memory = fp.signed_bytes_or_null("bytes");
  d.free_memory_formula = fp.string("formula");
  d.weights_loaded = f.bytes("weights_loaded_bytes");
  const std::string stop = f.string("stop_reason");
  if (stop == "satisfied") d.stop = StopReason::kSatisfied;
  else if (stop == "exhausted") d.stop = StopReason::kExhausted;
  else if (stop == "not_applicable") d.stop = StopReason::kNotApplicable;
  else f.fail("stop_reason", "must be \"satisfied\", \"exhausted\" or \"not_applicable\", got \"" + stop + "\"");
  d.evictions = read_transfers(f, "evictions");
  if (f.has("loads")) {
    d.loads = read_transfers(f, "loads");
    std::uint64_t sum = 0;
    for (const LoggedTransfer& t : *d.loads) sum += t.bytes;
    if (sum != d.weights_loaded) {
      f.fail("weights_loaded_bytes", std::to_string(d.weights_loaded) + " is not the sum of loads[] (" +
                                         std::to_string(sum) + ")");
    }
  }
  if (f.present("memory")) d.memory = read_memory(f, "memory");
  if (f.present("oom")) d.oom = read_oom(f, "oom");
  return d;
}

LoggedStage read_stage(const Fields& f, const DecisionLogHeader& header) {
  LoggedStage s;
  s.line = f.line();
  s.seq = f.integer("seq");
  const std::optional<LoggedStageKey> key = read_stage_key(f);
  if (!key) f.fail("stage", "a stage line names its stage");
  s.stage = *key;
  if (f.has("workload")) {
    const Fields w = f.object("workload");
    if (w.has("vae")) {
      s.workload = read_vae_workload(w.object("vae"), header);
    } else if (w.has("denoise")) {
      s.workload = read_denoise_workload(w.object("denoise"), header);
    } else {
      w.fail("", "must hold \"vae\" or \"denoise\"");
    }
    s.workload_text = describe(*s.workload);
  }
  if (f.has("working_memory")) {
    s.working_memory = f.string("working_memory");
    if (s.working_memory->empty()) f.fail("working_memory", "must be a path or null");
  }
  for (const json& v : f.array("decisions")) {
    if (!v.is_number_integer()) f.fail("decisions", "must be a list of decision seq numbers");
    s.decisions.push_back(v.get<std::int64_t>());
  }
  const Fields m = f.object("memory");
  s.before = read_memory(m, "before");
  s.after = read_memory(m, "after");
  s.peak_reserved = m.bytes_or_null("peak_reserved_bytes");
  s.peak_reset = m.boolean_or("peak_reset", false);
  if (s.peak_reserved && s.before && s.before->reserved && *s.peak_reserved < *s.before->reserved) {
    m.fail("peak_reserved_bytes", "is below memory.before.reserved_bytes: a peak over the stage cannot be");
  }
  if (s.peak_reserved && s.after && s.after->reserved && *s.peak_reserved < *s.after->reserved) {
    m.fail("peak_reserved_bytes", "is below memory.after.reserved_bytes: a peak over the stage cannot be");
  }
  const Fields o = f.object("outcome");
  s.completed = o.boolean("completed");
  s.oom = read_oom(o, "oom");
  if (s.completed && s.oom) o.fail("oom", "an unhandled OOM but completed is true");
  s.handled_ooms = o.bytes("handled_ooms");
  if (f.has("models")) {
    std::vector<LoggedModel> models;
    const json& list = f.array("models");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Fields e = f.element("models", i);
      LoggedModel model;
      model.model = e.string("model");
      model.device_bytes = e.bytes("device_bytes");
      model.offloaded = e.boolean("offloaded");
      model.resident_by_design = e.boolean_or("resident_by_design", false);
      if (model.offloaded && model.resident_by_design) e.fail("offloaded", "and resident_by_design are both true");
      models.push_back(std::move(model));
    }
    s.models = std::move(models);
  }
  return s;
}

bool same_key(const LoggedStageKey& a, const LoggedStageKey& b) {
  return a.name == b.name && a.kind == b.kind && a.call == b.call && a.step == b.step;
}

std::string where(const LoggedStageKey& k) {
  return "stage \"" + k.name + "\" (call " + std::to_string(k.call + 1) + ", step " + std::to_string(k.step + 1) + ")";
}

std::string signed_bytes(std::int64_t b) {
  return b < 0 ? "-" + format_bytes(static_cast<std::uint64_t>(-b)) : format_bytes(static_cast<std::uint64_t>(b));
}

}  // namespace

DecisionLog parse_decision_log(std::istream& in, const std::string& source) {
  DecisionLog log;
  log.file = source;
  std::string text;
  std::size_t line = 0;
  bool have_header = false;
  std::string profile, profile_note;
  std::map<std::int64_t, std::size_t> decision_index;  // seq -> index in log.decisions
  std::set<std::int64_t> claimed;                        // decision seqs a stage line already listed
  std::optional<std::int64_t> last_seq;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::parse_error& e) {
      throw ParseError(source, line, std::string("not a JSON line: ") + e.what());
    }
    const Fields f(doc, log.file, line, "");
    const std::string schema = f.string("schema");
    if (schema != kDecisionLogSchema) {
      f.fail("schema", "\"" + schema + "\" is not supported (this offsim reads " + kDecisionLogSchema + ")");
    }
    const std::string record = f.string("record");
    if (!have_header) {
      if (record != "header") f.fail("record", "the first line must be the header, got \"" + record + "\"");
      log.header = read_header(f, profile, profile_note);
      have_header = true;
      continue;
    }
    if (record == "header") f.fail("record", "a second header");
    if (record != "decision" && record != "stage") {
      f.fail("record", "must be \"header\", \"decision\" or \"stage\", got \"" + record + "\"");
    }
    const std::int64_t seq = f.integer("seq");
    if (last_seq && seq <= *last_seq) {
      f.fail("seq", std::to_string(seq) + " does not follow " + std::to_string(*last_seq) + " (seq increases line by line)");
    }
    last_seq = seq;
    if (record == "decision") {
      decision_index[seq] = log.decisions.size();
      log.decisions.push_back(read_decision(f));
      continue;
    }
    LoggedStage stage = read_stage(f, log.header);
    for (std::int64_t d : stage.decisions) {
      auto it = decision_index.find(d);
      if (it == decision_index.end()) f.fail("decisions", "names decision seq " + std::to_string(d) + ", which no earlier line holds");
      if (!claimed.insert(d).second) f.fail("decisions", "decision seq " + std::to_string(d) + " belongs to another stage line already");
      const LoggedDecision& decision = log.decisions[it->second];
      if (decision.stage && !same_key(*decision.stage, stage.stage)) {
        f.fail("decisions", "decision seq " + std::to_string(d) + " (line " + std::to_string(decision.line) + ") was made for " +
                                where(*decision.stage) + ", not " + where(stage.stage));
      }
    }
    log.stages.push_back(std::move(stage));
  }
  if (in.bad()) throw ParseError(source, line, "read error");
  if (!have_header) throw ParseError(source, line, "no header line: not an offsim-decision/1 log");
  return log;
}

DecisionLog read_decision_log(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ParseError(path.string(), 0, "cannot open the decision log");
  return parse_decision_log(in, path.string());
}

bool DecisionLogReport::checked_nothing() const {
  return decisions == 0 ||
         std::all_of(results.begin(), results.end(), [](const DecisionLogProperty& p) { return p.checked == 0; });
}

bool DecisionLogReport::failed() const {
  return checked_nothing() ||
         std::any_of(results.begin(), results.end(), [](const DecisionLogProperty& p) { return p.verdict == Verdict::kFail; });
}

namespace {

// What the checker needs besides the log: published points (read once) and the allocator profile.
class TruePeakFinder {
 public:
  TruePeakFinder(const DecisionLog& log, const DecisionLogOptions& options) : log_(log), options_(options) {
    profile_ = &sim::VersionProfile::for_torch_version(log.header.torch_version, &profile_note_);
  }

  StageTruePeak find(const LoggedStage& s) {
    StageTruePeak out;
    out.line = s.line;
    out.stage = where(s.stage);
    if (s.peak_reserved && s.before && s.before->reserved) out.t_warm = *s.peak_reserved - *s.before->reserved;
    std::vector<std::string> tried;
    if (published(s, out, tried)) return out;
    if (stage_trace(s, out, tried)) return out;
    if (logged_peak(s, out, tried)) return out;
    for (std::size_t i = 0; i < tried.size(); ++i) out.why_none += (i ? "; " : "") + tried[i];
    return out;
  }

 private:
  bool published(const LoggedStage& s, StageTruePeak& out, std::vector<std::string>& tried) {
    const VaeWorkload* w = s.workload ? std::get_if<VaeWorkload>(&*s.workload) : nullptr;
    if (w == nullptr) {
      tried.push_back("no published measurement: the stage logs no VAE workload");
      return false;
    }
    // Published points are untiled single images measured in a fresh process: only that workload matches.
    if (w->tile_size || w->frames != 1 || w->batch != 1 || w->memory_optimization) {
      tried.push_back("no published measurement for a tiled, batched, multi-frame or memory-optimized workload");
      return false;
    }
    if (!points_) points_ = load_published_points(options_.root);
    std::size_t matches = 0;
    const PublishedPoint* best = best_published_point(*points_, *w, &matches);
    if (best == nullptr) {
      tried.push_back("no published measurement of " + s.workload_text);
      return false;
    }
    out.t_cold = best->peak_reserved;
    out.provenance = sim::ProvenanceKind::kPublishedMeasurement;
    out.origin = matches > 1 ? "published measurement (largest of " + std::to_string(matches) + " matching points)"
                             : "published measurement";
    out.label = std::string(sim::to_string(out.provenance)) + ": " + best->citation +
                (best->derived ? " (recomputed from a published implied constant)" : "");
    return true;
  }

  bool stage_trace(const LoggedStage& s, StageTruePeak& out, std::vector<std::string>& tried) {
    if (!s.working_memory) {
      tried.push_back("no stage trace referenced");
      return false;
    }
    const std::filesystem::path path = std::filesystem::path(*s.working_memory).is_absolute()
                                           ? std::filesystem::path(*s.working_memory)
                                           : options_.root / *s.working_memory;
    WorkingMemory memory;
    memory.source = *s.working_memory;
    try {
      memory.trace = load_working_memory_file(path);
    } catch (const Error& e) {
      throw ParseError(log_.file, s.line, "field \"working_memory\": " + std::string(e.what()));
    }
    // T_cold as runner.cpp's cold_peak computes it, on the log's platform and allocator settings. The log
    // names no weight manifests, so the emptied allocator holds no weights (cold_peak empties the cache
    // after loading them; they only shift addresses).
    Scenario scenario;
    scenario.name = log_.file;
    scenario.device.name = log_.header.device_name;
    scenario.device.platform = log_.header.backend == Backend::rocm ? sim::Platform::kRocm : sim::Platform::kCuda;
    scenario.device.total_bytes = log_.header.device_total.value_or(0);
    scenario.alloc_conf = log_.header.alloc_conf;
    scenario.torch = profile_;
    Stage stage;
    stage.name = s.stage.name;
    stage.kind = s.stage.kind;
    stage.working_memory = memory;
    const std::optional<std::uint64_t> cold = cold_peak(scenario, stage);
    if (!cold) {
      tried.push_back("the stage trace " + *s.working_memory + " does not run even on an empty 1 TiB device");
      return false;
    }
    out.t_cold = *cold;
    out.provenance = memory.provenance();
    out.origin = "stage trace " + *s.working_memory + " replayed from an emptied simulated allocator (torch " +
                 profile_->name + " profile" + (profile_note_.empty() ? "" : "; " + profile_note_) + ")";
    out.label = memory.label();
    return true;
  }

  bool logged_peak(const LoggedStage& s, StageTruePeak& out, std::vector<std::string>& tried) const {
    if (!log_.header.measured) {
      tried.push_back("the log's peaks were not measured on a GPU (device.measured is false)");
      return false;
    }
    if (!out.t_warm) {
      tried.push_back("the stage line has no peak reserved and reserved-before figures");
      return false;
    }
    out.t_cold = out.t_warm;
    out.provenance = sim::ProvenanceKind::kGpuMeasured;
    const std::uint64_t cached =
        s.before && s.before->allocated && s.before->reserved ? *s.before->reserved - *s.before->allocated : 0;
    out.origin = "logged peak reserved growth of the stage (warm: " + format_bytes(cached) +
                 " cached but unallocated at its start)";
    out.label = std::string(sim::to_string(out.provenance)) + ": " + log_.file + " line " + std::to_string(s.line) +
                (log_.header.device_name.empty() ? "" : " on " + log_.header.device_name);
    return true;
  }

  const DecisionLog& log_;
  const DecisionLogOptions& options_;
  const sim::VersionProfile* profile_ = nullptr;
  std::string profile_note_;
  std::optional<std::vector<PublishedPoint>> points_;
};

void violation(DecisionLogProperty& p, std::size_t line, const std::string& detail) {
  if (p.violations == 0) p.detail = "line " + std::to_string(line) + ": " + detail;
  ++p.violations;
  p.lines.push_back(line);
}

void settle(DecisionLogProperty& p, Verdict on_violation, const std::string& why_not_applicable) {
  if (p.checked == 0) {
    p.verdict = Verdict::kNotApplicable;
    p.detail = "n/a: " + (p.detail.empty() ? why_not_applicable : p.detail);
  } else {
    p.verdict = p.violations > 0 ? on_violation : Verdict::kPass;
  }
}

// Is E judged by P2/P5 here (properties.cpp, estimate_in_domain): an offsim estimator id named as the
// source is judged inside its stated domain only; anything else (a default, the policy's own estimator)
// claims every workload.
bool in_domain(const LoggedDecision& d, const LoggedStage& s, std::string& why_not) {
  const std::string id = d.estimate_source.substr(0, d.estimate_source.find(' '));
  if (!s.workload || id.find('/') == std::string::npos || id.find('@') == std::string::npos) return true;
  for (const Estimator& e : all_estimators()) {
    if (e.id != id) continue;
    if (!e.passes_estimate) return true;
    why_not = e.domain.why_not_covered(*s.workload);
    return why_not.empty();
  }
  return true;
}

}  // namespace

DecisionLogReport check_decision_log(const DecisionLog& log, const DecisionLogOptions& options) {
  DecisionLogReport report;
  report.file = log.file;
  report.header = log.header;
  report.decisions = log.decisions.size();
  report.stages = log.stages.size();
  DecisionLogProperty& p1 = report.results[0];
  DecisionLogProperty& p2 = report.results[1];
  DecisionLogProperty& p3 = report.results[2];
  DecisionLogProperty& p4 = report.results[3];
  DecisionLogProperty& p5 = report.results[4];
  p1.id = "P1";
  p2.id = "P2";
  p3.id = "P3";
  p4.id = "P4";
  p5.id = "P5";

  std::map<std::int64_t, const LoggedDecision*> by_seq;
  for (const LoggedDecision& d : log.decisions) by_seq[d.seq] = &d;
  std::set<std::int64_t> in_stage;

  // P1: the policy's own stop condition against what it then reserved and loaded.
  bool any_formula = !log.header.free_memory_formula.empty();
  for (const LoggedDecision& d : log.decisions) {
    const bool has_formula = !d.free_memory_formula.empty() || !log.header.free_memory_formula.empty();
    any_formula = any_formula || !d.free_memory_formula.empty();
    if (!has_formula || d.stop != StopReason::kSatisfied || !d.free_memory || !d.estimate) continue;
    ++p1.checked;
    const auto need = static_cast<std::int64_t>(*d.estimate + d.weights_loaded);
    if (*d.free_memory + static_cast<std::int64_t>(log.header.p1_slack) < need) {
      violation(p1, d.line, (d.stage ? where(*d.stage) : std::string("decision outside a stage")) +
                                ": stopped as satisfied with F_P = " + signed_bytes(*d.free_memory) + " < E + W_load = " +
                                format_bytes(*d.estimate) + " + " + format_bytes(d.weights_loaded) +
                                (log.header.p1_slack ? " - slack " + format_bytes(log.header.p1_slack) : ""));
    }
  }
  if (p1.checked == 0) {
    p1.detail = !any_formula ? "schedule-based policy: the log declares no free-memory formula"
                             : "no decision stopped as satisfied with both F_P and E logged";
  }

  TruePeakFinder finder(log, options);
  std::string p2_domain_note;
  for (const LoggedStage& s : log.stages) {
    StageTruePeak t = finder.find(s);
    std::vector<const LoggedDecision*> decisions;
    for (std::int64_t seq : s.decisions) {
      decisions.push_back(by_seq.at(seq));
      in_stage.insert(seq);
    }
    // P2 / P5: every estimate made for this stage against its T_cold.
    for (const LoggedDecision* d : decisions) {
      if (!d->estimate || !t.t_cold) continue;
      std::string why_not;
      if (!in_domain(*d, s, why_not)) {
        if (p2_domain_note.empty()) p2_domain_note = "outside the estimator's stated domain: " + why_not;
        continue;
      }
      ++p2.checked;
      ++p5.checked;
      const std::string e_text = "E = " + format_bytes(*d->estimate) + " (" + d->estimate_source + ")";
      if (*d->estimate < *t.t_cold) {
        violation(p2, d->line, where(s.stage) + ": " + e_text + " < T_cold = " + format_bytes(*t.t_cold) + " [" + t.label + "]");
      }
      if (static_cast<double>(*d->estimate) > options.p5_factor * static_cast<double>(*t.t_cold)) {
        violation(p5, d->line, where(s.stage) + ": " + e_text + " > " + std::to_string(options.p5_factor).substr(0, 4) +
                                   " x T_cold = " + format_bytes(*t.t_cold) + " [" + t.label + "]");
      }
    }
    // P3: the stage completed, or its OOM is diagnosed.
    ++p3.checked;
    if (s.oom) {
      const LoggedDecision* last = nullptr;
      bool load_failed = false;
      for (const LoggedDecision* d : decisions) {
        load_failed = load_failed || d->oom.has_value();
        if (d->estimate) last = d;
      }
      const LoggedDecision* last_fp = nullptr;
      for (const LoggedDecision* d : decisions) {
        if (d->free_memory) last_fp = d;
      }
      std::string diagnosis;
      if (load_failed) {
        diagnosis = "weights: loading the stage's models failed";
      } else if (last && t.t_cold && *last->estimate < *t.t_cold) {
        diagnosis = "estimator fault: E = " + format_bytes(*last->estimate) + " < T_cold = " + format_bytes(*t.t_cold) +
                    " [" + t.label + "]";
      } else if (last_fp && s.before && s.before->free && s.before->reserved && s.before->allocated &&
                 *last_fp->free_memory >
                     static_cast<std::int64_t>(*s.before->free + *s.before->reserved - *s.before->allocated -
                                               s.before->inactive_split.value_or(0))) {
        const std::uint64_t releasable = *s.before->reserved - *s.before->allocated - s.before->inactive_split.value_or(0);
        diagnosis = "accounting fault: F_P = " + signed_bytes(*last_fp->free_memory) + " > driver free " +
                    format_bytes(*s.before->free) + " + releasable cache " + format_bytes(releasable) +
                    " (the policy counts bytes it cannot obtain: " +
                    format_bytes(s.before->inactive_split.value_or(0)) +
                    " stranded in split segments, the rest held by tensors outside the cache)";
      } else if (t.t_cold && t.t_warm && *t.t_warm > *t.t_cold) {
        diagnosis = "fragmentation fault: T_warm = " + format_bytes(*t.t_warm) + " > T_cold = " + format_bytes(*t.t_cold) +
                    (s.before && s.before->inactive_split ? "; " + format_bytes(*s.before->inactive_split) + " stranded in split segments"
                                                          : "");
      } else {
        diagnosis = "the device lacks memory the policy did not account for (memory outside the allocator, "
                    "weights it left resident, or no estimate at all)";
        if (!t.t_cold) diagnosis += "; no T_cold for this stage (" + t.why_none + ")";
      }
      violation(p3, s.line, where(s.stage) + ": " + s.oom->message + " -> " + diagnosis);
      if (report.diagnosis.empty()) report.diagnosis = diagnosis;
    }
    // P4 (residency half): what the policy reports offloaded holds nothing.
    if (s.models) {
      ++p4.checked;
      for (const LoggedModel& m : *s.models) {
        if (m.offloaded && m.device_bytes > 0) {
          violation(p4, s.line, "after " + where(s.stage) + ": \"" + m.model + "\" is reported offloaded but holds " +
                                    format_bytes(m.device_bytes) + " on the device");
        }
      }
    }
    report.true_peaks.push_back(std::move(t));
  }
  // A decision whose weight load raised and no stage line followed (the test ended there).
  for (const LoggedDecision& d : log.decisions) {
    if (in_stage.count(d.seq) || !d.oom) continue;
    ++p3.checked;
    const std::string diagnosis = "weights: loading the stage's models failed";
    violation(p3, d.line, (d.stage ? where(*d.stage) : std::string("decision outside a stage")) + ": " + d.oom->message +
                              " -> " + diagnosis);
    if (report.diagnosis.empty()) report.diagnosis = diagnosis;
  }

  std::string p2_why = p2_domain_note;
  if (p2_why.empty()) {
    bool any_estimate = false;
    for (const LoggedDecision& d : log.decisions) any_estimate = any_estimate || d.estimate.has_value();
    if (!any_estimate) {
      p2_why = "no decision logs an estimate E";
    } else {
      p2_why = "no stage with a logged estimate has a T_cold";
      for (const StageTruePeak& t : report.true_peaks) {
        if (!t.t_cold) {
          p2_why += " (" + t.stage + ": " + t.why_none + ")";
          break;
        }
      }
    }
  }
  const std::string p5_why = p2_why;
  settle(p1, Verdict::kFail, "");
  settle(p2, Verdict::kFail, p2_why);
  settle(p3, Verdict::kFail, "the log has no stage lines");
  settle(p4, Verdict::kFail, "no stage line reports per-model device bytes");
  settle(p5, Verdict::kReported, p5_why);
  const std::string capacity_note =
      "capacity half (min capacity for k calls = for 1 call) needs reruns at other capacities: not decidable from a log";
  if (p4.verdict != Verdict::kFail) p4.detail += (p4.detail.empty() ? "" : "; ") + capacity_note;
  return report;
}

DecisionLogReport check_decision_log(const std::filesystem::path& path, const DecisionLogOptions& options) {
  return check_decision_log(read_decision_log(path), options);
}

std::string format_report(const DecisionLogReport& r) {
  std::ostringstream out;
  const DecisionLogHeader& h = r.header;
  out << "decision log " << r.file << "\n";
  out << "  policy " << h.policy_id << (h.policy_family.empty() ? "" : " (" + h.policy_family + ")") << "\n";
  out << "  device " << (h.device_name.empty() ? "unnamed" : h.device_name)
      << (h.device_total ? ", " + format_bytes(*h.device_total) : "")
      << (h.backend ? ", " + std::string(to_string(*h.backend)) : "") << "; figures: "
      << (h.measured ? "measured on the GPU (torch.cuda)" : h.memory_source) << "\n";
  out << "  " << r.decisions << " decisions, " << r.stages << " stage steps\n";
  for (const StageTruePeak& t : r.true_peaks) {
    out << "  T line " << t.line << " " << t.stage << ": ";
    if (t.t_cold) {
      out << "T_cold = " << format_bytes(*t.t_cold) << " from " << t.origin << " [" << t.label << "]";
    } else {
      out << "no T_cold (" << t.why_none << ")";
    }
    if (t.t_warm) out << "; logged T_warm = " << format_bytes(*t.t_warm);
    out << "\n";
  }
  for (const DecisionLogProperty& p : r.results) {
    out << "  " << p.id << " " << to_string(p.verdict);
    if (p.checked > 0) out << " (" << p.checked << " checked, " << p.violations << " violations)";
    // An n/a detail already reads "n/a: why".
    const bool prefixed = p.verdict == Verdict::kNotApplicable && p.detail.rfind("n/a: ", 0) == 0;
    if (!p.detail.empty()) out << ": " << (prefixed ? p.detail.substr(5) : p.detail);
    out << "\n";
  }
  if (!r.diagnosis.empty()) out << "  diagnosis: " << r.diagnosis << "\n";
  if (r.checked_nothing()) {
    out << "decisions: FAILED: nothing was checked (" << r.decisions
        << " decisions logged; a log holding only its header is what a hook that patched nothing leaves)\n";
  } else {
    out << (r.failed() ? "decisions: FAILED\n" : "decisions: passed\n");
  }
  return out.str();
}

}  // namespace offsim::policies
