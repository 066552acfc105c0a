// docs/eval_json.md documents every key `offsim eval --json` writes: the JSON of runs that fill every part
// of it (an unhandled OOM with its segments, per-model load decisions, a model claimed offloaded that still
// holds bytes, several calls) is walked, and each key must appear quoted in the document's schema block.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "offsim/policies/eval_result.hpp"

namespace offsim::policies {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

void collect_keys(const nlohmann::json& value, const std::string& path, std::map<std::string, std::string>& keys) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      keys.emplace(key, path + "." + key);
      collect_keys(child, path + "." + key, keys);
    }
  } else if (value.is_array()) {
    for (const nlohmann::json& child : value) collect_keys(child, path + "[]", keys);
  }
}

// The quoted names in the document's ```text schema block.
std::set<std::string> documented_names() {
  std::ifstream in(kRoot / "docs/eval_json.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto begin = doc.find("```text");
  const auto end = doc.find("```", begin + 7);
  EXPECT_NE(begin, std::string::npos) << "docs/eval_json.md has no ```text schema block";
  const std::string block = doc.substr(begin, end - begin);
  std::set<std::string> names;
  const std::regex quoted("\"([A-Za-z0-9_]+)\"");
  for (auto it = std::sregex_iterator(block.begin(), block.end(), quoted); it != std::sregex_iterator(); ++it) {
    names.insert((*it)[1].str());
  }
  return names;
}

TEST(EvalJsonDoc, EveryKeyTheJsonHasIsDocumented) {
  const Scenario rocm = Scenario::load(kRoot / "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", kRoot);
  const Scenario klein = Scenario::load(kRoot / "scenarios/default/lightx2v-1051-flux2-klein-9b-3-calls.json", kRoot);
  PropertyOptions o;
  o.check_min_capacity = false;
  const std::vector<EvalResult> results = {evaluate("invokeai@fda7c42b", rocm, o), evaluate("invokeai@a6724695", rocm, o),
                                           evaluate("lightx2v@c177fd82^", klein, o)};
  const nlohmann::json json = to_json(results);
  std::map<std::string, std::string> keys;  // key -> first path where it occurs
  collect_keys(json, "", keys);
  // The runs fill what they are chosen for: otherwise the check would pass on less than the JSON can hold.
  for (const char* key : {"segments", "blocks", "loads", "claimed_offloaded_but_resident", "requested_bytes", "allocator_model"}) {
    EXPECT_TRUE(keys.count(key)) << key;
  }
  const std::set<std::string> documented = documented_names();
  for (const auto& [key, path] : keys) {
    EXPECT_TRUE(documented.count(key)) << "\"" << key << "\" (at " << path << ") is not in docs/eval_json.md";
  }
}

}  // namespace
}  // namespace offsim::policies
