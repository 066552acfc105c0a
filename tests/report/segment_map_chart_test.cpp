// The segment map: the block classes that make fragmentation visible (stranded vs releasable), rows that
// tile the reserved bytes exactly, and whole-segment runs drawn as one rect.
#include <gtest/gtest.h>

#include "offsim/report/segment_map_chart.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {
namespace {

using nlohmann::json;

json block(std::uint64_t address, std::uint64_t size, const char* state) {
  return {{"address", address}, {"size", size}, {"requested_size", state == std::string("inactive") ? 0 : size}, {"state", state}};
}

json segment(std::uint64_t address, std::uint64_t size, json blocks) {
  return {{"address", address}, {"total_size", size}, {"segment_type", "large"}, {"blocks", std::move(blocks)}};
}

// Two weight segments, one segment split between a live block and free space, one whole free segment.
json example() {
  const std::uint64_t base = 0x7f0000000000;
  return json::array({
      segment(base, 20 * MiB, json::array({block(base, 20 * MiB, "active_allocated")})),
      segment(base + 20 * MiB, 20 * MiB, json::array({block(base + 20 * MiB, 20 * MiB, "active_allocated")})),
      segment(base + 64 * MiB, 40 * MiB,
              json::array({block(base + 64 * MiB, 10 * MiB, "active_allocated"), block(base + 74 * MiB, 30 * MiB, "inactive")})),
      segment(base + 128 * MiB, 6 * MiB, json::array({block(base + 128 * MiB, 6 * MiB, "inactive")})),
  });
}

std::uint64_t drawn_bytes(const json& spec) {
  std::uint64_t sum = 0;
  for (const json& r : spec["layer"][0]["data"]["values"]) sum += r["o1"].get<std::uint64_t>() - r["o0"].get<std::uint64_t>();
  return sum;
}

// The text of each drawn run, looked up by the rect pieces.
const json& runs(const json& spec) { return spec["layer"][0]["transform"][0]["from"]["data"]["values"]; }

TEST(SegmentMap, SplitFreeSpaceIsStrandedAndWholeFreeSegmentsAreReleasable) {
  const SegmentMapSummary s = summarize_segments(example());
  EXPECT_EQ(s.segments, 4u);
  EXPECT_EQ(s.reserved, 86 * MiB);
  EXPECT_EQ(s.allocated, 50 * MiB);
  EXPECT_EQ(s.stranded, 30 * MiB);
  EXPECT_EQ(s.releasable, 6 * MiB);
  EXPECT_EQ(s.largest_free_block, 30 * MiB);
}

TEST(SegmentMap, RectsTileTheReservedBytesAcrossRows) {
  const json spec = segment_map_chart(example(), "t");
  EXPECT_EQ(drawn_bytes(spec), 86 * MiB);
  // 86 MiB in at most 32 rows: rows of 4 MiB, so pieces never exceed a row.
  for (const json& r : spec["layer"][0]["data"]["values"]) EXPECT_LE(r["o1"].get<std::uint64_t>(), 4 * MiB);
  EXPECT_EQ(spec["layer"][0]["encoding"]["x"]["scale"]["domain"][1], 4.0);
  // The two weight segments are one run; the split segment two (allocated, stranded); the free one one.
  ASSERT_EQ(runs(spec).size(), 4u);
  EXPECT_EQ(runs(spec)[0]["k"], 0);
  EXPECT_EQ(runs(spec)[2]["k"], 2);
  EXPECT_EQ(runs(spec)[3]["k"], 3);
  // One boundary tick per segment.
  EXPECT_EQ(spec["layer"][1]["data"]["values"].size(), 4u);
}

TEST(SegmentMap, RunsOfWholeSegmentsBecomeOneRectPerRow) {
  json many = json::array();
  const std::uint64_t base = 0x100000000;
  for (int i = 0; i < 100; ++i) {
    many.push_back(segment(base + i * 2 * MiB, 2 * MiB, json::array({block(base + i * 2 * MiB, 2 * MiB, "active_allocated")})));
  }
  const json spec = segment_map_chart(many, "weights");
  const json& rects = spec["layer"][0]["data"]["values"];
  // 200 MiB in rows of 8 MiB: one rect piece per row, not one per segment.
  EXPECT_EQ(rects.size(), 25u);
  ASSERT_EQ(runs(spec).size(), 1u);
  EXPECT_NE(runs(spec)[0]["i"].get<std::string>().find("100 whole segments"), std::string::npos);
  EXPECT_EQ(spec["layer"][1]["data"]["values"].size(), 100u);
  EXPECT_EQ(drawn_bytes(spec), 200 * MiB);
}

TEST(SegmentMap, TooltipsCarryExactBytes) {
  const json spec = segment_map_chart(example(), "t");
  bool found = false;
  for (const json& r : runs(spec)) found = found || r["i"].get<std::string>().find("(31457280 bytes)") != std::string::npos;
  EXPECT_TRUE(found);
  std::string subtitle;  // lines that fit the chart's width
  for (const json& line : spec["title"]["subtitle"]) subtitle += line.get<std::string>() + " ";
  EXPECT_NE(subtitle.find("stranded 30.00 MiB"), std::string::npos);
}

}  // namespace
}  // namespace offsim::report
