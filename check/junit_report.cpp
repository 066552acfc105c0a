#include "offsim/check/junit_report.hpp"

#include <cstdio>
#include <map>

namespace offsim::check {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 forbids most control characters.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

std::string seconds(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", s);
  return buffer;
}

std::string detail(const PropertyCheckResult& c) {
  std::string text = c.failure;
  if (!c.missing_classes.empty()) {
    text += "no generated case exercised: ";
    for (const std::string& m : c.missing_classes) text += m + " ";
  }
  if (!c.counterexample_case.empty()) text += "\ncounterexample:\n" + c.counterexample_case;
  if (!c.replay_command.empty()) text += "\nreplay: " + c.replay_command;
  return text;
}

std::string one_line(const std::string& text) { return text.substr(0, std::min<std::size_t>(200, text.find('\n'))); }

std::string search_name(const std::string& role, const PropertyCheckResult& c, const std::string& aspect) {
  return role + " " + c.policy + " " + std::string(to_string(c.property)) + (aspect.empty() ? "" : "." + aspect) +
         " seed=" + std::to_string(c.seed) + " (" + std::to_string(c.cases) + " cases)";
}

JunitCase named(std::string name, double secs = 0) {
  JunitCase c;
  c.name = std::move(name);
  c.seconds = secs;
  return c;
}

}  // namespace

std::string junit_xml(const std::vector<JunitSuite>& suites, const std::string& name) {
  std::size_t tests = 0, failures = 0, skipped = 0;
  double total = 0;
  for (const JunitSuite& s : suites) {
    for (const JunitCase& c : s.cases) {
      ++tests;
      failures += c.result == JunitCase::Result::kFailed ? 1 : 0;
      skipped += c.result == JunitCase::Result::kSkipped ? 1 : 0;
      total += c.seconds;
    }
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites name=\"" + escape(name) + "\" tests=\"" + std::to_string(tests) + "\" failures=\"" +
         std::to_string(failures) + "\" skipped=\"" + std::to_string(skipped) + "\" time=\"" + seconds(total) + "\">\n";
  for (const JunitSuite& s : suites) {
    std::size_t suite_failures = 0, suite_skipped = 0;
    double suite_seconds = 0;
    for (const JunitCase& c : s.cases) {
      suite_failures += c.result == JunitCase::Result::kFailed ? 1 : 0;
      suite_skipped += c.result == JunitCase::Result::kSkipped ? 1 : 0;
      suite_seconds += c.seconds;
    }
    out += "  <testsuite name=\"" + escape(s.name) + "\" tests=\"" + std::to_string(s.cases.size()) + "\" failures=\"" +
           std::to_string(suite_failures) + "\" skipped=\"" + std::to_string(suite_skipped) + "\" time=\"" +
           seconds(suite_seconds) + "\">\n";
    for (const JunitCase& c : s.cases) {
      out += "    <testcase classname=\"" + escape(s.name) + "\" name=\"" + escape(c.name) + "\" time=\"" +
             seconds(c.seconds) + "\"";
      if (c.result == JunitCase::Result::kPassed) {
        out += "/>\n";
        continue;
      }
      const std::string kind = c.result == JunitCase::Result::kFailed ? "failure" : "skipped";
      out += ">\n      <" + kind + " message=\"" + escape(c.message) + "\">" + escape(c.text) + "</" + kind +
             ">\n    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  out += "</testsuites>\n";
  return out;
}

std::string junit_xml(const std::vector<PropertyCheckResult>& checks, const std::string& name) {
  std::map<std::string, JunitSuite> by_policy;
  for (const PropertyCheckResult& c : checks) {
    JunitSuite& suite = by_policy[c.policy];
    suite.name = c.policy;
    JunitCase testcase;
    testcase.name = std::string(to_string(c.property)) + " seed=" + std::to_string(c.seed) + " (" +
                    std::to_string(c.cases) + " cases)";
    testcase.seconds = c.seconds;
    if (!c.ok()) {
      testcase.result = c.blocks_gate() ? JunitCase::Result::kFailed : JunitCase::Result::kSkipped;  // P5: reported
      testcase.message = one_line(c.failure.empty() ? "not exercised" : c.failure);
      testcase.text = detail(c);
    }
    suite.cases.push_back(std::move(testcase));
  }
  std::vector<JunitSuite> suites;
  for (auto& [policy, suite] : by_policy) suites.push_back(std::move(suite));
  return junit_xml(suites, name);
}

std::string corpus_junit_xml(const std::vector<CorpusResult>& results, const std::string& name) {
  std::vector<JunitSuite> suites;
  for (const CorpusResult& r : results) {
    const CorpusEntry& e = *r.entry;
    JunitSuite suite;
    suite.name = e.bug + " " + e.buggy + " -> " + e.fixed;
    for (const PropertyCheckResult& b : r.buggy_searches) {
      JunitCase c = named(search_name("buggy", b, e.aspect) + ": must be found", b.seconds);
      if (!b.violated()) {
        c.result = JunitCase::Result::kFailed;
        c.message = "NOT detected: the search found no counterexample of " + std::string(to_string(e.property)) +
                    (e.aspect.empty() ? "" : "." + e.aspect) + " (" + std::string(to_string(b.outcome)) + ")";
        c.text = b.failure;
      }
      suite.cases.push_back(std::move(c));
    }
    const auto judge_fixed = [&](JunitCase& c, const PropertyCheckResult& f, bool fails) {
      if (!fails && !f.violated()) return;  // held (and, for a search, was exercised)
      c.result = fails ? JunitCase::Result::kFailed : JunitCase::Result::kSkipped;
      c.message = one_line(f.failure.empty() ? "not exercised" : f.failure);
      if (!fails) c.message = *r.fixed_excuse(f) + ": " + c.message;
      c.text = detail(f);
    };
    for (const PropertyCheckResult& f : r.fixed_searches) {
      JunitCase c = named(search_name("fixed", f, "") + ": must hold", f.seconds);
      judge_fixed(c, f, r.fixed_fails(f));
      suite.cases.push_back(std::move(c));
    }
    for (const PropertyCheckResult& b : r.buggy_replays) {
      JunitCase c = named("stored " + b.counterexample_file + ": buggy " + e.buggy + " violates " +
                          std::string(to_string(e.property)) + (e.aspect.empty() ? "" : "." + e.aspect));
      if (!b.violated()) {
        c.result = JunitCase::Result::kFailed;
        c.message = "the stored counterexample no longer breaks the buggy variant";
      }
      suite.cases.push_back(std::move(c));
    }
    for (const PropertyCheckResult& f : r.fixed_replays) {
      JunitCase c = named("stored " + f.counterexample_file + ": fixed " + e.fixed + " " +
                          std::string(to_string(f.property)) + " holds");
      judge_fixed(c, f, r.fixed_replay_fails(f));
      suite.cases.push_back(std::move(c));
    }
    suites.push_back(std::move(suite));
  }
  return junit_xml(suites, name);
}

}  // namespace offsim::check
