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

}  // namespace

std::string junit_xml(const std::vector<PropertyCheckResult>& checks, const std::string& suite_name) {
  std::map<std::string, std::vector<const PropertyCheckResult*>> by_policy;
  for (const PropertyCheckResult& c : checks) by_policy[c.policy].push_back(&c);
  std::size_t tests = 0, failures = 0;
  double seconds = 0;
  for (const PropertyCheckResult& c : checks) {
    ++tests;
    failures += c.blocks_gate() ? 1 : 0;
    seconds += c.seconds;
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  char head[256];
  std::snprintf(head, sizeof head, "<testsuites name=\"%s\" tests=\"%zu\" failures=\"%zu\" time=\"%.3f\">\n",
                escape(suite_name).c_str(), tests, failures, seconds);
  out += head;
  for (const auto& [policy, list] : by_policy) {
    std::size_t suite_failures = 0;
    double suite_seconds = 0;
    for (const PropertyCheckResult* c : list) {
      suite_failures += c->blocks_gate() ? 1 : 0;
      suite_seconds += c->seconds;
    }
    char suite[512];
    std::snprintf(suite, sizeof suite, "  <testsuite name=\"%s\" tests=\"%zu\" failures=\"%zu\" time=\"%.3f\">\n",
                  escape(policy).c_str(), list.size(), suite_failures, suite_seconds);
    out += suite;
    for (const PropertyCheckResult* c : list) {
      char name[256];
      std::snprintf(name, sizeof name, "%s seed=%llu (%d cases)", std::string(to_string(c->property)).c_str(),
                    static_cast<unsigned long long>(c->seed), c->cases);
      char testcase[512];
      std::snprintf(testcase, sizeof testcase, "    <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\"",
                    escape(policy).c_str(), escape(name).c_str(), c->seconds);
      out += testcase;
      if (c->ok()) {
        out += "/>\n";
        continue;
      }
      std::string text = c->failure;
      if (!c->missing_classes.empty()) {
        text += "no generated case exercised: ";
        for (const std::string& m : c->missing_classes) text += m + " ";
      }
      if (!c->counterexample_case.empty()) text += "\ncounterexample:\n" + c->counterexample_case;
      if (!c->replay_command.empty()) text += "\nreplay: " + c->replay_command;
      const std::string kind = c->blocks_gate() ? "failure" : "skipped";  // skipped: a P5 over-estimate, reported
      out += ">\n      <" + kind + " message=\"" + escape(c->failure.substr(0, 200)) + "\">" + escape(text) + "</" + kind +
             ">\n    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  out += "</testsuites>\n";
  return out;
}

}  // namespace offsim::check
