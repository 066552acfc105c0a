// The `offsim` command line as a function: offsim's own main() calls it, and so does a program that adds
// policies of its own first (policies::register_policy; examples/evict_others_first). Parses argv, runs
// the command and returns its exit code (docs/exit_codes.md); errors are caught and printed inside.
#pragma once

namespace offsim::cli {

int run_command_line(int argc, char** argv);

}  // namespace offsim::cli
