#include "sim/support/allocator_invariants.hpp"

#include <cstdint>

namespace offsim::sim::test {

namespace {

std::string at(const SegmentInfo& s) { return "segment at " + std::to_string(s.address); }

}  // namespace

std::vector<std::string> allocator_state_violations(const Snapshot& snapshot, const DeviceStats& stats,
                                                    const Device& device) {
  std::vector<std::string> out;
  // Recount of the stats by pool kind (index = StatType).
  std::int64_t segments[3] = {}, reserved[3] = {}, allocated[3] = {}, allocations[3] = {}, active[3] = {},
               active_bytes[3] = {}, requested[3] = {}, inactive_split[3] = {}, inactive_split_bytes[3] = {};
  std::uint64_t driver_bytes = 0;
  const std::uint64_t granularity = device.spec().granularity;

  std::uint64_t previous_end = 0;
  for (const SegmentInfo& seg : snapshot.segments) {
    if (seg.address < previous_end) out.push_back(at(seg) + " overlaps the previous segment or is out of order");
    previous_end = seg.address + seg.total_size;
    const int kind = seg.is_small ? kSmallPool : kLargePool;

    std::uint64_t cursor = seg.address, alloc_sum = 0, active_sum = 0, requested_sum = 0;
    for (std::size_t k = 0; k < seg.blocks.size(); ++k) {
      const BlockInfo& b = seg.blocks[k];
      if (b.address != cursor) out.push_back(at(seg) + ": block " + std::to_string(k) + " does not start where the previous ends");
      if (b.size == 0) out.push_back(at(seg) + ": empty block " + std::to_string(k));
      cursor = b.address + b.size;
      if (k > 0 && b.state == BlockState::kInactive && seg.blocks[k - 1].state == BlockState::kInactive) {
        out.push_back(at(seg) + ": adjacent inactive blocks " + std::to_string(k - 1) + " and " + std::to_string(k) +
                      " were not merged");
      }
      if (b.state == BlockState::kActiveAllocated) {
        alloc_sum += b.size;
        allocations[kind] += 1;
      }
      if (b.state != BlockState::kInactive) {
        active_sum += b.size;
        requested_sum += b.requested_size;
        active[kind] += 1;
      } else if (!seg.is_expandable && seg.blocks.size() > 1) {
        inactive_split[kind] += 1;
        inactive_split_bytes[kind] += static_cast<std::int64_t>(b.size);
      }
    }
    if (seg.blocks.empty()) out.push_back(at(seg) + " has no blocks");
    if (cursor != seg.address + seg.total_size) out.push_back(at(seg) + ": blocks do not add up to total_size");
    if (alloc_sum != seg.allocated_size) out.push_back(at(seg) + ": allocated_size differs from its blocks");
    if (active_sum != seg.active_size) out.push_back(at(seg) + ": active_size differs from its blocks");
    if (requested_sum != seg.requested_size) out.push_back(at(seg) + ": requested_size differs from its blocks");

    if (!seg.is_expandable) segments[kind] += 1;
    reserved[kind] += static_cast<std::int64_t>(seg.total_size);
    allocated[kind] += static_cast<std::int64_t>(alloc_sum);
    active_bytes[kind] += static_cast<std::int64_t>(active_sum);
    requested[kind] += static_cast<std::int64_t>(requested_sum);
    // cudaMalloc takes whole driver pages; expandable segments map exactly their page-multiple runs.
    driver_bytes += seg.is_expandable ? seg.total_size
                                      : (seg.total_size + granularity - 1) / granularity * granularity;
  }

  auto compare = [&](const char* name, const StatArray& stat, const std::int64_t (&recount)[3]) {
    for (int k : {kSmallPool, kLargePool}) {
      if (stat[k].current != recount[k]) {
        out.push_back(std::string(name) + (k == kSmallPool ? ".small_pool" : ".large_pool") + ".current is " +
                      std::to_string(stat[k].current) + ", the snapshot says " + std::to_string(recount[k]));
      }
    }
    if (stat[kAggregate].current != stat[kSmallPool].current + stat[kLargePool].current) {
      out.push_back(std::string(name) + ".all.current is not small_pool + large_pool");
    }
    for (int k : {kAggregate, kSmallPool, kLargePool}) {
      if (stat[k].peak < stat[k].current) out.push_back(std::string(name) + ": peak below current");
    }
  };
  compare("segment", stats.segment, segments);
  compare("reserved_bytes", stats.reserved_bytes, reserved);
  compare("allocated_bytes", stats.allocated_bytes, allocated);
  compare("allocation", stats.allocation, allocations);
  compare("active", stats.active, active);
  compare("active_bytes", stats.active_bytes, active_bytes);
  compare("requested_bytes", stats.requested_bytes, requested);
  compare("inactive_split", stats.inactive_split, inactive_split);
  compare("inactive_split_bytes", stats.inactive_split_bytes, inactive_split_bytes);

  const std::int64_t all_reserved = stats.reserved_bytes[kAggregate].current;
  const std::int64_t all_active = stats.active_bytes[kAggregate].current;
  const std::int64_t all_allocated = stats.allocated_bytes[kAggregate].current;
  if (!(all_allocated <= all_active && all_active <= all_reserved)) {
    out.push_back("expected allocated <= active <= reserved, got " + std::to_string(all_allocated) + ", " +
                  std::to_string(all_active) + ", " + std::to_string(all_reserved));
  }
  const DeviceSpec& spec = device.spec();
  const auto capacity = static_cast<std::int64_t>(spec.total_bytes - spec.context_bytes - spec.other_process_bytes);
  if (all_reserved > capacity) {
    out.push_back("reserved " + std::to_string(all_reserved) + " exceeds the device's capacity " +
                  std::to_string(capacity));
  }
  if (device.allocator_bytes() != driver_bytes) {
    out.push_back("the driver holds " + std::to_string(device.allocator_bytes()) +
                  " bytes for the allocator, the snapshot's segments need " + std::to_string(driver_bytes));
  }
  return out;
}

}  // namespace offsim::sim::test
