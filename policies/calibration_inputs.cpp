#include "offsim/policies/calibration_inputs.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "offsim/policies/published_measurements.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPointsFormat = "offsim-calibration-points/1";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParseError(path.string(), 0, "cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json parse_json(const fs::path& path, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not valid JSON: ") + e.what());
  } catch (const json::exception& e) {  // 1e999: out_of_range.406, not a parse_error
    throw ParseError(path.string(), 0, std::string("not valid JSON: ") + e.what());
  }
}

// ---- user files ----------------------------------------------------------------------------------------

// The columns (CSV) and keys (JSON) of a user's point, in the order docs/calibration.md lists them.
const std::vector<std::string>& known_fields() {
  static const std::vector<std::string> fields{"model",  "op",     "width",   "height",
                                               "frames", "dtype",  "backend", "platform",
                                               "peak_reserved_growth_bytes", "source", "variant", "replay_json"};
  return fields;
}

std::string known_fields_list() {
  std::string out;
  for (const std::string& f : known_fields()) out += (out.empty() ? "" : ", ") + f;
  return out;
}

// A point's fields as text; a field that is absent or an empty CSV cell is not in the map.
using Fields = std::map<std::string, std::string>;

struct Located {
  const fs::path& file;
  std::size_t line;
  [[noreturn]] void fail(const std::string& what) const { throw ParseError(file.string(), line, what); }
};

// A whole number written in decimal, optionally negative; anything else (1.5, 1e9, "12 GiB") is refused.
long long parse_integer(const Located& at, const std::string& field, const std::string& text) {
  long long value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) at.fail(field + " " + text + " is out of range");
  if (ec != std::errc() || ptr != end) at.fail(field + " \"" + text + "\" is not a whole number");
  return value;
}

template <typename Parse>
auto parse_name(const Located& at, const std::string& field, const std::string& text, Parse parse) {
  try {
    return parse(text);
  } catch (const ConfigError& e) {
    at.fail(field + ": " + e.what());
  }
}

