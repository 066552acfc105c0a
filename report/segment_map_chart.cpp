#include "offsim/report/segment_map_chart.hpp"

#include <algorithm>
#include <vector>

#include "chart_util.hpp"
#include "offsim/sim/bytes.hpp"

namespace offsim::report {

namespace {

using nlohmann::json;
using namespace detail;

constexpr int kWidth = 1040;
constexpr std::uint64_t kMaxRows = 32;

enum class Kind { kAllocated, kPendingFree, kStranded, kReleasable };
constexpr const char* kKindNames[] = {"allocated", "pending free", "inactive, split (stranded)", "free segment (releasable)"};
constexpr const char* kKindColours[] = {"#3b6fb6", "#9b59b6", "#e8702a", "#cfd5df"};

struct Block {
  std::uint64_t address, size, requested;
  Kind kind;
};
struct Segment {
  std::uint64_t address, size;
  bool small;
  std::vector<Block> blocks;
};

std::vector<Segment> read_segments(const json& segments) {
  std::vector<Segment> out;
  for (const json& s : segments) {
    Segment seg{bytes_or(s["address"]), bytes_or(s["total_size"]), s.value("segment_type", "large") == "small", {}};
    bool live = false;
    for (const json& b : s["blocks"]) live = live || b.value("state", "") != "inactive";
    for (const json& b : s["blocks"]) {
      const std::string state = b.value("state", "");
      const Kind kind = state == "active_allocated"      ? Kind::kAllocated
                        : state == "active_pending_free" ? Kind::kPendingFree
                        : live                           ? Kind::kStranded
                                                         : Kind::kReleasable;
      seg.blocks.push_back({bytes_or(b["address"]), bytes_or(b["size"]), bytes_or(b["requested_size"]), kind});
    }
    out.push_back(std::move(seg));
  }
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.address < b.address; });
  return out;
}

// Row size: the smallest power-of-two number of MiB (at least 2) that fits everything in kMaxRows rows.
std::uint64_t row_bytes_for(std::uint64_t total) {
  std::uint64_t row = 2 * MiB;
  while (row * kMaxRows < total) row *= 2;
  return row;
}

// Splits [offset, offset + size) at row boundaries: (row, begin MiB, end MiB) pieces.
template <class F>
void for_each_piece(std::uint64_t offset, std::uint64_t size, std::uint64_t row_bytes, F&& f) {
  while (size > 0) {
    const std::uint64_t row = offset / row_bytes;
    const std::uint64_t in_row = offset - row * row_bytes;
    const std::uint64_t take = std::min(size, row_bytes - in_row);
    f(row, mib(in_row), mib(in_row + take));
    offset += take;
    size -= take;
  }
}

}  // namespace

SegmentMapSummary summarize_segments(const json& segments) {
  SegmentMapSummary s;
  for (const Segment& seg : read_segments(segments)) {
    ++s.segments;
    s.reserved += seg.size;
    for (const Block& b : seg.blocks) {
      switch (b.kind) {
        case Kind::kAllocated: s.allocated += b.size; break;
        case Kind::kPendingFree: s.pending_free += b.size; break;
        case Kind::kStranded: s.stranded += b.size; break;
        case Kind::kReleasable: s.releasable += b.size; break;
      }
      if (b.kind == Kind::kStranded || b.kind == Kind::kReleasable) s.largest_free_block = std::max(s.largest_free_block, b.size);
    }
  }
  return s;
}

