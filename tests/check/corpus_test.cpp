// The known-bug corpus judges honestly: only a shrunk counterexample of the entry's property is a detection
// (never a give-up), a fixed variant passes only when every property that applies to it holds (P5 and the
// entry's named exceptions reported), and the JUnit XML fails exactly where the terminal does.
#include "offsim/check/corpus.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "offsim/check/junit_report.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::check {
namespace {

const std::filesystem::path kRoot = OFFSIM_SOURCE_DIR;

PropertyCheckResult result(const std::string& policy, PropertyId property, CheckOutcome outcome) {
  PropertyCheckResult r;
  r.policy = policy;
  r.property = property;
  r.outcome = outcome;
  r.seed = 7;
  r.cases = 60;
  if (outcome != CheckOutcome::kHolds) r.failure = std::string(to_string(outcome)) + " <detail>";
  return r;
}

CorpusEntry entry() {
  CorpusEntry e;
  e.bug = "BX";
  e.buggy = "buggy@1";
  e.fixed = "fixed@2";
  e.property = PropertyId::kP3;
  e.aspect = "estimator";
  e.fixed_exceptions = {{PropertyId::kP2, "", "a separate under-estimate"}, {PropertyId::kP4, "capacity", "fragmentation"}};
  return e;
}

CorpusResult passing(const CorpusEntry& e) {
  CorpusResult r;
  r.entry = &e;
  r.buggy_searches = {result(e.buggy, PropertyId::kP3, CheckOutcome::kViolated)};
  for (PropertyId p : {PropertyId::kP1, PropertyId::kP2, PropertyId::kP3, PropertyId::kP4, PropertyId::kP5}) {
    r.fixed_searches.push_back(result(e.fixed, p, CheckOutcome::kHolds));
  }
  r.buggy_replays = {result(e.buggy, PropertyId::kP3, CheckOutcome::kViolated)};
  r.fixed_replays = {result(e.fixed, PropertyId::kP3, CheckOutcome::kHolds)};
  return r;
}

TEST(CorpusResult, AGiveUpOrAnErrorIsNeverADetection) {
  const CorpusEntry e = entry();
  CorpusResult r = passing(e);
  EXPECT_TRUE(r.ok());
  for (CheckOutcome nothing : {CheckOutcome::kHolds, CheckOutcome::kGaveUp, CheckOutcome::kError, CheckOutcome::kNotStarted}) {
    r.buggy_searches[0].outcome = nothing;
    EXPECT_EQ(r.detected(), 0u) << to_string(nothing);
    EXPECT_FALSE(r.ok()) << to_string(nothing);
  }
}

TEST(CorpusResult, AFixedVariantMustHoldEveryPropertyButReportedOnes) {
  const CorpusEntry e = entry();
  for (PropertyId p : {PropertyId::kP1, PropertyId::kP3, PropertyId::kP4}) {
    CorpusResult r = passing(e);
    r.fixed_searches[static_cast<std::size_t>(p)].outcome = CheckOutcome::kViolated;
    EXPECT_TRUE(r.fixed_fails(r.fixed_searches[static_cast<std::size_t>(p)])) << to_string(p);
    EXPECT_FALSE(r.ok()) << to_string(p) << " fails, not only the entry's P3";
  }
  CorpusResult over = passing(e);
  over.fixed_searches[4].outcome = CheckOutcome::kViolated;
  EXPECT_TRUE(over.ok()) << "P5 over-estimates are reported";
  EXPECT_NE(over.fixed_excuse(over.fixed_searches[4])->find("P5"), std::string::npos);
  CorpusResult excused = passing(e);
  excused.fixed_searches[1].outcome = CheckOutcome::kViolated;
  EXPECT_TRUE(excused.ok()) << "the entry excuses the whole of P2";
  EXPECT_NE(excused.fixed_excuse(excused.fixed_searches[1])->find("a separate under-estimate"), std::string::npos);
  // An excuse covers violations only: a give-up of an excused property still checked nothing.
  excused.fixed_searches[1].outcome = CheckOutcome::kGaveUp;
  EXPECT_FALSE(excused.ok());
  CorpusResult uncovered = passing(e);
  uncovered.fixed_searches[0].missing_classes = {"evicts"};
  EXPECT_FALSE(uncovered.ok()) << "a property not exercised was not checked";
  CorpusResult stored = passing(e);
  stored.fixed_replays[0].outcome = CheckOutcome::kViolated;
  EXPECT_FALSE(stored.ok());
  stored = passing(e);
  stored.buggy_replays[0].outcome = CheckOutcome::kHolds;
  EXPECT_FALSE(stored.ok());
}

TEST(CorpusEntry, AnAspectExceptionExcusesOnlyThatAspect) {
  const CorpusEntry e = entry();
  EXPECT_EQ(e.excused_aspects(PropertyId::kP4), std::vector<std::string>{"capacity"});
  EXPECT_FALSE(e.excuses_whole(PropertyId::kP4));
  EXPECT_TRUE(e.excuses_whole(PropertyId::kP2));
  EXPECT_TRUE(e.excused_aspects(PropertyId::kP3).empty());
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(CorpusJunit, EverySearchIsATestcaseAndFailuresAreCounted) {
  const CorpusEntry e = entry();
  CorpusResult r = passing(e);
  const std::string ok = corpus_junit_xml({r}, "corpus");
  EXPECT_EQ(count(ok, "<testcase "), 1u + 5u + 1u + 1u) << ok;
  EXPECT_NE(ok.find("tests=\"8\" failures=\"0\""), std::string::npos) << ok;
  // A "buggy" variant that is not buggy: the terminal says NOT detected, so must the XML.
  r.buggy_searches[0].outcome = CheckOutcome::kHolds;
  r.fixed_searches[4].outcome = CheckOutcome::kViolated;  // P5: reported, a skipped testcase
  const std::string failed = corpus_junit_xml({r}, "corpus");
  EXPECT_NE(failed.find("<testsuites name=\"corpus\" tests=\"8\" failures=\"1\" skipped=\"1\""), std::string::npos)
      << failed;
  EXPECT_NE(failed.find("<failure message=\"NOT detected"), std::string::npos) << failed;
  EXPECT_NE(failed.find("<skipped message=\"P5 over-estimate"), std::string::npos) << failed;
}

TEST(GateJunit, FailuresSkipsAndEscaping) {
  PropertyCheckResult bad = result("a<b>&\"c\"", PropertyId::kP3, CheckOutcome::kViolated);
  bad.failure = "line one\x01\nline two";
  bad.replay_command = "offsim check --replay x.json";
  const std::string xml = junit_xml(std::vector<PropertyCheckResult>{bad, result("p", PropertyId::kP5, CheckOutcome::kViolated),
                                                                     result("p", PropertyId::kP1, CheckOutcome::kHolds),
                                                                     result("p", PropertyId::kP2, CheckOutcome::kNotStarted)},
                                    "gate");
  EXPECT_NE(xml.find("tests=\"4\" failures=\"2\" skipped=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos) << xml;
  EXPECT_NE(xml.find("message=\"line one \""), std::string::npos) << "one line, control characters blanked: " << xml;
  EXPECT_NE(xml.find("replay: offsim check --replay x.json"), std::string::npos) << xml;
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
}

// run_corpus itself, on entries that must fail: a "buggy" variant that is the fix, and B1 with a "fixed"
// variant that is another cache (ComfyUI with PR #11199's VAE estimates, below the ROCm Qwen-Image decode's
// measured peak: finding F2): its decode OOM is a handled one (VAE.decode retries in tiles), so judged on the
// entry's P3.estimator alone it passes; judged on every property (P2 here) it must not.
TEST(RunCorpus, FailsAnEntryWhoseVariantsAreSwapped) {
  const std::vector<CorpusEntry> entries = load_corpus(kRoot);
  const auto b1 = std::find_if(entries.begin(), entries.end(), [](const CorpusEntry& x) { return x.bug == "B1"; });
  ASSERT_NE(b1, entries.end());
  CorpusEntry not_buggy = *b1;
  not_buggy.buggy = b1->fixed;
  not_buggy.counterexamples.clear();
  CorpusOptions options;
  options.root = kRoot;
  options.cases = 30;
  const std::vector<CorpusResult> results = run_corpus({not_buggy}, options);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].detected(), 0u);
  EXPECT_FALSE(results[0].ok());
  const std::string xml = corpus_junit_xml(results, "corpus");
  EXPECT_NE(xml.find("failures=\"1\""), std::string::npos) << xml;

  CorpusEntry wrong_fix = *b1;
  wrong_fix.fixed = "comfyui@a125cd84+vae-033046cc";
  wrong_fix.counterexamples.clear();
  options.cases = 60;
  options.seeds = {20261127};
  const std::vector<CorpusResult> swapped = run_corpus({wrong_fix}, options);
  ASSERT_EQ(swapped.size(), 1u);
  EXPECT_EQ(swapped[0].detected(), 1u);
  EXPECT_GT(swapped[0].fixed_failures(), 0u) << "comfyui@a125cd84+vae-033046cc is no fix of InvokeAI's decode";
  EXPECT_FALSE(swapped[0].ok());
}

TEST(LoadCorpus, RefusesAnExceptionWithoutAReasonNamingTheFile) {
  const std::filesystem::path root = std::filesystem::temp_directory_path() / "offsim-corpus-test";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "tests/corpus");
  std::ofstream(root / "tests/corpus/bx.json")
      << R"({"format": "offsim-corpus-entry/1", "bug": "BX", "title": "t", "citation": "c",
            "buggy": "invokeai@fda7c42b", "fixed": "invokeai@a6724695", "property": "P3",
            "fixed_exceptions": [{"property": "P2"}]})";
  try {
    (void)load_corpus(root);
    ADD_FAILURE() << "accepted an exception without why";
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("bx.json:0: fixed_exceptions[0]: needs"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace offsim::check