CalibrationPoint point_from_fields(const Fields& f, const Located& at) {
  auto get = [&](const std::string& key) -> std::optional<std::string> {
    const auto it = f.find(key);
    return it == f.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  auto required = [&](const std::string& key, const std::string& why) {
    const auto value = get(key);
    if (!value) at.fail("point has no " + key + " (" + why + ")");
    return *value;
  };
  CalibrationPoint p;
  p.model = parse_name(at, "model", required("model", "a VAE family: qwen_image, sdxl, flux2, ..."), parse_vae_family);
  p.op = parse_name(at, "op", required("op", "decode or encode"), parse_vae_op);
  const auto backend = get("backend") ? get("backend") : get("platform");
  if (get("backend") && get("platform") && *get("backend") != *get("platform")) {
    at.fail("backend \"" + *get("backend") + "\" and platform \"" + *get("platform") + "\" disagree");
  }
  if (!backend) {
    at.fail("point has no backend (cuda, rocm, xpu or mps): upstream's constants differ by backend (InvokeAI's Qwen-Image "
            "decode: 5500 on ROCm, 2900 on CUDA), so a peak without one calibrates nothing");
  }
  p.backend = parse_name(at, "backend", *backend, parse_backend);
  p.dtype = parse_name(at, "dtype", required("dtype", "fp16, bf16 or fp32: the VAE weights' dtype"), parse_dtype);
  if (!element_size(p.dtype)) at.fail("dtype " + *get("dtype") + " is block-quantized; a VAE runs in fp16, bf16 or fp32");
  const long long width = parse_integer(at, "width", required("width", "pixels"));
  const long long height = parse_integer(at, "height", required("height", "pixels"));
  const long long frames = get("frames") ? parse_integer(at, "frames", *get("frames")) : 1;
  if (width <= 0 || height <= 0) {
    at.fail("zero pixels: width " + std::to_string(width) + ", height " + std::to_string(height) +
            "; both must be > 0");
  }
  if (frames <= 0) at.fail("frames " + std::to_string(frames) + " must be > 0");
  constexpr long long kMaxSide = 1 << 20;
  if (width > kMaxSide || height > kMaxSide || frames > kMaxSide) {
    at.fail("width, height and frames must be at most " + std::to_string(kMaxSide));
  }
  p.width = static_cast<int>(width);
  p.height = static_cast<int>(height);
  p.frames = static_cast<int>(frames);
  try {
    validate(workload_of(p));
  } catch (const ConfigError& e) {
    at.fail(e.what());
  }
  const auto bytes = get("peak_reserved_growth_bytes");
  const auto replay = get("replay_json");
  if (bytes && replay) at.fail("give peak_reserved_growth_bytes or replay_json, not both");
  if (bytes) {
    const long long value = parse_integer(at, "peak_reserved_growth_bytes", *bytes);
    if (value < 0) at.fail("peak_reserved_growth_bytes " + *bytes + " is negative");
    if (value == 0) at.fail("peak_reserved_growth_bytes is 0: a stage that reserves nothing calibrates nothing");
    p.peak_reserved_growth = static_cast<std::uint64_t>(value);
    p.provenance = "user measurement";
  } else if (replay) {
    const fs::path replay_path = fs::path(*replay).is_absolute() ? fs::path(*replay) : at.file.parent_path() / *replay;
    try {
      p.peak_reserved_growth = replay_peak_reserved_growth(replay_path, p.provenance);
    } catch (const Error& e) {
      at.fail(std::string("replay_json: ") + e.what());
    }
    if (p.peak_reserved_growth == 0) at.fail("replay_json " + *replay + " reports no reserved growth");
    p.citation = replay_path.string();
  } else {
    at.fail("point has no peak: give peak_reserved_growth_bytes or replay_json (an `offsim replay --json` result)");
  }
  p.source = get("source").value_or(at.file.string());
  p.variant = get("variant").value_or("");
  p.origin = at.file.string() + ":" + std::to_string(at.line);
  return p;
}

void check_known(const std::string& field, const Located& at) {
  const auto& known = known_fields();
  if (std::find(known.begin(), known.end(), field) == known.end()) {
    at.fail("unknown field \"" + field + "\"; known: " + known_fields_list());
  }
}

// One CSV record: fields separated by commas, a field may be double-quoted ("" is a quote inside it).
std::vector<std::string> split_csv(const std::string& line, const Located& at) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  if (quoted) at.fail("a quoted field is not closed");
  for (std::string& field : out) {
    const auto first = field.find_first_not_of(" \t");
    const auto last = field.find_last_not_of(" \t");
    field = first == std::string::npos ? "" : field.substr(first, last - first + 1);
  }
  return out;
}

CalibrationInput read_user_csv(const fs::path& path) {
  std::istringstream text(read_text(path));
  CalibrationInput input;
  std::vector<std::string> header;
  std::string line;
  std::size_t number = 0;
  while (std::getline(text, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    const Located at{path, number};
    std::vector<std::string> cells = split_csv(line, at);
    if (header.empty()) {
      for (const std::string& name : cells) {
        check_known(name, at);
        if (std::count(cells.begin(), cells.end(), name) > 1) at.fail("column " + name + " appears twice");
      }
      header = std::move(cells);
      continue;
    }
    if (cells.size() != header.size()) {
      at.fail(std::to_string(cells.size()) + " fields where the header has " + std::to_string(header.size()));
    }
    Fields fields;
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (!cells[i].empty()) fields[header[i]] = cells[i];
    }
    input.points.push_back(point_from_fields(fields, at));
  }
  if (header.empty()) throw ParseError(path.string(), number, "no header line (" + known_fields_list() + ")");
  return input;
}

// Line (1-based) at which each element of the top-level object's array `key` begins. nlohmann_json keeps no
// positions, so the (already validated) text is scanned once: strings, nesting, and the key before each value.
std::vector<std::size_t> array_element_lines(std::string_view text, std::string_view key) {
  std::vector<std::size_t> out;
  std::vector<char> stack;
  std::size_t line = 1;
  bool in_string = false, escaped = false, in_target = false, need_element = false;
  std::string str, last_string, current_key;
  for (const char c : text) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escaped) {
        escaped = false;
        str += c;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        last_string = str;
      } else {
        str += c;
      }
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    const bool at_target = in_target && stack.size() == 2;
    if (at_target && need_element && c != ']') {
      out.push_back(line);
      need_element = false;
    }
    switch (c) {
      case '"':
        in_string = true;
        str.clear();
        break;
      case ':':
        if (stack.size() == 1) current_key = last_string;
        break;
      case ',':
        if (at_target) need_element = true;
        break;
      case '{':
      case '[':
        stack.push_back(c);
        if (c == '[' && stack.size() == 2 && stack[0] == '{' && current_key == key) in_target = need_element = true;
        break;
      default:
        if (c == '}' || c == ']') {
          if (!stack.empty()) stack.pop_back();
          if (stack.size() <= 1) in_target = false;
        }
        break;
    }
  }
  return out;
}

