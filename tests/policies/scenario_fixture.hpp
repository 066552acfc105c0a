// Small hand-checked scenarios for policy unit tests: model manifests written to a fresh temporary
// directory (Scenario::from_json reads manifests from files) and a scenario document built in code, with
// inline working memory ([["alloc", bytes], ["free", index]]).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "offsim/policies/scenario.hpp"

namespace offsim::policies::test {

/// One tensor of a test manifest; `group`/`block` tag it as part of a block list (diffusers/LightX2V).
struct T {
  T(std::string n, std::uint64_t b) : name(std::move(n)), bytes(b) {}
  T(std::string n, std::uint64_t b, std::string g, int k)
      : name(std::move(n)), bytes(b), group(std::move(g)), block(k) {}
  std::string name;
  std::uint64_t bytes = 0;
  std::string group;
  int block = -1;
};

/// A manifest document: `blocks` lists the block groups as {prefix, count}.
inline nlohmann::json manifest(const std::string& name, const std::string& component, const std::vector<T>& tensors,
                               const std::vector<std::pair<std::string, int>>& blocks = {}) {
  nlohmann::json j = {{"format", "offsim-model-manifest/1"}, {"name", name}, {"pipeline", "test"},
                      {"component", component}, {"dtype", "bf16"}};
  std::uint64_t total = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const T& t : tensors) {
    nlohmann::json e = {{"name", t.name}, {"bytes", t.bytes}};
    if (!t.group.empty()) {
      e["group"] = t.group;
      e["block"] = t.block;
    }
    list.push_back(e);
    total += t.bytes;
  }
  nlohmann::json b = nlohmann::json::array();
  for (const auto& [prefix, count] : blocks) b.push_back({{"prefix", prefix}, {"count", count}});
  j["blocks"] = b;
  j["tensors"] = list;
  j["total_bytes"] = total;
  return j;
}

/// Inline working memory: allocations in order, each freed at the end, labelled as a synthetic test trace.
inline nlohmann::json working_memory(const std::vector<std::uint64_t>& allocs, bool fallible_last = false) {
  nlohmann::json ops = nlohmann::json::array();
  for (std::size_t i = 0; i < allocs.size(); ++i) {
    nlohmann::json op = nlohmann::json::array({"alloc", allocs[i]});
    if (fallible_last && i + 1 == allocs.size()) op.push_back({{"fallible", true}});
    ops.push_back(op);
  }
  for (std::size_t i = 0; i < allocs.size(); ++i) ops.push_back(nlohmann::json::array({"free", i}));
  return {{"provenance", {{"kind", "synthetic"}, {"source", "unit test"}}}, {"ops", ops}};
}

/// Writes `manifests` (file name -> document) to a fresh directory and reads `doc` against it.
inline Scenario build(nlohmann::json doc, const std::map<std::string, nlohmann::json>& manifests) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("offsim-policy-test-" + std::string(info ? info->name() : "x") + "-" +
                                     std::to_string(counter++));
  std::filesystem::create_directories(dir);
  for (const auto& [file, m] : manifests) std::ofstream(dir / file) << m.dump();
  doc["format"] = "offsim-scenario/1";
  if (!doc.contains("name")) doc["name"] = info ? info->name() : "test";
  Scenario s = Scenario::from_json(doc, "unit test", dir);
  std::filesystem::remove_all(dir);
  return s;
}

inline nlohmann::json device(std::uint64_t total) {
  return {{"name", "test device"}, {"platform", "cuda"}, {"total", total}};
}

}  // namespace offsim::policies::test
