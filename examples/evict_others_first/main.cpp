// offsim-example: the offsim command line with EvictOthersFirst added, so that `eval`, `check`, `--html`
// and every other command treat it like offsim's own policies.
#include <memory>

#include "evict_others_first.hpp"
#include "offsim/cli/command_line.hpp"
#include "offsim/policies/policy_registry.hpp"

int main(int argc, char** argv) {
  offsim::policies::register_policy({"evict-others-first@example", "evict unused models (LRU) until the stage fits",
                                     /*latest=*/true, [] { return std::make_unique<example::EvictOthersFirst>(); }});
  return offsim::cli::run_command_line(argc, argv);
}
