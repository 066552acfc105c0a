// Where bundled data (scenarios/, traces/) lives: --root, else the current directory when it holds the
// bundled data, else the source tree offsim was built from.
#pragma once

#include <filesystem>
#include <string>

namespace offsim::cli {

std::filesystem::path repository_root(const std::string& option);

}  // namespace offsim::cli
