// JUnit XML for CI systems. A gate run: one testsuite per policy, one testcase per (property, seed), with
// the counterexample and its replay command in the failure text. A corpus run: one testsuite per entry,
// one testcase per search (the buggy variant's, which fails when the bug is NOT found, and each of the
// fixed variant's) and per stored counterexample, so that the XML fails exactly where the terminal does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "offsim/check/corpus.hpp"
#include "offsim/check/property_check.hpp"

namespace offsim::check {

struct JunitCase {
  std::string name;
  double seconds = 0;
  enum class Result { kPassed, kFailed, kSkipped } result = Result::kPassed;  // skipped: reported, not failed
  std::string message;  // one line (failures and skips)
  std::string text;     // the detail: counterexample, replay command
};

struct JunitSuite {
  std::string name;
  std::vector<JunitCase> cases;
};

/// The document; counts (tests, failures, skipped) are computed from the cases.
std::string junit_xml(const std::vector<JunitSuite>& suites, const std::string& name);

/// A gate run: failed = blocks_gate(), P5 over-estimates skipped.
std::string junit_xml(const std::vector<PropertyCheckResult>& checks, const std::string& name);

/// A corpus run: every search, buggy and fixed, and every stored counterexample is a testcase.
std::string corpus_junit_xml(const std::vector<CorpusResult>& results, const std::string& name);

}  // namespace offsim::check
