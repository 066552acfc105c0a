#include "offsim/policies/model_manifest.hpp"

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "offsim/policies/json_fields.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

// Block groups and blocks of any model are far fewer (a DiT has ~60 blocks).
constexpr std::int64_t kMaxBlocks = 1 << 20;

}  // namespace

ModelManifest ModelManifest::load(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ParseError(file, 0, "cannot open model manifest (not a file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParseError(file, 0, "cannot open model manifest");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const JsonDocument doc = JsonDocument::parse(std::move(text), file);
  // The generator (traces/models/generate_manifests.py) writes informative keys offsim does not read;
  // they are declared so that a misspelt key is still caught.
  const JsonFields f(doc, {"manifest", false, false},
                     {"format", "name", "pipeline", "component", "dtype", "naming", "source", "derivation",
                      "relative_error_vs_published", "parameter_count", "tensor_count", "total_bytes", "blocks",
                      "tensors"});
  const std::string format = f.string("format");
  if (format != "offsim-model-manifest/1") {
    f.fail("format", "unsupported format \"" + format + "\" (expected offsim-model-manifest/1)");
  }
  ModelManifest m;
  m.path = file;
  m.name = f.string("name");
  m.pipeline = f.string("pipeline");
  m.component = f.string("component");
  m.dtype = f.string("dtype");
  if (f.has("source")) m.source = f.object("source", {}).optional_string("config").value_or("");
  m.total_bytes = f.bytes("total_bytes", /*strings_allowed=*/false);

  std::map<std::string, int> group_index;
  if (f.has("blocks")) {
    const json& blocks = f.raw("blocks");
    if (!blocks.is_array()) f.fail("blocks", "must be a list of block groups");
    for (std::size_t g = 0; g < blocks.size(); ++g) {
      const JsonFields entry = f.element("blocks", g, {"prefix", "count", "phases"});
      BlockGroup group;
      group.prefix = entry.string("prefix");
      group.count = static_cast<int>(entry.integer("count", 0, kMaxBlocks));
      if (entry.has("phases")) group.phases = entry.strings("phases");
      if (group_index.count(group.prefix) != 0) entry.fail("prefix", "duplicate block group \"" + group.prefix + "\"");
      group_index[group.prefix] = static_cast<int>(m.groups.size());
      m.groups.push_back(std::move(group));
    }
  }
  const json& tensors = f.raw("tensors");
  if (!tensors.is_array() || tensors.empty()) f.fail("tensors", "must be a non-empty list");
  m.tensors.reserve(tensors.size());
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const JsonFields t = f.element("tensors", i, {"name", "shape", "dtype", "bytes", "group", "block", "phase"});
    TensorSpec spec;
    spec.name = t.string("name");
    spec.bytes = t.bytes("bytes", false);
    if (spec.bytes == 0) t.fail("bytes", "must be > 0 (" + spec.name + ")");
    // A tensor is loaded as one request, and PyTorch refuses one of 1 EiB or more (CUDACachingAllocator.cpp,
    // "Tried to allocate more than 1EB memory"): refused here, naming the file, not when a policy loads it.
    if (spec.bytes >= kMaxJsonBytes) {
      t.fail("bytes", "a tensor of 1 EiB or more (" + spec.name + "), which PyTorch refuses as one request");
    }
    if (t.has("group")) {
      const std::string group = t.string("group");
      auto found = group_index.find(group);
      if (found == group_index.end()) t.fail("group", "\"" + group + "\" is not in \"blocks\"");
      spec.group = found->second;
      spec.block = static_cast<int>(t.integer("block", 0, kMaxBlocks));
      if (spec.block >= m.groups[static_cast<std::size_t>(spec.group)].count) t.fail("block", "block index out of range");
      spec.phase = t.optional_string("phase").value_or("");
    }
    sum += spec.bytes;  // each and the running sum stay <= 2^60: no wrap
    if (sum > kMaxJsonBytes) t.fail("bytes", "the tensors add up to more than 1 EiB");
    m.tensors.push_back(std::move(spec));
  }
  if (sum != m.total_bytes) {
    f.fail("total_bytes", "tensor bytes add up to " + std::to_string(sum) + " but total_bytes is " + std::to_string(m.total_bytes));
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
