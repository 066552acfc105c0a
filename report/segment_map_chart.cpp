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

// Adjacent blocks of one kind drawn as one rect: tensor-level detail is what memory_viz is for (export
// the run with --export-snapshot); the map shows where the free space is, and keeps the file small.
struct Run {
  Kind kind;
  std::uint64_t offset = 0;  // in the end-to-end layout
  std::uint64_t bytes = 0;
  std::uint64_t blocks = 0;
  std::uint64_t requested = 0;
  std::uint64_t smallest = 0, largest = 0;
  std::size_t segment = 0;    // first segment
  std::size_t segments = 1;   // > 1: consecutive whole segments, each entirely of this kind
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

std::vector<Run> runs_of(const std::vector<Segment>& segments) {
  std::vector<Run> runs;
  std::uint64_t offset = 0;
  for (std::size_t g = 0; g < segments.size(); ++g) {
    const Segment& seg = segments[g];
    const std::size_t first = runs.size();
    for (const Block& b : seg.blocks) {
      const std::uint64_t at = offset + (b.address - seg.address);
      if (runs.size() > first && runs.back().kind == b.kind && runs.back().offset + runs.back().bytes == at) {
        Run& r = runs.back();
        r.bytes += b.size;
        r.blocks += 1;
        r.requested += b.requested;
        r.smallest = std::min(r.smallest, b.size);
        r.largest = std::max(r.largest, b.size);
      } else {
        runs.push_back({b.kind, at, b.size, 1, b.requested, b.size, b.size, g, 1});
      }
    }
    // A segment that is one run of the kind of the previous whole segment joins it.
    if (runs.size() == first + 1 && first > 0 && runs[first - 1].kind == runs[first].kind &&
        runs[first - 1].segment + runs[first - 1].segments == g && runs[first].bytes == seg.size &&
        runs[first - 1].offset + runs[first - 1].bytes == runs[first].offset &&
        (runs[first - 1].segments > 1 || runs[first - 1].bytes == segments[runs[first - 1].segment].size)) {
      Run& prev = runs[first - 1];
      prev.bytes += runs[first].bytes;
      prev.blocks += runs[first].blocks;
      prev.requested += runs[first].requested;
      prev.smallest = std::min(prev.smallest, runs[first].smallest);
      prev.largest = std::max(prev.largest, runs[first].largest);
      prev.segments += 1;
      runs.pop_back();
    }
    offset += seg.size;
  }
  return runs;
}

// Row size: the smallest power-of-two number of MiB (at least 2) that fits everything in kMaxRows rows.
std::uint64_t row_bytes_for(std::uint64_t total) {
  std::uint64_t row = 2 * MiB;
  while (row * kMaxRows < total) row *= 2;
  return row;
}

// Splits [offset, offset + size) at row boundaries into (row, begin, end) pieces, in bytes within the row.
template <class F>
void for_each_piece(std::uint64_t offset, std::uint64_t size, std::uint64_t row_bytes, F&& f) {
  while (size > 0) {
    const std::uint64_t row = offset / row_bytes;
    const std::uint64_t in_row = offset - row * row_bytes;
    const std::uint64_t take = std::min(size, row_bytes - in_row);
    f(row, in_row, in_row + take);
    offset += take;
    size -= take;
  }
}

std::string describe(const Run& r, const std::vector<Segment>& segments, std::uint64_t segment_offset) {
  const std::string kind = kKindNames[static_cast<int>(r.kind)];
  if (r.segments > 1) {
    return std::to_string(r.segments) + " whole segments, all " + kind + " (" + std::to_string(r.blocks) + " blocks): " +
           bytes_with_exact(r.bytes);
  }
  std::string out = std::to_string(r.blocks) + " " + kind + (r.blocks == 1 ? " block: " : " blocks: ") + bytes_with_exact(r.bytes);
  if (r.blocks > 1) out += ", each " + format_bytes(r.smallest) + " to " + format_bytes(r.largest);
  if (r.kind == Kind::kAllocated || r.kind == Kind::kPendingFree) out += ", requested " + bytes_with_exact(r.requested);
  const Segment& seg = segments[r.segment];
  return out + ", at +" + format_bytes(r.offset - segment_offset) + " in segment " + hex_address(seg.address);
}

std::string describe_segments(const Run& r, const std::vector<Segment>& segments) {
  const Segment& seg = segments[r.segment];
  if (r.segments > 1) {
    const Segment& last = segments[r.segment + r.segments - 1];
    return std::string(seg.small ? "small" : "large") + " segments " + hex_address(seg.address) + " to " + hex_address(last.address + last.size);
  }
  return std::string(seg.small ? "small" : "large") + " segment " + hex_address(seg.address) + ": " + bytes_with_exact(seg.size) + ", " +
         std::to_string(seg.blocks.size()) + (seg.blocks.size() == 1 ? " block" : " blocks");
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

json segments_json(const std::vector<sim::SegmentInfo>& segments) {
  json out = json::array();
  for (const sim::SegmentInfo& s : segments) {
    json blocks = json::array();
    for (const sim::BlockInfo& b : s.blocks) {
      blocks.push_back({{"address", b.address}, {"size", b.size}, {"requested_size", b.requested_size}, {"state", sim::to_string(b.state)}});
    }
    out.push_back({{"address", s.address}, {"total_size", s.total_size}, {"segment_type", s.is_small ? "small" : "large"}, {"blocks", blocks}});
  }
  return out;
}

json segment_map_chart(const json& segments_json, const std::string& title) {
  const std::vector<Segment> segments = read_segments(segments_json);
  const SegmentMapSummary summary = summarize_segments(segments_json);
  const std::uint64_t row_bytes = row_bytes_for(summary.reserved);
  const std::vector<Run> runs = runs_of(segments);

  // Pieces of rects (row, begin, end in bytes within the row, run id); each run's and each segment's text
  // once, looked up by the pieces.
  json pieces = json::array(), run_info = json::array(), segment_info = json::array(), ticks = json::array();
  std::vector<std::uint64_t> segment_offset(segments.size() + 1, 0);
  for (std::size_t g = 0; g < segments.size(); ++g) segment_offset[g + 1] = segment_offset[g] + segments[g].size;
  for (std::size_t g = 0; g < segments.size(); ++g) {
    const std::uint64_t row = segment_offset[g] / row_bytes;
    ticks.push_back({{"r", row}, {"o", segment_offset[g] - row * row_bytes}});
  }
  for (std::size_t u = 0; u < runs.size(); ++u) {
    const Run& r = runs[u];
    run_info.push_back({{"u", u}, {"k", static_cast<int>(r.kind)}, {"g", r.segment}, {"i", describe(r, segments, segment_offset[r.segment])}});
    if (u == 0 || runs[u - 1].segment != r.segment) segment_info.push_back({{"g", r.segment}, {"s", describe_segments(r, segments)}});
    for_each_piece(r.offset, r.bytes, row_bytes, [&](std::uint64_t row, std::uint64_t b, std::uint64_t e) {
      pieces.push_back({{"r", row}, {"o0", b}, {"o1", e}, {"u", u}});
    });
  }

  const double row_mib = mib(row_bytes);
  json x_axis = spaced_ticks(kWidth);
  x_axis["title"] = "MiB within the row (each row is " + format_bytes(row_bytes) + " of reserved memory; segments in address order, end to end)";
  const json x = {{"field", "x0"}, {"type", "quantitative"}, {"scale", {{"domain", {0, row_mib}}, {"nice", false}}}, {"axis", x_axis}};
  // Row labels: the offset where the row starts, in GiB, or in MiB for small maps.
  const bool in_gib = row_bytes >= 256 * MiB;
  const json y = {{"field", "r"}, {"type", "ordinal"},
                  {"axis", {{"title", in_gib ? "offset (GiB)" : "offset (MiB)"},
                            {"labelExpr", "format(datum.value * " + std::to_string(in_gib ? row_mib / 1024.0 : row_mib) + (in_gib ? ", '.2f')" : ", 'd')")}}}};
  json kinds = json::array(), colours = json::array();
  for (int k = 0; k < 4; ++k) {
    kinds.push_back(kKindNames[k]);
    colours.push_back(kKindColours[k]);
  }
  const std::string subtitle =
      std::to_string(summary.segments) + " segments, reserved " + format_bytes(summary.reserved) + ": allocated " +
      format_bytes(summary.allocated) + ", stranded " + format_bytes(summary.stranded) + ", releasable " +
      format_bytes(summary.releasable) + (summary.pending_free ? ", pending free " + format_bytes(summary.pending_free) : "") +
      "; largest free block " + format_bytes(summary.largest_free_block);
  const std::uint64_t rows = std::max<std::uint64_t>(1, (summary.reserved + row_bytes - 1) / row_bytes);
  return {{"title", {{"text", wrap_to_width(title, kWidth, 13, true)}, {"subtitle", wrap_to_width(subtitle, kWidth, 11)}, {"anchor", "start"}}},
          {"width", kWidth},
          {"height", {{"step", rows > 16 ? 12 : 18}}},
          {"layer", json::array({
                        {{"data", {{"values", pieces}}},
                         {"transform", json::array({
                                           {{"lookup", "u"}, {"from", {{"data", {{"values", run_info}}}, {"key", "u"}, {"fields", {"k", "g", "i"}}}}},
                                           {{"lookup", "g"}, {"from", {{"data", {{"values", segment_info}}}, {"key", "g"}, {"fields", {"s"}}}}},
                                           {{"calculate", "datum.o0 / 1048576"}, {"as", "x0"}},
                                           {{"calculate", "datum.o1 / 1048576"}, {"as", "x1"}},
                                           {{"calculate", json(kinds).dump() + "[datum.k]"}, {"as", "block"}},
                                       })},
                         {"mark", {{"type", "rect"}, {"stroke", "#ffffff"}, {"strokeWidth", 0.3}}},
                         {"encoding", {{"x", x}, {"x2", {{"field", "x1"}}}, {"y", y},
                                       {"color", {{"field", "block"}, {"type", "nominal"}, {"title", "block"},
                                                  {"scale", {{"domain", kinds}, {"range", colours}}}}},
                                       {"tooltip", json::array({{{"field", "i"}, {"title", "blocks"}}, {{"field", "s"}, {"title", "in"}}})}}}},
                        {{"data", {{"values", ticks}}},
                         {"transform", json::array({{{"calculate", "datum.o / 1048576"}, {"as", "x"}}})},
                         {"mark", {{"type", "tick"}, {"orient", "vertical"}, {"color", "#1d2330"}, {"thickness", 1}}},
                         {"encoding", {{"x", {{"field", "x"}, {"type", "quantitative"}}}, {"y", y}}}},
                    })},
          {"config", {{"legend", {{"orient", "top"}}}, {"title", {{"subtitleFontSize", 11}, {"limit", kWidth}}}}}};
}

}  // namespace offsim::report
