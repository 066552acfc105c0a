#include "repository_root.hpp"

#include "offsim/sim/errors.hpp"

namespace offsim::cli {

std::filesystem::path repository_root(const std::string& option) {
  namespace fs = std::filesystem;
  if (!option.empty()) {
    if (!fs::is_directory(fs::path(option) / "traces")) {
      throw ConfigError("--root " + option + ": no traces/ folder there (expected an offsim checkout)");
    }
    return option;
  }
  if (fs::is_directory("traces/models") && fs::is_directory("scenarios")) return fs::current_path();
  return OFFSIM_SOURCE_DIR;
}

}  // namespace offsim::cli