CalibrationInput read_user_json(const fs::path& path, const std::string& text, const json& doc) {
  if (!doc.is_object() || doc.value("format", "") != kPointsFormat || !doc.contains("points") ||
      !doc["points"].is_array()) {
    throw ParseError(path.string(), 0,
                     std::string("expected {\"format\": \"") + kPointsFormat + "\", \"points\": [...]} (docs/calibration.md)");
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "format" && key != "points" && key != "description") {
      throw ParseError(path.string(), 1, "unknown top-level key \"" + key + "\"; known: format, points, description");
    }
  }
  const std::vector<std::size_t> lines = array_element_lines(text, "points");
  CalibrationInput input;
  for (std::size_t i = 0; i < doc["points"].size(); ++i) {
    const json& p = doc["points"][i];
    const Located at{path, i < lines.size() ? lines[i] : 0};
    if (!p.is_object()) at.fail("point " + std::to_string(i + 1) + " is not an object");
    Fields fields;
    for (const auto& [key, value] : p.items()) {
      check_known(key, at);
      if (value.is_null()) continue;
      if (value.is_string()) {
        if (!value.get<std::string>().empty()) fields[key] = value.get<std::string>();
      } else if (value.is_number_integer()) {
        fields[key] = value.dump();
      } else if (value.is_number()) {
        at.fail(key + " " + value.dump() + " is not a whole number");
      } else {
        at.fail(key + " must be a string or a number, not " + std::string(value.type_name()));
      }
    }
    input.points.push_back(point_from_fields(fields, at));
  }
  return input;
}

// ---- GPU runs (real/gpu/run.sh) ---------------------------------------------------------------------------

// real/gpu/offsim_gpu/vae_points.py's model names: "sd" is the AutoencoderKL twin of SD1.5 and SDXL, which
// share the architecture (one measurement stands for both).
std::vector<VaeFamily> gpu_model_families(const std::string& name) {
  if (name == "qwen") return {VaeFamily::qwen_image};
  if (name == "sd") return {VaeFamily::sd15, VaeFamily::sdxl};
  if (name == "flux1") return {VaeFamily::flux1};
  if (name == "flux2") return {VaeFamily::flux2};
  return {};
}

// The point's kernels, empty for the run's baseline (vae_points.Point's defaults: attention "efficient",
// cuDNN "default", contiguous memory).
std::string gpu_variant(const json& spec) {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : ", ") + part; };
  if (spec.value("attn", "efficient") != "efficient") add("attention=" + spec.value("attn", ""));
  if (spec.value("cudnn", "default") != "default") add("cudnn=" + spec.value("cudnn", ""));
  if (spec.value("memfmt", "contiguous") != "contiguous") add(spec.value("memfmt", ""));
  return out;
}

}  // namespace

