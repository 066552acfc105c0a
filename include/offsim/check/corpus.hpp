// The known-bug corpus (tests/corpus/*.json): each entry is a real bug as a buggy policy variant, the
// property it must break, and its fixed variant that must pass. The suite must find each buggy variant
// from generated cases without being pointed at it; the counterexamples it found are stored as scenario
// JSON next to the entry (seeds break when generators change, scenarios do not).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "offsim/check/property_check.hpp"

namespace offsim::check {

/// A property (or one aspect of it) that an entry's fixed variant is known to break for a reason that is not
/// the entry's bug: its violations are reported, not failed. Each names why (a finding, a separate bug).
struct FixedException {
  PropertyId property = PropertyId::kP3;
  std::string aspect;  // empty: the whole property; else only violations of this aspect are excused
  std::string why;
};

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
  /// The fixed variant must pass every property that applies to it (P5 reported), except these.
  std::vector<FixedException> fixed_exceptions;
  /// The aspects excused for `property` (empty when none), and whether the whole property is excused.
  std::vector<std::string> excused_aspects(PropertyId property) const;
  bool excuses_whole(PropertyId property) const;
};

/// Reads every tests/corpus/*.json entry. Throws ParseError naming the file and the field.
std::vector<CorpusEntry> load_corpus(const std::filesystem::path& root);

struct CorpusResult {
  const CorpusEntry* entry = nullptr;
  std::vector<PropertyCheckResult> buggy_searches;  // one per seed, the entry's property: must be violated
  /// One per seed and property that applies to the fixed variant: each must hold (see fixed_fails).
  std::vector<PropertyCheckResult> fixed_searches;
  std::vector<PropertyCheckResult> buggy_replays;   // stored counterexamples, the entry's property: violated
  std::vector<PropertyCheckResult> fixed_replays;   // stored counterexamples, every applicable property: hold
  /// Seeds whose search found a shrunk counterexample of the entry's property (a give-up finds nothing).
  std::size_t detected() const;
  /// Why a fixed-variant violation is reported rather than failed: a P5 over-estimate, or a whole property
  /// the entry excuses (with its reason). Empty for anything else, and for a check that did not end in a
  /// violation (a give-up or an error checked nothing and is never excused).
  std::optional<std::string> fixed_excuse(const PropertyCheckResult& check) const;
  /// A fixed-variant search that fails the entry: anything but holding on covered cases, unless excused.
  bool fixed_fails(const PropertyCheckResult& check) const;
  /// The same for a stored counterexample replayed (one case: coverage classes do not apply).
  bool fixed_replay_fails(const PropertyCheckResult& check) const;
  std::size_t fixed_failures() const;  // over fixed_searches
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
