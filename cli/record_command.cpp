// `offsim record`: hands its command line to offsim-record, the program beside this one that links libtorch
// (cli/record/). Only that program loads libtorch's ~290 shared libraries, so every other command starts in
// milliseconds (bench/startup_bench.cpp). exec keeps the terminal, the exit code and the signals as they are.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::cli {
namespace {

namespace fs = std::filesystem;

/// offsim-record in the folder of the running binary (symbolic links resolved: the build's own folder).
fs::path record_program() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (error) throw Error("offsim record: cannot find this program's folder (/proc/self/exe: " + error.message() + ")");
  return self.parent_path() / "offsim-record";
}

[[noreturn]] void exec_record(const std::vector<std::string>& args) {
  const fs::path program = record_program();
  if (!fs::exists(program)) {
    throw Error("offsim record: " + program.string() +
                " is missing: it is built only where CMake finds libtorch (Debian's libtorch-dev, which "
                "scripts/bootstrap installs); every other command works without it");
  }
  std::vector<char*> argv;
  std::string name = program.string();
  argv.push_back(name.data());
  std::vector<std::string> copies = args;
  for (std::string& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  execv(name.c_str(), argv.data());
  throw Error("offsim record: cannot run " + name + ": " + std::strerror(errno));
}

}  // namespace

void add_record_command(CLI::App& app, int& /*exit_code*/) {
  CLI::App* cmd = app.add_subcommand(
      "record",
      "Run a VAE decode/encode with random weights on the CPU (libtorch) and write its allocation trace "
      "(offsim-record, built where libtorch is found; `offsim record --help` lists its options)");
  // Everything after `record`, --help included, belongs to offsim-record.
  cmd->prefix_command();
  cmd->set_help_flag();
  cmd->allow_extras();
  cmd->callback([cmd] { exec_record(cmd->remaining()); });
}

}  // namespace offsim::cli
