// The known-bug corpus (tests/corpus/*.json): each entry is a real bug as a buggy policy variant, the
// property it must break, and its fixed variant that must pass. The suite must find each buggy variant
// from generated cases without being pointed at it; the counterexamples it found are stored as scenario
// JSON next to the entry (seeds break when generators change, scenarios do not).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "offsim/check/property_check.hpp"

namespace offsim::check {

struct CorpusEntry {
  std::string file;
  std::string bug;       // "B1"
  std::string title;
  std::string citation;
  std::string buggy;     // policy id
  std::string fixed;     // policy id
  PropertyId property = PropertyId::kP3;
  std::string aspect;  // "P4.residency" in the file: only that half of the property counts
  /// What the fix concerns: the search for the bug and the check of the fix stay inside it (a fixed
  /// variant may still have other, unrelated bugs elsewhere; those are other entries).
  GeneratorScope scope;
  std::vector<std::string> counterexamples;  // stored scenario files (relative to the root)
};

/// Reads every tests/corpus/*.json entry. Throws ParseError naming the file and the field.
std::vector<CorpusEntry> load_corpus(const std::filesystem::path& root);

struct CorpusResult {
  const CorpusEntry* entry = nullptr;
  std::vector<PropertyCheckResult> buggy_searches;  // one per seed: must fail
  std::vector<PropertyCheckResult> fixed_searches;  // one per seed: must pass
  std::vector<PropertyCheckResult> buggy_replays;   // stored counterexamples: must fail
  std::vector<PropertyCheckResult> fixed_replays;   // must pass
  std::size_t detected() const;                      // seeds whose search found the bug
  bool ok() const;  // found from every seed, fixed passes everywhere, stored scenarios behave
};

struct CorpusOptions {
  std::vector<std::uint64_t> seeds = {20261126};
  int cases = 60;
  std::filesystem::path root;
  std::filesystem::path counterexample_dir;
  /// Called after each entry's searches from one seed (done of entries x seeds): `check --corpus` shows it.
  std::function<void(std::size_t done, std::size_t total)> progress;
};

std::vector<CorpusResult> run_corpus(const std::vector<CorpusEntry>& entries, const CorpusOptions& options);

}  // namespace offsim::check