CalibrationInput read_gpu_run_points(const fs::path& given) {
  const fs::path jsonl = fs::is_directory(given) ? given / "vae_peaks.jsonl" : given;
  const fs::path folder = jsonl.parent_path();
  if (!fs::exists(jsonl)) throw ParseError(jsonl.string(), 0, "no vae_peaks.jsonl (real/gpu/run.sh writes it)");
  // A committed run (traces/gpu/<run>/) keeps the run's own metadata as run_metadata.json.
  fs::path meta_path = folder / "run_metadata.json";
  if (!fs::exists(meta_path)) meta_path = folder / "metadata.json";
  if (!fs::exists(meta_path)) {
    throw ParseError(jsonl.string(), 0,
                     "no metadata.json or run_metadata.json beside it: the run's torch build (CUDA or ROCm) is unknown");
  }
  const json meta = parse_json(meta_path, read_text(meta_path));
  if (meta.value("dry_run", false)) {
    throw ParseError(meta_path.string(), 0, "a dry run (--dry-run, CPU only) measured nothing; not calibration data");
  }
  const json torch = meta.value("torch", json::object());
  if (!torch.contains("torch_hip") && !torch.contains("torch_cuda")) {
    throw ParseError(meta_path.string(), 0, "torch.torch_hip / torch.torch_cuda missing: cannot tell CUDA from ROCm");
  }
  const Backend backend = torch.value("torch_hip", json()).is_null() ? Backend::cuda : Backend::rocm;
  const std::string gpu = torch.value("device_properties", json::object()).value("name", "");
  const std::string started = meta.value("started", "");
  const std::string source =
      (gpu.empty() ? folder.filename().string() : gpu) + (started.empty() ? "" : " " + started.substr(0, 10));
  CalibrationInput input;
  std::istringstream text(read_text(jsonl));
  std::string line;
  std::size_t number = 0, skipped = 0;
  while (std::getline(text, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Located at{jsonl, number};
    json r;
    try {
      r = json::parse(line);
    } catch (const json::exception& e) {  // parse_error, and out_of_range.406 for 1e999
      at.fail(std::string("not a JSON record: ") + e.what());
    }
    if (r.value("dry_run", false)) at.fail("a dry-run record (CPU only) is not a measurement");
    if (r.value("status", "") != "ok") {
      ++skipped;  // an OOM, error or timeout measured no peak
      continue;
    }
    const json spec = r.value("spec", json::object());
    const std::vector<VaeFamily> families = gpu_model_families(spec.value("model", ""));
    if (families.empty()) at.fail("unknown model \"" + spec.value("model", "") + "\" (qwen, sd, flux1, flux2)");
    const json cold = r.value("cold", json::object());
    if (!cold.contains("peak_reserved_growth") || !cold["peak_reserved_growth"].is_number_integer()) {
      at.fail("status ok but no cold.peak_reserved_growth");
    }
    const long long growth = cold["peak_reserved_growth"].get<long long>();
    if (growth <= 0) at.fail("cold.peak_reserved_growth " + std::to_string(growth) + " must be > 0");
    for (const VaeFamily family : families) {
      CalibrationPoint p;
      p.model = family;
      p.op = parse_name(at, "spec.stage", spec.value("stage", ""), parse_vae_op);
      p.width = spec.value("width", 0);
      p.height = spec.value("height", 0);
      if (p.width <= 0 || p.height <= 0) at.fail("zero pixels in spec.width / spec.height");
      p.dtype = parse_name(at, "spec.dtype", spec.value("dtype", ""), parse_dtype);
      p.backend = backend;
      p.peak_reserved_growth = static_cast<std::uint64_t>(growth);
      p.source = source;
      p.variant = gpu_variant(spec);
      p.provenance = "real GPU measurement";
      p.origin = jsonl.string() + ":" + std::to_string(number);
      p.citation = "real/gpu/run.sh point " + r.value("id", "") + " (" + meta_path.string() + ")";
      input.points.push_back(std::move(p));
    }
  }
  input.notes.push_back(jsonl.string() + ": " + std::to_string(input.points.size()) + " points on " +
                        std::string(to_string(backend)) + " (" + source + ")" +
                        (skipped ? ", " + std::to_string(skipped) + " records left out (OOM, error or timeout)" : ""));
  return input;
}

CalibrationInput read_published_calibration_points(const fs::path& folder) {
  CalibrationInput input;
  for (const PublishedPoint& pp : load_published_points_in(folder)) {
    CalibrationPoint p;
    p.model = pp.family;
    p.op = pp.op;
    p.width = pp.width;
    p.height = pp.height;
    p.dtype = pp.dtype;
    p.backend = pp.backend;
    p.peak_reserved_growth = pp.peak_reserved_as_published;
    p.source = pp.grid;
    p.variant = pp.alloc_conf;
    p.provenance = pp.derived ? "published measurement (derived from a published implied constant)" : "published measurement";
    p.origin = folder.string() + " [" + pp.grid + "]";
    p.citation = pp.citation;
    p.used_to_set = pp.used_to_set;
    input.points.push_back(std::move(p));
  }
  input.notes.push_back(folder.string() + ": " + std::to_string(input.points.size()) + " published points");
  return input;
}

CalibrationInput read_user_calibration_points(const fs::path& path) {
  if (path.extension() == ".csv") return read_user_csv(path);
  const std::string text = read_text(path);
  return read_user_json(path, text, parse_json(path, text));
}

std::uint64_t replay_peak_reserved_growth(const fs::path& path, std::string& provenance) {
  const json r = parse_json(path, read_text(path));
  if (r.value("format", "") != "offsim-replay/1") {
    throw ParseError(path.string(), 0, "not an `offsim replay --json` result (format offsim-replay/1)");
  }
  if (!r.contains("start_reserved_bytes")) {
    throw ParseError(path.string(), 0, "no start_reserved_bytes: written by an older offsim; rerun `offsim replay --json`");
  }
  if (!r.value("completed", true)) {
    throw ParseError(path.string(), 0, "the replay stopped at an unhandled OOM: its peak is not the stage's");
  }
  const auto start = r.at("start_reserved_bytes").get<std::uint64_t>();
  const auto recorded = r.value("recorded_peak_reserved_bytes", std::uint64_t{0});
  const auto simulated = r.value("peak_reserved_bytes", std::uint64_t{0});
  const bool use_recorded = recorded > 0 && r.value("events_total", std::uint64_t{0}) > 0;
  const std::uint64_t peak = use_recorded ? recorded : simulated;
  provenance = r.value("provenance", std::string("unknown")) +
               (use_recorded ? " (the recording's own reserved curve)" : " (replayed through the simulated allocator)");
  return peak > start ? peak - start : 0;
}

CalibrationInput read_calibration_input(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / "qwen_image_vae_calibration.json")) return read_published_calibration_points(path);
    if (fs::exists(path / "vae_peaks.jsonl")) return read_gpu_run_points(path);
    throw ParseError(path.string(), 0,
                     "no calibration data in this folder (traces/published, or a GPU run holding vae_peaks.jsonl)");
  }
  if (!fs::exists(path)) throw ParseError(path.string(), 0, "no such file or folder");
  if (path.extension() == ".jsonl") return read_gpu_run_points(path);
  if (path.extension() == ".csv") return read_user_calibration_points(path);
  const std::string text = read_text(path);
  const json doc = parse_json(path, text);
  const std::string format = doc.is_object() ? doc.value("format", "") : "";
  if (format == "offsim-published-measurements/1") return read_published_calibration_points(path.parent_path());
  if (format == "offsim-replay/1") {
    throw ParseError(path.string(), 0,
                     "an `offsim replay --json` result does not say which VAE, size, dtype and backend it measured: list "
                     "it in a points file with those fields and replay_json: \"" + path.filename().string() +
                         "\" (docs/calibration.md)");
  }
  return read_user_json(path, text, doc);
}

