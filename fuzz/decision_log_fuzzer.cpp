// libFuzzer target: a decision log (offsim-decision/1 JSON lines, docs/decision_log.md), read and checked as
// `offsim check --decisions` does, with T from the checkout's published points and traces.
#include <sstream>

#include "fuzz_target.hpp"
#include "offsim/policies/decision_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return offsim::fuzz::refuse_or_accept(data, size, [](std::string bytes) {
    std::istringstream in(std::move(bytes));
    const offsim::policies::DecisionLog log = offsim::policies::parse_decision_log(in, "fuzz.jsonl");
    offsim::policies::DecisionLogOptions options;
    options.root = OFFSIM_SOURCE_DIR;
    (void)format_report(offsim::policies::check_decision_log(log, options));
  });
}
