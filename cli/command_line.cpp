// `offsim`: the command line. Errors raised anywhere below are caught once, here, and mapped to the exit
// codes of docs/exit_codes.md.
#include "offsim/cli/command_line.hpp"

#include <exception>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "offsim/sim/errors.hpp"
#include "usage_error.hpp"

namespace {

// The subcommand that was being parsed when an error came ("" before any): the message names it.
std::string command_prefix(const CLI::App& app) {
  const std::vector<CLI::App*> parsed = app.get_subcommands();
  return parsed.empty() ? "offsim" : "offsim " + parsed.front()->get_name();
}

// CLI11 reads an unknown first word as a stray positional argument and reports "A subcommand is
// required"; name the word instead. The top level takes only flags, so its first word is the command.
bool reject_unknown_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (!word.empty() && word.front() == '-') continue;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->check_name(word)) return false;
    }
    std::string known;
    for (const CLI::App* sub : app.get_subcommands({})) known += (known.empty() ? "" : ", ") + sub->get_name();
    std::cerr << "offsim: usage error: unknown command \"" << word << "\" (commands: " << known
              << "; offsim --help describes them)\n";
    return true;
  }
  return false;
}

}  // namespace

namespace offsim::cli {

int run_command_line(int argc, char** argv) {
  CLI::App app{"offsim: simulate and property-test GPU offload policies against PyTorch's caching allocator"};
  app.set_version_flag("--version", "offsim 0.1.0");
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success; 1 what you gate on failed or was not checked; 2 offsim could not do the job "
             "(bad input file, I/O); 64 usage error (docs/exit_codes.md).");
  int exit_code = offsim::cli::kExitOk;  // set by the subcommand that ran
  // Subcommands (one file each in cli/).
  offsim::cli::add_eval_command(app, exit_code);
  offsim::cli::add_replay_command(app, exit_code);
  offsim::cli::add_check_command(app, exit_code);
  offsim::cli::add_convert_command(app, exit_code);
  offsim::cli::add_estimate_command(app, exit_code);
  offsim::cli::add_calibrate_command(app, exit_code);
  offsim::cli::add_record_command(app, exit_code);
  if (reject_unknown_command(app, argc, argv)) return offsim::cli::kExitUsage;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0; CLI11 prints them.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    // CLI11 gives each kind of parse error its own code (104-114): one usage code is what scripts can test.
    const std::string prefix = command_prefix(app);
    std::cerr << prefix << ": usage error: " << e.what() << "\n(" << prefix << " --help lists the options)\n";
    return offsim::cli::kExitUsage;
  } catch (const offsim::cli::UsageError& e) {
    const std::string prefix = command_prefix(app);
    std::cerr << prefix << ": usage error: " << e.what() << "\n(" << prefix << " --help lists the options)\n";
    return offsim::cli::kExitUsage;
  } catch (const offsim::Error& e) {
    std::cerr << "offsim: error: " << e.what() << "\n";
    return offsim::cli::kExitError;
  } catch (const std::exception& e) {
    std::cerr << "offsim: internal error: " << e.what() << "\n";
    return offsim::cli::kExitError;
  }
  return exit_code;
}

}  // namespace offsim::cli