void merge_calibration_points(CalibrationInput& into, CalibrationInput more) {
  auto key = [](const CalibrationPoint& p) {
    return std::string(to_string(p.model)) + "|" + std::string(to_string(p.op)) + "|" + size_label(p) + "|" +
           std::string(to_string(p.dtype)) + "|" + std::string(to_string(p.backend)) + "|" + p.source + "|" + p.variant;
  };
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < into.points.size(); ++i) seen.emplace(key(into.points[i]), i);
  for (CalibrationPoint& p : more.points) {
    const auto [it, fresh] = seen.emplace(key(p), into.points.size());
    if (fresh) {
      into.points.push_back(std::move(p));
      continue;
    }
    const CalibrationPoint& first = into.points[it->second];
    if (first.peak_reserved_growth != p.peak_reserved_growth) {
      throw ConfigError(p.origin + ": the same point as " + first.origin + " (" + describe(p) + ") with another peak: " +
                           std::to_string(first.peak_reserved_growth) + " vs " + std::to_string(p.peak_reserved_growth) +
                           " bytes; give each run its own source, or keep one value");
    }
    into.notes.push_back(p.origin + ": repeats " + first.origin + " exactly; counted once");
  }
  for (std::string& note : more.notes) into.notes.push_back(std::move(note));
}

}  // namespace offsim::policies
