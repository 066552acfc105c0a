// The JavaScript an HTML report inlines so that it opens offline: vega, vega-lite and vega-embed, installed
// from the npm registry at the exact versions that report/web/package.json and package-lock.json pin
// (`npm ci --prefix report/web`; scripts/bootstrap runs it). They are read when a report is written, not
// compiled in, so offsim builds without node and only --html needs them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace offsim::report {

/// The command that installs the pinned packages, run from the repository root.
inline constexpr const char* kInstallCommand = "npm ci --prefix report/web";

struct JsLibrary {
  std::string name;     // npm package, e.g. "vega-lite"
  std::string version;  // as installed (equal to the pinned version)
  std::string license;  // from its package.json
  std::string code;     // the minified UMD build
};

struct VegaAssets {
  std::filesystem::path web_dir;  // the report/web folder the libraries came from
  std::vector<JsLibrary> libraries;  // in load order: vega, vega-lite, vega-embed
};

/// Loads the libraries from the first of `$OFFSIM_REPORT_WEB` (a report/web folder) and
/// `<root>/report/web` for each root that has report/web/package.json. Throws ConfigError naming the
/// folder and kInstallCommand when node_modules is missing, a build file is absent, or an installed
/// version differs from the pinned one.
VegaAssets load_vega_assets(const std::vector<std::filesystem::path>& roots);

}  // namespace offsim::report
