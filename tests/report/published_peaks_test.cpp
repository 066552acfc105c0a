// Reading published peak grids: the committed Qwen-Image calibration file, and malformed input naming
// the file and the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "offsim/report/published_peaks.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::report {
namespace {

namespace fs = std::filesystem;

TEST(PublishedPeaks, ReadsTheQwenImageCalibrationGrids) {
  const auto points = read_published_grids(fs::path(OFFSIM_SOURCE_DIR) / "traces/published/qwen_image_vae_calibration.json");
  ASSERT_GT(points.size(), 40u);
  // RTX 4090, decode 832x1248: 5.211 GiB as published.
  const auto it = std::find_if(points.begin(), points.end(), [](const PublishedPeak& p) {
    return p.grid == "cuda-rtx4090-grid" && p.op == policies::VaeOp::decode && p.height == 832 && p.width == 1248;
  });
  ASSERT_NE(it, points.end());
  EXPECT_EQ(it->bytes, static_cast<std::uint64_t>(5.211 * 1073741824.0 + 0.5));
  EXPECT_FALSE(it->derived);
  // Points published as OOM carry no peak and are left out.
  for (const PublishedPeak& p : points) EXPECT_GT(p.bytes, 0u);
  EXPECT_TRUE(std::any_of(points.begin(), points.end(), [](const PublishedPeak& p) { return p.derived && p.backend == policies::Backend::rocm; }));
}

TEST(PublishedPeaks, MalformedInputNamesFileAndField) {
  const fs::path path = fs::temp_directory_path() / "offsim-published-bad.json";
  std::ofstream(path) << R"({"format": "offsim-published-measurements/1", "grids": [{"id": "g", "backend": "cuda",
      "points": [{"op": "decode", "height": 512, "width": 512}]}]})";
  try {
    read_published_grids(path);
    FAIL() << "expected ParseError";
  } catch (const ParseError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string()), std::string::npos) << what;
    EXPECT_NE(what.find("grids[0].points[0]"), std::string::npos) << what;
  }
  std::ofstream(path) << R"({"format": "something-else"})";
  EXPECT_THROW(read_published_grids(path), ParseError);
  fs::remove(path);
}

}  // namespace
}  // namespace offsim::report
