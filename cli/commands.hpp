// Each `offsim` subcommand lives in its own file and registers itself on the app with one function.
#pragma once

#include <CLI/CLI.hpp>

namespace offsim::cli {

// Exit codes shared by every subcommand (docs/exit_codes.md is the user's table; keep the two together).
inline constexpr int kExitOk = 0;      // did what was asked; nothing the user gates on failed
inline constexpr int kExitFailed = 1;  // ran, and what the user gates on failed or was not checked
inline constexpr int kExitError = 2;   // could not do the job: unreadable or malformed input, I/O, internal error
inline constexpr int kExitUsage = 64;  // the command line itself is wrong (BSD sysexits.h EX_USAGE)

// `offsim eval` (eval_command.cpp).
void add_eval_command(CLI::App& app, int& exit_code);

// `offsim replay` (replay_command.cpp).
void add_replay_command(CLI::App& app, int& exit_code);

// `offsim check` (check_command.cpp).
void add_check_command(CLI::App& app, int& exit_code);

// `offsim record` (record_command.cpp): runs offsim-record (cli/record/, built only with libtorch).
void add_record_command(CLI::App& app, int& exit_code);

// `offsim estimate` (estimate_command.cpp).
void add_estimate_command(CLI::App& app, int& exit_code);

// `offsim convert` (convert_command.cpp).
void add_convert_command(CLI::App& app, int& exit_code);

// `offsim calibrate` (calibrate_command.cpp).
void add_calibrate_command(CLI::App& app, int& exit_code);

}  // namespace offsim::cli
