#include "offsim/policies/decision_log.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "offsim/policies/json_fields.hpp"
#include "offsim/policies/published_measurements.hpp"
#include "offsim/policies/runner.hpp"
#include "offsim/sim/allocator_config.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/version_profile.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Every byte count of a log is at most 1 EiB (kMaxJsonBytes), which also keeps F_P - E - W_load in int64.

// Messages name fields from the line's root, quoted: `log.jsonl:3:57: field "estimate.bytes": ...`. A null
// is an explicit "not recorded" in this format, so nulls are read where the schema allows them.
JsonFieldNaming log_naming() { return {"", true, true}; }

std::optional<std::uint64_t> bytes_or_null(const JsonFields& f, std::string_view key) {
  if (f.raw(key).is_null()) return std::nullopt;  // the key must be present; null is allowed
  return f.bytes(key, /*strings_allowed=*/false);
}

std::optional<std::uint64_t> optional_bytes(const JsonFields& f, std::string_view key) {
  if (!f.has(key)) return std::nullopt;
  return f.bytes(key, false);
}

std::optional<std::int64_t> signed_bytes_or_null(const JsonFields& f, std::string_view key) {
  if (f.raw(key).is_null()) return std::nullopt;
  constexpr auto kMax = static_cast<std::int64_t>(kMaxJsonBytes);
  return f.integer(key, -kMax, kMax);
}

const json& list(const JsonFields& f, std::string_view key) {
  const json& v = f.raw(key);
  if (!v.is_array()) f.fail(key, "must be a list");
  return v;
}

StageKind parse_stage_kind(const JsonFields& f, std::string_view key) {
  const std::string kind = f.string(key);
  if (kind == "text_encode") return StageKind::kTextEncode;
  if (kind == "denoise") return StageKind::kDenoise;
  if (kind == "vae_decode") return StageKind::kVaeDecode;
  if (kind == "vae_encode") return StageKind::kVaeEncode;
  if (kind == "other") return StageKind::kOther;
  f.fail(key, "unknown stage kind \"" + kind + "\"" +
                  did_you_mean(kind, {"text_encode", "denoise", "vae_decode", "vae_encode", "other"}));
}

std::optional<LoggedStageKey> read_stage_key(const JsonFields& f) {
  if (!f.has("stage")) {
    (void)f.raw("stage");  // the key must be present; null = made outside a stage
    return std::nullopt;
  }
  const JsonFields s = f.object("stage", {"name", "kind", "call", "step"});
  LoggedStageKey key;
  key.name = s.string("name");
  if (key.name.empty()) s.fail("name", "must not be empty");
  key.kind = parse_stage_kind(s, "kind");
  // 0-based indices, bounded as the scenario format bounds calls and steps.
  key.call = static_cast<int>(s.integer("call", 0, kMaxCalls - 1));
  key.step = static_cast<int>(s.integer("step", 0, kMaxSteps - 1));
  return key;
}

const std::vector<std::string_view> kMemoryKeys = {"free_bytes", "total_bytes", "allocated_bytes", "reserved_bytes",
                                                   "max_allocated_bytes", "max_reserved_bytes", "inactive_split_bytes"};

std::optional<LoggedMemory> read_memory(const JsonFields& parent, std::string_view key) {
  if (!parent.has(key)) {
    (void)parent.raw(key);
    return std::nullopt;
  }
  const JsonFields m = parent.object(key, kMemoryKeys);
  LoggedMemory out;
  out.free = optional_bytes(m, "free_bytes");
  out.total = optional_bytes(m, "total_bytes");
  out.allocated = optional_bytes(m, "allocated_bytes");
  out.reserved = optional_bytes(m, "reserved_bytes");
  out.max_allocated = optional_bytes(m, "max_allocated_bytes");
  out.max_reserved = optional_bytes(m, "max_reserved_bytes");
  out.inactive_split = optional_bytes(m, "inactive_split_bytes");
  if (out.allocated && out.reserved && *out.allocated > *out.reserved) {
    m.fail("allocated_bytes", "is above reserved_bytes (" + std::to_string(*out.reserved) + ")");
  }
  if (out.inactive_split && out.reserved && out.allocated && *out.inactive_split > *out.reserved - *out.allocated) {
    m.fail("inactive_split_bytes", "is above reserved_bytes - allocated_bytes");
  }
  if (out.total && *out.total == 0) m.fail("total_bytes", "must be > 0 (leave it out when unknown)");
  if (out.free && out.total && *out.free > *out.total) m.fail("free_bytes", "is above total_bytes");
  return out;
}