json segment_map_chart(const json& segments_json, const std::string& title) {
  const std::vector<Segment> segments = read_segments(segments_json);
  const SegmentMapSummary summary = summarize_segments(segments_json);
  const std::uint64_t row_bytes = row_bytes_for(summary.reserved);

  // Blocks as rects. A run of whole segments that each hold one block of the same kind (weights: one
  // tensor per segment) is drawn as one rect per row with a summary tooltip: it looks the same and keeps
  // the file small; the segment boundaries inside it are still drawn as ticks.
  json rects = json::array();
  json ticks = json::array();
  auto add_rect = [&](std::uint64_t offset, std::uint64_t size, Kind kind, const std::string& info) {
    for_each_piece(offset, size, row_bytes, [&](std::uint64_t row, double x0, double x1) {
      rects.push_back({{"r", row}, {"x0", x0}, {"x1", x1}, {"k", kKindNames[static_cast<int>(kind)]}, {"i", info}});
    });
  };
  std::uint64_t offset = 0;
  std::size_t i = 0;
  while (i < segments.size()) {
    const Segment& seg = segments[i];
    const bool whole = seg.blocks.size() == 1;
    std::size_t j = i + 1;
    std::uint64_t run_bytes = seg.size;
    if (whole) {
      while (j < segments.size() && segments[j].blocks.size() == 1 && segments[j].blocks[0].kind == seg.blocks[0].kind) {
        run_bytes += segments[j].size;
        ++j;
      }
    }
    if (whole && j - i > 1) {
      const Kind kind = seg.blocks[0].kind;
      std::uint64_t o = offset;
      for (std::size_t k = i; k < j; ++k) {
        for_each_piece(o, 1, row_bytes, [&](std::uint64_t row, double x0, double) { ticks.push_back({{"r", row}, {"x", x0}}); });
        o += segments[k].size;
      }
      add_rect(offset, run_bytes, kind,
               std::to_string(j - i) + " whole segments, each one " + kKindNames[static_cast<int>(kind)] + " block: " +
                   bytes_with_exact(run_bytes) + " from " + hex_address(seg.address) + " to " +
                   hex_address(segments[j - 1].address + segments[j - 1].size));
      offset += run_bytes;
      i = j;
      continue;
    }
    for_each_piece(offset, 1, row_bytes, [&](std::uint64_t row, double x0, double) { ticks.push_back({{"r", row}, {"x", x0}}); });
    const std::string where = std::string(seg.small ? "small" : "large") + " segment " + hex_address(seg.address) + " of " +
                              bytes_with_exact(seg.size) + " (" + std::to_string(seg.blocks.size()) + " blocks)";
    for (const Block& b : seg.blocks) {
      std::string info = std::string(kKindNames[static_cast<int>(b.kind)]) + " block " + hex_address(b.address) + ": " +
                         bytes_with_exact(b.size);
      if (b.kind == Kind::kAllocated || b.kind == Kind::kPendingFree) info += ", requested " + bytes_with_exact(b.requested);
      add_rect(offset + (b.address - seg.address), b.size, b.kind, info + " — in " + where);
    }
    offset += seg.size;
    ++i;
  }

  const std::uint64_t rows = std::max<std::uint64_t>(1, (summary.reserved + row_bytes - 1) / row_bytes);
  const double row_mib = mib(row_bytes);
  const json x = {{"field", "x0"}, {"type", "quantitative"}, {"scale", {{"domain", {0, row_mib}}, {"nice", false}}},
                  {"axis", {{"title", "MiB within the row (each row is " + format_bytes(row_bytes) +
                                           " of reserved memory; segments in address order, end to end)"}}}};
  const json y = {{"field", "r"}, {"type", "ordinal"},
                  {"axis", {{"title", "offset (GiB)"}, {"labelExpr", "format(datum.value * " + std::to_string(row_mib / 1024.0) + ", '.2f')"}}}};
  json kinds_domain = json::array(), kinds_range = json::array();
  for (int k = 0; k < 4; ++k) {
    kinds_domain.push_back(kKindNames[k]);
    kinds_range.push_back(kKindColours[k]);
  }
  const std::string subtitle =
      std::to_string(summary.segments) + " segments, reserved " + format_bytes(summary.reserved) + ": allocated " +
      format_bytes(summary.allocated) + ", stranded " + format_bytes(summary.stranded) + ", releasable " +
      format_bytes(summary.releasable) + (summary.pending_free ? ", pending free " + format_bytes(summary.pending_free) : "") +
      "; largest free block " + format_bytes(summary.largest_free_block);
  return {{"title", {{"text", title}, {"subtitle", subtitle}, {"anchor", "start"}}},
          {"width", kWidth},
          {"height", {{"step", rows > 16 ? 12 : 18}}},
          {"layer", json::array({
                        {{"data", {{"values", rects}}},
                         {"mark", {{"type", "rect"}, {"stroke", "#ffffff"}, {"strokeWidth", 0.3}}},
                         {"encoding", {{"x", x}, {"x2", {{"field", "x1"}}}, {"y", y},
                                       {"color", {{"field", "k"}, {"type", "nominal"}, {"title", "block"},
                                                  {"scale", {{"domain", kinds_domain}, {"range", kinds_range}}}}},
                                       {"tooltip", json::array({{{"field", "i"}, {"title", "block"}}})}}}},
                        {{"data", {{"values", ticks}}},
                         {"mark", {{"type", "tick"}, {"orient", "vertical"}, {"color", "#1d2330"}, {"thickness", 1}}},
                         {"encoding", {{"x", {{"field", "x"}, {"type", "quantitative"}}}, {"y", y}}}},
                    })},
          {"config", {{"legend", {{"orient", "top"}}}, {"title", {{"subtitleFontSize", 11}}}}}};
}

}  // namespace offsim::report
