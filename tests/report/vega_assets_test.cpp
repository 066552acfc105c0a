// Finding the pinned report JavaScript: a missing `npm ci` or a version that differs from the pin is an
// error that names the command to run, never a report that silently fails to draw.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "offsim/report/vega_assets.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::report {
namespace {

namespace fs = std::filesystem;

class VegaAssetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("OFFSIM_REPORT_WEB");
    root_ = fs::temp_directory_path() / ("offsim-vega-assets-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "report" / "web");
    write(root_ / "report/web/package.json", R"({"dependencies": {"vega": "6.2.0", "vega-lite": "6.4.1", "vega-embed": "7.1.0"}})");
  }
  void TearDown() override { fs::remove_all(root_); }
  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  void install(const std::string& name, const std::string& version, const std::string& build) {
    write(root_ / "report/web/node_modules" / name / "package.json", R"({"version": ")" + version + R"(", "license": "BSD-3-Clause"})");
    write(root_ / "report/web/node_modules" / name / "build" / build, "/* " + name + " */");
  }
  std::string error_of(const std::vector<fs::path>& roots) {
    try {
      load_vega_assets(roots);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  fs::path root_;
};

TEST_F(VegaAssetsTest, MissingInstallNamesTheCommand) {
  const std::string message = error_of({root_});
  EXPECT_NE(message.find("npm ci --prefix report/web"), std::string::npos) << message;
}

TEST_F(VegaAssetsTest, MissingBuildFileNamesTheCommand) {
  install("vega", "6.2.0", "vega.min.js");
  const std::string message = error_of({root_});
  EXPECT_NE(message.find("vega-lite/build/vega-lite.min.js"), std::string::npos) << message;
  EXPECT_NE(message.find("npm ci --prefix report/web"), std::string::npos) << message;
}

TEST_F(VegaAssetsTest, VersionOtherThanThePinIsRefused) {
  install("vega", "6.2.0", "vega.min.js");
  install("vega-lite", "6.5.0", "vega-lite.min.js");
  install("vega-embed", "7.1.0", "vega-embed.min.js");
  const std::string message = error_of({root_});
  EXPECT_NE(message.find("vega-lite 6.5.0 is installed but report/web/package.json pins 6.4.1"), std::string::npos) << message;
}

TEST_F(VegaAssetsTest, LoadsThePinnedBuildsInOrder) {
  install("vega", "6.2.0", "vega.min.js");
  install("vega-lite", "6.4.1", "vega-lite.min.js");
  install("vega-embed", "7.1.0", "vega-embed.min.js");
  const VegaAssets a = load_vega_assets({root_ / "elsewhere", root_});
  ASSERT_EQ(a.libraries.size(), 3u);
  EXPECT_EQ(a.libraries[0].name, "vega");
  EXPECT_EQ(a.libraries[1].code, "/* vega-lite */");
  EXPECT_EQ(a.libraries[2].version, "7.1.0");
  EXPECT_EQ(a.libraries[2].license, "BSD-3-Clause");
}

TEST_F(VegaAssetsTest, EnvironmentOverrideMustBeAReportWebFolder) {
  setenv("OFFSIM_REPORT_WEB", (root_ / "nowhere").c_str(), 1);
  EXPECT_NE(error_of({root_}).find("OFFSIM_REPORT_WEB"), std::string::npos);
  unsetenv("OFFSIM_REPORT_WEB");
}

TEST_F(VegaAssetsTest, NoCheckoutSaysWhereItLooked) {
  const std::string message = error_of({root_ / "a", root_ / "b"});
  EXPECT_NE(message.find((root_ / "a" / "report" / "web").string()), std::string::npos) << message;
}

}  // namespace
}  // namespace offsim::report
