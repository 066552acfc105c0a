#include "offsim/sim/device_stats.hpp"

namespace offsim::sim {

namespace {

template <typename F>
void for_each_array(DeviceStats& s, F&& f) {
  for (StatArray* a : {&s.allocation, &s.segment, &s.active, &s.inactive_split, &s.allocated_bytes,
                       &s.reserved_bytes, &s.active_bytes, &s.inactive_split_bytes, &s.requested_bytes}) {
    for (Stat& stat : *a) f(stat);
  }
  f(s.oversize_allocations);
  f(s.oversize_segments);
}

}  // namespace

void DeviceStats::reset_peak() {
  for_each_array(*this, [](Stat& s) { s.reset_peak(); });
}

void DeviceStats::reset_accumulated() {
  for_each_array(*this, [](Stat& s) { s.reset_accumulated(); });
  num_alloc_retries = num_ooms = num_sync_all_streams = num_device_alloc = num_device_free = 0;
}

std::map<std::string, std::int64_t> DeviceStats::as_memory_stats_dict() const {
  // Key layout of torch.cuda.memory_stats() (torch/cuda/memory.py: _recurse_add_to_result flattens the
  // nested dict that torch._C._cuda_memoryStats returns).
  std::map<std::string, std::int64_t> out;
  const std::pair<const char*, const StatArray*> arrays[] = {
      {"allocation", &allocation},         {"segment", &segment},
      {"active", &active},                 {"inactive_split", &inactive_split},
      {"allocated_bytes", &allocated_bytes}, {"reserved_bytes", &reserved_bytes},
      {"active_bytes", &active_bytes},     {"inactive_split_bytes", &inactive_split_bytes},
      {"requested_bytes", &requested_bytes}};
  const char* pools[] = {"all", "small_pool", "large_pool"};
  for (const auto& [name, array] : arrays) {
    for (int p = 0; p < 3; ++p) {
      const std::string prefix = std::string(name) + "." + pools[p] + ".";
      out[prefix + "current"] = (*array)[p].current;
      out[prefix + "peak"] = (*array)[p].peak;
      out[prefix + "allocated"] = (*array)[p].allocated;
      out[prefix + "freed"] = (*array)[p].freed;
    }
  }
  for (const auto& [name, stat] : {std::pair{"oversize_allocations", &oversize_allocations},
                                   std::pair{"oversize_segments", &oversize_segments}}) {
    const std::string prefix = std::string(name) + ".";
    out[prefix + "current"] = stat->current;
    out[prefix + "peak"] = stat->peak;
    out[prefix + "allocated"] = stat->allocated;
    out[prefix + "freed"] = stat->freed;
  }
  out["num_alloc_retries"] = num_alloc_retries;
  out["num_ooms"] = num_ooms;
  out["num_sync_all_streams"] = num_sync_all_streams;
  out["num_device_alloc"] = num_device_alloc;
  out["num_device_free"] = num_device_free;
  out["max_split_size"] = max_split_size;
  return out;
}

}  // namespace offsim::sim
