// `offsim`: the command line. Errors raised anywhere below are caught once, here.
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "offsim/sim/errors.hpp"

int main(int argc, char** argv) {
  CLI::App app{"offsim: simulate and property-test GPU offload policies against PyTorch's caching allocator"};
  app.set_version_flag("--version", "offsim 0.1.0");
  app.require_subcommand(1);
  int exit_code = offsim::cli::kExitOk;  // set by the subcommand that ran
  // Subcommands (one file each in cli/).
  offsim::cli::add_eval_command(app, exit_code);
  offsim::cli::add_replay_command(app, exit_code);
  offsim::cli::add_check_command(app, exit_code);
  offsim::cli::add_convert_command(app, exit_code);
  offsim::cli::add_estimate_command(app, exit_code);
#ifdef OFFSIM_HAVE_TORCH
  offsim::cli::add_record_command(app, exit_code);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const offsim::Error& e) {
    std::cerr << "offsim: error: " << e.what() << "\n";
    return offsim::cli::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "offsim: internal error: " << e.what() << "\n";
    return offsim::cli::kExitUsage;
  }
  return exit_code;
}
