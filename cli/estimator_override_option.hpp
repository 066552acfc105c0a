// `--estimator-override FILE` of `offsim eval` and `offsim check`: new constants for an estimator offsim knows
// (a JSON file of constants for its id, or `offsim calibrate --json` output), installed for the whole command so
// that every policy that asks that estimator gets them (policies/estimator_override.hpp, docs/calibration.md).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "offsim/policies/estimator_override.hpp"

namespace offsim::cli {

void add_estimator_override_option(CLI::App* command, std::vector<std::string>& files);

/// Reads every file and installs its overrides until the returned object is destroyed; says what it replaced
/// on `log`. Null when `files` is empty. Throws ConfigError / ParseError naming the file.
std::unique_ptr<policies::ScopedEstimatorOverrides> install_estimator_overrides(const std::vector<std::string>& files,
                                                                                std::ostream& log);

}  // namespace offsim::cli
