#include "sim/support/allocator_diff.hpp"

#include <sstream>

namespace offsim::sim::test {

namespace {

std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

std::string describe(const SegmentInfo& s) {
  std::ostringstream os;
  os << (s.is_expandable ? "expandable " : "") << (s.is_small ? "small" : "large") << " segment " << hex(s.address)
     << " size " << s.total_size << " stream " << s.stream << " allocated " << s.allocated_size << " active "
     << s.active_size << " requested " << s.requested_size << " blocks:";
  for (const BlockInfo& b : s.blocks) {
    os << " [" << hex(b.address) << " " << b.size << " " << to_string(b.state) << " req " << b.requested_size << "]";
  }
  return os.str();
}

}  // namespace

std::vector<std::string> stats_differences(const DeviceStats& a, const DeviceStats& b) {
  std::vector<std::string> out;
  const auto da = a.as_memory_stats_dict();
  const auto db = b.as_memory_stats_dict();
  for (const auto& [key, value] : da) {
    auto it = db.find(key);
    const std::int64_t other = it == db.end() ? 0 : it->second;
    if (value != other) out.push_back(key + ": " + std::to_string(value) + " vs " + std::to_string(other));
  }
  return out;
}

std::string describe(const std::vector<TraceEvent>& events) {
  std::ostringstream os;
  for (const TraceEvent& e : events) {
    os << "    " << to_string(e.action) << " addr=" << hex(e.addr) << " size=" << e.size << " stream=" << e.stream
       << " t=" << e.time_us << "\n";
  }
  if (events.empty()) os << "    (none)\n";
  return os.str();
}

std::string snapshot_difference(const Snapshot& a, const Snapshot& b) {
  if (a.segments.size() != b.segments.size()) {
    std::string out = "segment count " + std::to_string(a.segments.size()) + " vs " + std::to_string(b.segments.size());
    out += "\n  first:";
    for (const SegmentInfo& s : a.segments) out += "\n    " + describe(s);
    out += "\n  second:";
    for (const SegmentInfo& s : b.segments) out += "\n    " + describe(s);
    return out;
  }
  for (std::size_t k = 0; k < a.segments.size(); ++k) {
    if (!(a.segments[k] == b.segments[k])) {
      return "segment " + std::to_string(k) + " differs:\n    " + describe(a.segments[k]) + "\n    " +
             describe(b.segments[k]);
    }
  }
  return {};
}

std::vector<std::string> oom_differences(const OomInfo& a, const OomInfo& b) {
  std::vector<std::string> out;
  auto field = [&out](const char* name, auto x, auto y) {
    if (x != y) out.push_back(std::string(name) + ": " + std::to_string(x) + " vs " + std::to_string(y));
  };
  field("requested", a.requested, b.requested);
  field("rounded", a.rounded, b.rounded);
  field("alloc_size", a.alloc_size, b.alloc_size);
  field("stream", a.stream, b.stream);
  field("device.free", a.device.free, b.device.free);
  field("device.total", a.device.total, b.device.total);
  field("allocated", a.allocated, b.allocated);
  field("reserved", a.reserved, b.reserved);
  field("free_cached_bytes", a.free_cached_bytes, b.free_cached_bytes);
  field("largest_free_cached_block", a.largest_free_cached_block, b.largest_free_cached_block);
  if (a.limit != b.limit) {
    out.push_back("limit: " + (a.limit ? std::to_string(*a.limit) : "none") + " vs " +
                  (b.limit ? std::to_string(*b.limit) : "none"));
  }
  return out;
}

std::vector<std::string> fragmentation_differences(const FragmentationInfo& a, const FragmentationInfo& b) {
  std::vector<std::string> out;
  auto field = [&out](const char* name, std::uint64_t x, std::uint64_t y) {
    if (x != y) out.push_back(std::string(name) + ": " + std::to_string(x) + " vs " + std::to_string(y));
  };
  field("reserved", a.reserved, b.reserved);
  field("allocated", a.allocated, b.allocated);
  field("free_cached", a.free_cached, b.free_cached);
  field("inactive_split", a.inactive_split, b.inactive_split);
  field("largest_free_block", a.largest_free_block, b.largest_free_block);
  field("stranded", a.stranded, b.stranded);
  return out;
}

}  // namespace offsim::sim::test
