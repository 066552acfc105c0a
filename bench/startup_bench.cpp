// Start-up time of the `offsim` command (DESIGN.md section 4: every command but `record` starts in < 50 ms,
// which is why only `offsim-record` links libtorch). Each iteration spawns the built binary once and waits
// for it, output to /dev/null; Time is the wall time of one whole run (UseRealTime: the CPU column is the
// parent's, which only waits), so a command that does
// work (estimate, a short replay) includes it. Counters: peak_rss_MiB of the child (what loading the
// program and its shared libraries costs in memory). OFFSIM_BINARY overrides the binary measured.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace {

std::string offsim_binary() {
  if (const char* path = std::getenv("OFFSIM_BINARY"); path != nullptr && *path != '\0') return path;
  return OFFSIM_BINARY_PATH;
}

/// Runs `offsim args...` to completion with stdout and stderr on /dev/null; returns the child's peak RSS in
/// KiB. Throws when it cannot start or exits non-zero (a benchmark of a failing command measures nothing).
long run_offsim(const std::vector<std::string>& args) {
  const std::string binary = offsim_binary();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot start " + binary);
  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(binary + " failed (exit status " + std::to_string(status) + ")");
  }
  return usage.ru_maxrss;
}

void measure(benchmark::State& state, const std::vector<std::string>& args) {
  long peak_kib = 0;
  try {
    for (auto _ : state) peak_kib = run_offsim(args);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.counters["peak_rss_MiB"] = static_cast<double>(peak_kib) / 1024.0;
}

const std::string kRoot = OFFSIM_SOURCE_DIR;

void BM_Startup_Version(benchmark::State& state) { measure(state, {"--version"}); }
void BM_Startup_Help(benchmark::State& state) { measure(state, {"--help"}); }
void BM_Startup_EvalHelp(benchmark::State& state) { measure(state, {"eval", "--help"}); }
void BM_Startup_CheckHelp(benchmark::State& state) { measure(state, {"check", "--help"}); }
void BM_Startup_Estimate(benchmark::State& state) {
  measure(state, {"estimate", "--vae", "qwen_image", "--op", "decode", "--size", "1248x832", "--backend", "rocm"});
}
// A whole small replay: 1,567 events of a recorded SD1.5 decode (the work itself is about a millisecond).
void BM_Startup_ReplaySmallTrace(benchmark::State& state) {
  measure(state, {"replay", kRoot + "/traces/cpu/sd15-vae_decode_512x512_bf16_efficient_implicit.otrace"});
}
// `offsim record` hands over to offsim-record, which loads libtorch: the one command allowed to start slowly.
void BM_Startup_RecordHelp(benchmark::State& state) { measure(state, {"record", "--help"}); }

BENCHMARK(BM_Startup_Version)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_Help)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_EvalHelp)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_CheckHelp)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_Estimate)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_ReplaySmallTrace)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Startup_RecordHelp)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace
