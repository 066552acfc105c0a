// What `offsim eval` writes besides its table and JSON: the HTML report (--html FILE) and each run as a
// PyTorch memory snapshot (--export-snapshot) or a Chrome/Perfetto trace (--export-perfetto).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/eval_result.hpp"
#include "offsim/report/vega_assets.hpp"

namespace offsim::cli {

struct EvalExportOptions {
  std::string html;      // report file
  std::string snapshot;  // a file for exactly one run, or a folder (existing, or ending in '/') for every run
  std::string perfetto;  // same
  bool quiet = false;
};

class EvalExports {
 public:
  /// Loads the report's JavaScript now, when --html is given, so that a missing `npm ci` fails before
  /// the suite runs rather than after it.
  EvalExports(EvalExportOptions options, std::filesystem::path root);

  /// Writes what was asked for and says so on stdout (unless quiet). Snapshots and traces come from a
  /// second run of each policy that keeps its allocator events (the simulator is deterministic).
  void write(const std::vector<policies::EvalResult>& results, const std::vector<std::string>& suite) const;

 private:
  EvalExportOptions options_;
  std::filesystem::path root_;
  std::optional<report::VegaAssets> assets_;
};

}  // namespace offsim::cli
