#include "eval_exports.hpp"

#include <iostream>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/report/eval_report.hpp"
#include "offsim/report/perfetto_trace.hpp"
#include "offsim/report/run_snapshot.hpp"
#include "offsim/sim/errors.hpp"
#include "progress.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

namespace fs = std::filesystem;
using policies::EvalResult;

bool applicable(const EvalResult& r) { return r.scenario != nullptr && r.run.failure.rfind("not applicable", 0) != 0; }

bool names_folder(const std::string& path) { return !path.empty() && (path.back() == '/' || fs::is_directory(path)); }

std::string file_name(const EvalResult& r, const char* extension) {
  std::string name = r.run.scenario + "--" + r.run.policy.id;
  for (char& c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@')) c = '_';
  }
  return name + extension;
}

// Where each run goes: the file itself for one run, else <folder>/<scenario>--<policy><extension>.
std::vector<fs::path> destinations(const std::string& option, const char* flag, const std::vector<const EvalResult*>& runs,
                                   const char* extension) {
  if (!names_folder(option)) {
    if (runs.size() != 1) {
      throw UsageError(std::string(flag) + " " + option + ": a file holds one run but " + std::to_string(runs.size()) +
                        " ran; select one with --policy and --suite, or give a folder (ending in '/') to write one file per run");
    }
    return {fs::path(option)};
  }
  fs::create_directories(option);
  std::vector<fs::path> out;
  for (const EvalResult* r : runs) out.push_back(fs::path(option) / file_name(*r, extension));
  return out;
}

}  // namespace

EvalExports::EvalExports(EvalExportOptions options, fs::path root) : options_(std::move(options)), root_(std::move(root)) {
  if (!options_.html.empty()) assets_ = report::load_vega_assets({root_, fs::path(OFFSIM_SOURCE_DIR)});
}

void EvalExports::write(const std::vector<EvalResult>& results, const std::vector<std::string>& suite) const {
  if (assets_) {
    report::write_eval_report(report::eval_report_data(results, root_, suite), *assets_, options_.html);
    if (!options_.quiet) std::cout << "wrote " << options_.html << " (open it in a browser; it needs no network)\n";
  }
  if (options_.snapshot.empty() && options_.perfetto.empty()) return;

  std::vector<const EvalResult*> runs;
  for (const EvalResult& r : results) {
    if (applicable(r)) runs.push_back(&r);
  }
  std::vector<fs::path> snapshots, traces;
  if (!options_.snapshot.empty()) snapshots = destinations(options_.snapshot, "--export-snapshot", runs, ".pickle");
  if (!options_.perfetto.empty()) traces = destinations(options_.perfetto, "--export-perfetto", runs, ".json");

  Progress progress("export", runs.size(), options_.quiet);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const EvalResult& r = *runs[i];
    policies::RunOptions keep;
    keep.compute_cold = !traces.empty();  // the trace's stage slices carry T_cold; the snapshot needs none
    keep.keep_trace = true;
    auto policy = policies::make_policy(r.run.policy.id);
    const policies::RunRecord again = policies::run_policy(*policy, *r.scenario, keep);
    if (!snapshots.empty()) report::write_run_snapshot(snapshots[i], again, *r.scenario);
    if (!traces.empty()) report::write_perfetto_trace(traces[i], again, *r.scenario);
    progress.update(i + 1);
  }
  progress.finish();
  if (options_.quiet) return;
  if (!snapshots.empty()) {
    std::cout << "wrote " << snapshots.size() << " memory snapshot(s) " << (snapshots.size() == 1 ? snapshots[0].string() : "in " + options_.snapshot)
              << " (drag onto https://pytorch.org/memory_viz, or see docs/reports.md)\n";
  }
  if (!traces.empty()) {
    std::cout << "wrote " << traces.size() << " Perfetto trace(s) " << (traces.size() == 1 ? traces[0].string() : "in " + options_.perfetto)
              << " (open in https://ui.perfetto.dev)\n";
  }
}

}  // namespace offsim::cli
