#include "offsim/policies/model_manifest.hpp"

#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& what) { throw ParseError(file, 0, what); }

const json& field(const json& object, const char* key, const std::string& file, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) fail(file, where + ": missing field \"" + key + "\"");
  return *it;
}

std::string string_field(const json& object, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(object, key, file, where);
  if (!v.is_string()) fail(file, where + ": field \"" + key + "\" must be a string");
  return v.get<std::string>();
}

std::uint64_t bytes_field(const json& object, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(object, key, file, where);
  if (!v.is_number_unsigned()) fail(file, where + ": field \"" + key + "\" must be a non-negative integer");
  return v.get<std::uint64_t>();
}

}  // namespace

ModelManifest ModelManifest::load(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path);
  if (!in) fail(file, "cannot open model manifest");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ParseError(file, e.byte, std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail(file, "a model manifest must be a JSON object");
  const std::string format = string_field(doc, "format", file, "manifest");
  if (format != "offsim-model-manifest/1") {
    fail(file, "unsupported format \"" + format + "\" (expected offsim-model-manifest/1)");
  }
  ModelManifest m;
  m.path = file;
  m.name = string_field(doc, "name", file, "manifest");
  m.pipeline = string_field(doc, "pipeline", file, "manifest");
  m.component = string_field(doc, "component", file, "manifest");
  m.dtype = string_field(doc, "dtype", file, "manifest");
  if (auto it = doc.find("source"); it != doc.end() && it->is_object()) m.source = it->value("config", "");
  m.total_bytes = bytes_field(doc, "total_bytes", file, "manifest");

  std::map<std::string, int> group_index;
  if (auto it = doc.find("blocks"); it != doc.end()) {
    if (!it->is_array()) fail(file, "\"blocks\" must be a list of block groups");
    for (std::size_t g = 0; g < it->size(); ++g) {
      const json& entry = (*it)[g];
      const std::string where = "blocks[" + std::to_string(g) + "]";
      BlockGroup group;
      group.prefix = string_field(entry, "prefix", file, where);
      group.count = static_cast<int>(bytes_field(entry, "count", file, where));
      if (auto p = entry.find("phases"); p != entry.end()) group.phases = p->get<std::vector<std::string>>();
      group_index[group.prefix] = static_cast<int>(m.groups.size());
      m.groups.push_back(std::move(group));
    }
  }
  const json& tensors = field(doc, "tensors", file, "manifest");
  if (!tensors.is_array() || tensors.empty()) fail(file, "\"tensors\" must be a non-empty list");
  m.tensors.reserve(tensors.size());
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const json& t = tensors[i];
    const std::string where = "tensors[" + std::to_string(i) + "]";
    TensorSpec spec;
    spec.name = string_field(t, "name", file, where);
    spec.bytes = bytes_field(t, "bytes", file, where);
    if (spec.bytes == 0) fail(file, where + " (" + spec.name + "): bytes must be > 0");
    if (auto g = t.find("group"); g != t.end()) {
      auto found = group_index.find(g->get<std::string>());
      if (found == group_index.end()) fail(file, where + ": group \"" + g->get<std::string>() + "\" is not in \"blocks\"");
      spec.group = found->second;
      spec.block = static_cast<int>(bytes_field(t, "block", file, where));
      if (spec.block >= m.groups[static_cast<std::size_t>(spec.group)].count) fail(file, where + ": block index out of range");
      spec.phase = t.value("phase", "");
    }
    sum += spec.bytes;
    m.tensors.push_back(std::move(spec));
  }
  if (sum != m.total_bytes) {
    fail(file, "tensor bytes add up to " + std::to_string(sum) + " but total_bytes is " + std::to_string(m.total_bytes));
  }
  return m;
}

std::shared_ptr<const ModelManifest> ModelManifest::load_shared(const std::filesystem::path& path) {
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::filesystem::file_time_type, std::shared_ptr<const ModelManifest>>> cache;
  std::error_code ec;
  const auto stamp = std::filesystem::last_write_time(path, ec);
  const std::string key = std::filesystem::weakly_canonical(path, ec).string();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end() && it->second.first == stamp) return it->second.second;
  auto manifest = std::make_shared<const ModelManifest>(load(path));
  cache[key] = {stamp, manifest};
  return manifest;
}

std::uint64_t ModelManifest::non_block_bytes() const {
  std::uint64_t sum = 0;
  for (const TensorSpec& t : tensors) {
    if (t.group < 0) sum += t.bytes;
  }
  return sum;
}

std::uint64_t ModelManifest::largest_block_bytes() const {
  std::map<std::pair<int, int>, std::uint64_t> per_block;
  for (const TensorSpec& t : tensors) {
    if (t.group >= 0) per_block[{t.group, t.block}] += t.bytes;
  }
  std::uint64_t largest = 0;
  for (const auto& [key, bytes] : per_block) largest = std::max(largest, bytes);
  return largest;
}

}  // namespace offsim::policies