std::optional<LoggedOom> read_oom(const JsonFields& parent, std::string_view key) {
  if (!parent.has(key)) return std::nullopt;
  const JsonFields o = parent.object(key, {"message", "requested_bytes"});
  LoggedOom out;
  out.message = o.string("message");
  if (o.present("requested_bytes")) out.requested = bytes_or_null(o, "requested_bytes");
  return out;
}

std::vector<LoggedTransfer> read_transfers(const JsonFields& f, std::string_view key) {
  std::vector<LoggedTransfer> out;
  const json& items = list(f, key);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const JsonFields t = f.element(key, i, {"model", "bytes"});
    LoggedTransfer item;
    item.model = t.string("model");
    if (item.model.empty()) t.fail("model", "must not be empty");
    item.bytes = t.bytes("bytes", false);
    out.push_back(std::move(item));
  }
  return out;
}

std::optional<Backend> header_backend(const JsonFields& device) {
  if (!device.has("backend")) {
    (void)device.raw("backend");
    return std::nullopt;
  }
  const std::string text = device.string("backend");
  if (text == "cpu") return std::nullopt;  // no device: nothing to look up by backend
  return device.parsed("backend", [](const std::string& s) { return parse_backend(s); });
}

DecisionLogHeader read_header(const JsonFields& f, std::string& profile, std::string& profile_note) {
  DecisionLogHeader h;
  const JsonFields p = f.object("policy", {"id", "family", "version", "free_memory_formula", "p1_slack_bytes"});
  h.policy_id = p.string("id");
  if (h.policy_id.empty()) p.fail("id", "must not be empty");
  h.policy_family = p.optional_string("family").value_or("");
  h.policy_version = p.optional_string("version").value_or("");
  h.free_memory_formula = p.string("free_memory_formula");
  h.p1_slack = p.bytes("p1_slack_bytes", false);
  const JsonFields d = f.object("device", {"name", "total_bytes", "backend", "measured", "memory_source"});
  h.device_name = d.optional_string("name").value_or("");
  h.device_total = bytes_or_null(d, "total_bytes");
  // Unknown is null; 0 is no device, and would be judged as one (F_P, capacities) instead of refused.
  if (h.device_total && *h.device_total == 0) d.fail("total_bytes", "must be > 0 (null when the log does not know it)");
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
    const JsonFields t = f.object("torch", {"version", "hip"});
    h.torch_version = t.optional_string("version").value_or("");
    (void)t.optional_string("hip");
  }
  if (f.has("shim")) (void)f.object("shim", {});      // informative, free-form
  if (f.has("source")) (void)f.object("source", {});  // free-form
  (void)f.optional_string("created");
  h.alloc_conf = f.optional_string("alloc_conf").value_or("");
  profile = sim::VersionProfile::for_torch_version(h.torch_version, &profile_note).name;
  try {
    (void)sim::AllocatorConfig::parse(h.alloc_conf, sim::VersionProfile::by_name(profile));
  } catch (const ConfigError& e) {
    f.fail("alloc_conf", e.what());
  }
  return h;
}

const std::vector<std::string_view> kVaeKeys = {"family", "op", "height", "width", "frames", "batch", "dtype",
                                                "tile_size", "backend", "memory_optimization",
                                                "vae_tile_sample_min_size"};
const std::vector<std::string_view> kDenoiseKeys = {"model", "noise_shape", "ref_latent_elements", "dtype",
                                                    "efficient_attention", "model_dim", "backend"};

VaeWorkload read_vae_workload(const JsonFields& f, const DecisionLogHeader& header) {
  VaeWorkload w;
  w.family = f.parsed("family", [](const std::string& s) { return parse_vae_family(s); });
  w.op = f.parsed("op", [](const std::string& s) { return parse_vae_op(s); });
  auto dimension = [&](const char* key, int min) { return static_cast<int>(f.integer(key, min, kMaxVaeDimension)); };
  w.pixel_height = dimension("height", 1);
  w.pixel_width = dimension("width", 1);
  if (f.has("frames")) w.frames = dimension("frames", 1);
  if (f.has("batch")) w.batch = dimension("batch", 1);
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  if (f.has("tile_size")) w.tile_size = dimension("tile_size", 0);  // 0 = the VAE's default tile
  if (f.has("backend")) {
    w.backend = f.parsed("backend", [](const std::string& s) { return parse_backend(s); });
  } else if (header.backend) {
    w.backend = *header.backend;
  } else {
    f.fail("backend", "missing, and the header names no device backend");
  }
  w.memory_optimization = f.optional_boolean("memory_optimization").value_or(false);
  if (f.has("vae_tile_sample_min_size")) w.vae_tile_sample_min_size = dimension("vae_tile_sample_min_size", 1);
  try {
    validate(w);
  } catch (const ConfigError& e) {
    f.fail("", e.what());
  }
  return w;
}

