#include "offsim/report/vega_assets.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "offsim/sim/errors.hpp"

namespace offsim::report {

namespace {

namespace fs = std::filesystem;

struct Wanted {
  const char* name;
  const char* build;  // UMD build inside the package: defines a global, needs no module loader
};
constexpr Wanted kLibraries[] = {
    {"vega", "build/vega.min.js"},
    {"vega-lite", "build/vega-lite.min.js"},
    {"vega-embed", "build/vega-embed.min.js"},
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json read_json(const fs::path& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw ParseError(path.string(), e.byte, std::string("not a package.json: ") + e.what());
  }
}

std::string fix(const fs::path& web) {
  return " (run `" + std::string(kInstallCommand) + "` in the repository root, or scripts/bootstrap; folder " +
         web.string() + ")";
}

VegaAssets load_from(const fs::path& web) {
  const nlohmann::json pinned = read_json(web / "package.json");
  const fs::path modules = web / "node_modules";
  if (!fs::is_directory(modules)) {
    throw ConfigError("the HTML report needs vega, vega-lite and vega-embed, which are not installed" + fix(web));
  }
  VegaAssets assets;
  assets.web_dir = web;
  for (const Wanted& lib : kLibraries) {
    const fs::path package = modules / lib.name;
    if (!fs::is_regular_file(package / "package.json") || !fs::is_regular_file(package / lib.build)) {
      throw ConfigError(std::string("the HTML report needs ") + lib.name + "/" + lib.build + ", which is missing" +
                        fix(web));
    }
    const nlohmann::json installed = read_json(package / "package.json");
    const std::string version = installed.value("version", "");
    const std::string wanted = pinned.contains("dependencies") ? pinned["dependencies"].value(lib.name, "") : "";
    if (version != wanted) {
      throw ConfigError(std::string(lib.name) + " " + version + " is installed but report/web/package.json pins " +
                        wanted + fix(web));
    }
    assets.libraries.push_back({lib.name, version, installed.value("license", "see its package.json"),
                                read_file(package / lib.build)});
  }
  return assets;
}

}  // namespace

VegaAssets load_vega_assets(const std::vector<fs::path>& roots) {
  if (const char* env = std::getenv("OFFSIM_REPORT_WEB"); env != nullptr && *env != '\0') {
    if (!fs::is_regular_file(fs::path(env) / "package.json")) {
      throw ConfigError(std::string("OFFSIM_REPORT_WEB=") + env + ": no package.json there (expected offsim's report/web)");
    }
    return load_from(env);
  }
  std::string looked;
  for (const fs::path& root : roots) {
    const fs::path web = root / "report" / "web";
    if (fs::is_regular_file(web / "package.json")) return load_from(web);
    looked += (looked.empty() ? "" : ", ") + web.string();
  }
  throw ConfigError("no report/web/package.json found (looked in " + looked +
                    "); pass --root <offsim checkout> or set OFFSIM_REPORT_WEB");
}

}  // namespace offsim::report
