#include "estimator_override_option.hpp"

namespace offsim::cli {

void add_estimator_override_option(CLI::App* command, std::vector<std::string>& files) {
  command->add_option("--estimator-override", files,
                      "Judge with these constants for an estimator id: an override JSON or `offsim calibrate --json` "
                      "output (repeatable; docs/calibration.md)")
      ->check(CLI::ExistingFile);
}

std::unique_ptr<policies::ScopedEstimatorOverrides> install_estimator_overrides(const std::vector<std::string>& files,
                                                                                std::ostream& log) {
  if (files.empty()) return nullptr;
  std::vector<policies::EstimatorOverride> overrides;
  for (const std::string& file : files) {
    for (policies::EstimatorOverride& o : policies::read_estimator_overrides(file)) overrides.push_back(std::move(o));
  }
  auto scoped = std::make_unique<policies::ScopedEstimatorOverrides>(overrides);
  for (const policies::EstimatorOverride& o : overrides) {
    log << "estimator override: " << policies::find_estimator(o.estimator).label << "\n";
  }
  return scoped;
}

}  // namespace offsim::cli