DenoiseWorkload read_denoise_workload(const JsonFields& f, const DecisionLogHeader& header) {
  DenoiseWorkload w;
  w.model = f.parsed("model", [](const std::string& s) { return parse_diffusion_model(s); });
  w.noise_shape = f.integers("noise_shape", 1, kMaxLatentDimension);
  if (f.has("ref_latent_elements")) w.ref_latent_elements = f.integers("ref_latent_elements", 0, kMaxLatentElements);
  w.dtype = f.parsed("dtype", [](const std::string& s) { return parse_dtype(s); });
  w.efficient_attention = f.optional_boolean("efficient_attention").value_or(true);
  if (f.has("model_dim")) w.model_dim = static_cast<int>(f.integer("model_dim", 1, kMaxModelDim));
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

// seq orders the lines; any int64 would do, but a log has far fewer lines than 2^53 (what a JSON reader
// in another language keeps exact).
constexpr std::int64_t kMaxSeq = std::int64_t{1} << 53;

LoggedDecision read_decision(const JsonFields& f, std::size_t line) {
  LoggedDecision d;
  d.line = line;
  d.seq = f.integer("seq", 0, kMaxSeq);
  d.stage = read_stage_key(f);
  d.models = f.strings("models");
  const JsonFields e = f.object("estimate", {"bytes", "passed", "passed_bytes", "source"});
  d.estimate = bytes_or_null(e, "bytes");
  d.estimate_passed_bytes = e.present("passed_bytes") ? bytes_or_null(e, "passed_bytes") : std::nullopt;
  d.estimate_passed = e.present("passed") ? e.boolean("passed") : d.estimate_passed_bytes.has_value();
  if (!d.estimate_passed && d.estimate_passed_bytes) e.fail("passed", "is false but passed_bytes holds a value");
  d.estimate_source = e.string("source");
  const JsonFields fp = f.object("free_memory", {"bytes", "formula"});
  d.free_memory = signed_bytes_or_null(fp, "bytes");
  d.free_memory_formula = fp.string("formula");
  d.weights_loaded = f.bytes("weights_loaded_bytes", false);
  const std::string stop = f.string("stop_reason");
  if (stop == "satisfied") d.stop = StopReason::kSatisfied;
  else if (stop == "exhausted") d.stop = StopReason::kExhausted;
  else if (stop == "not_applicable") d.stop = StopReason::kNotApplicable;
  else f.fail("stop_reason", "must be \"satisfied\", \"exhausted\" or \"not_applicable\", got \"" + stop + "\"");
  d.evictions = read_transfers(f, "evictions");
  if (f.has("loads")) {
    d.loads = read_transfers(f, "loads");
    std::uint64_t sum = 0;
    for (const LoggedTransfer& t : *d.loads) {
      sum += t.bytes;  // each and the running sum <= 2^60: no wrap
      if (sum > kMaxJsonBytes) f.fail("loads", "add up to more than 1 EiB");
    }
    if (sum != d.weights_loaded) {
      f.fail("weights_loaded_bytes", std::to_string(d.weights_loaded) + " is not the sum of loads[] (" +
                                         std::to_string(sum) + ")");
    }
  }
  if (f.present("memory")) d.memory = read_memory(f, "memory");
  if (f.present("oom")) d.oom = read_oom(f, "oom");
  return d;
}

LoggedStage read_stage(const JsonFields& f, std::size_t line, const DecisionLogHeader& header) {
  LoggedStage s;
  s.line = line;
  s.seq = f.integer("seq", 0, kMaxSeq);
  const std::optional<LoggedStageKey> key = read_stage_key(f);
  if (!key) f.fail("stage", "a stage line names its stage");
  s.stage = *key;
  if (f.has("workload")) {
    const JsonFields w = f.object("workload", {"vae", "denoise"});
    if (w.has("vae") && w.has("denoise")) w.fail("denoise", "a workload is \"vae\" or \"denoise\", not both");
    if (w.has("vae")) {
      s.workload = read_vae_workload(w.object("vae", kVaeKeys), header);
    } else if (w.has("denoise")) {
      s.workload = read_denoise_workload(w.object("denoise", kDenoiseKeys), header);
    } else {
      w.fail("", "must hold \"vae\" or \"denoise\"");
    }
    s.workload_text = describe(*s.workload);
  }
  if (f.has("working_memory")) {
    s.working_memory = f.string("working_memory");
    if (s.working_memory->empty()) f.fail("working_memory", "must be a path or null");
  }
  s.decisions = f.integers("decisions", 0, kMaxSeq);
  const JsonFields m = f.object("memory", {"before", "after", "peak_reserved_bytes", "peak_reset"});
  s.before = read_memory(m, "before");
  s.after = read_memory(m, "after");
  s.peak_reserved = bytes_or_null(m, "peak_reserved_bytes");
  s.peak_reset = m.optional_boolean("peak_reset").value_or(false);
  if (s.peak_reserved && s.before && s.before->reserved && *s.peak_reserved < *s.before->reserved) {
    m.fail("peak_reserved_bytes", "is below memory.before.reserved_bytes: a peak over the stage cannot be");
  }
  if (s.peak_reserved && s.after && s.after->reserved && *s.peak_reserved < *s.after->reserved) {
    m.fail("peak_reserved_bytes", "is below memory.after.reserved_bytes: a peak over the stage cannot be");
  }
  const JsonFields o = f.object("outcome", {"completed", "oom", "handled_ooms"});
  s.completed = o.boolean("completed");
  s.oom = read_oom(o, "oom");
  if (s.completed && s.oom) o.fail("oom", "an unhandled OOM but completed is true");
  s.handled_ooms = static_cast<std::uint64_t>(o.integer("handled_ooms", 0, kMaxSeq));
  if (f.has("models")) {
    std::vector<LoggedModel> models;
    const json& items = list(f, "models");
    for (std::size_t i = 0; i < items.size(); ++i) {
      const JsonFields e = f.element("models", i, {"model", "device_bytes", "offloaded", "resident_by_design"});
      LoggedModel model;
      model.model = e.string("model");
      model.device_bytes = e.bytes("device_bytes", false);
      model.offloaded = e.boolean("offloaded");
      model.resident_by_design = e.optional_boolean("resident_by_design").value_or(false);
      if (model.offloaded && model.resident_by_design) e.fail("offloaded", "and resident_by_design are both true");
      models.push_back(std::move(model));
    }
    s.models = std::move(models);
  }
  return s;
}

const std::vector<std::string_view> kHeaderKeys = {"schema", "record", "shim", "policy", "device", "torch",
                                                   "alloc_conf", "created", "source"};
const std::vector<std::string_view> kDecisionKeys = {"schema", "record", "seq", "stage", "models", "estimate",
                                                     "free_memory", "weights_loaded_bytes", "stop_reason",
                                                     "evictions", "loads", "memory", "oom"};
const std::vector<std::string_view> kStageKeys = {"schema", "record", "seq", "stage", "workload", "working_memory",
                                                  "decisions", "memory", "outcome", "models"};

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
    const JsonDocument doc = JsonDocument::parse(text, source, line);
    // The record kind picks the keys a line may hold; read it before holding the line to them.
    const json& root = doc.root();
    const json* record_value = root.is_object() && root.contains("record") ? &root.at("record") : nullptr;
    const std::string kind = record_value != nullptr && record_value->is_string() ? record_value->get<std::string>() : "";
    static const std::vector<std::string_view> kUnknownRecord;  // free-form: refused below by its "record"
    const std::vector<std::string_view>& keys = kind == "header"     ? kHeaderKeys
                                                : kind == "decision" ? kDecisionKeys
                                                : kind == "stage"    ? kStageKeys
                                                                     : kUnknownRecord;
    const JsonFields f(doc, log_naming(), keys);
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
    const std::int64_t seq = f.integer("seq", 0, kMaxSeq);
    if (last_seq && seq <= *last_seq) {
      f.fail("seq", std::to_string(seq) + " does not follow " + std::to_string(*last_seq) + " (seq increases line by line)");
    }
    last_seq = seq;
    if (record == "decision") {
      decision_index[seq] = log.decisions.size();
      log.decisions.push_back(read_decision(f, line));
      continue;
    }
    LoggedStage stage = read_stage(f, line, log.header);
    for (std::size_t i = 0; i < stage.decisions.size(); ++i) {
      const std::int64_t d = stage.decisions[i];
      auto it = decision_index.find(d);
      if (it == decision_index.end()) f.fail("decisions", {i}, "names decision seq " + std::to_string(d) + ", which no earlier line holds");
      if (!claimed.insert(d).second) f.fail("decisions", {i}, "decision seq " + std::to_string(d) + " belongs to another stage line already");
      const LoggedDecision& decision = log.decisions[it->second];
      if (decision.stage && !same_key(*decision.stage, stage.stage)) {
        f.fail("decisions", {i}, "decision seq " + std::to_string(d) + " (line " + std::to_string(decision.line) + ") was made for " +
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
