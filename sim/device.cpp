#include "offsim/sim/device.hpp"

#include <iterator>
#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {
// Where simulated device addresses start. Real CUDA device pointers on Linux look like 0x7f...; a
// recognisable base makes simulated snapshots read like real ones.
constexpr std::uint64_t kAddressBase = 0x7f0000000000ULL;

std::uint64_t round_up(std::uint64_t bytes, std::uint64_t granularity) {
  return granularity == 0 ? bytes : (bytes + granularity - 1) / granularity * granularity;
}
}  // namespace

Device::Device(DeviceSpec spec) : spec_(std::move(spec)), next_address_(kAddressBase) {
  if (spec_.total_bytes == 0) throw ConfigError("device \"" + spec_.name + "\": total_bytes must be > 0");
  if (spec_.context_bytes + spec_.other_process_bytes > spec_.total_bytes) {
    throw ConfigError("device \"" + spec_.name + "\": context and other processes exceed the device's capacity");
  }
}

std::uint64_t Device::used_bytes() const {
  return spec_.context_bytes + spec_.other_process_bytes + external_total_ + allocator_total_;
}

MemInfo Device::mem_get_info() const {
  const std::uint64_t used = used_bytes();
  return {used >= spec_.total_bytes ? 0 : spec_.total_bytes - used, spec_.total_bytes};
}

bool Device::range_is_free(std::uint64_t address, std::uint64_t bytes) const {
  if (address + bytes < address) return false;
  auto next = taken_.lower_bound(address);
  if (next != taken_.end() && next->first < address + bytes) return false;
  return next == taken_.begin() || std::prev(next)->second <= address;
}

std::uint64_t Device::room_at(std::uint64_t address) const {
  auto next = taken_.upper_bound(address);
  if (next != taken_.begin() && std::prev(next)->second > address) return 0;
  return next == taken_.end() ? ~std::uint64_t{0} - address : next->first - address;
}

void Device::shrink_address_space(std::uint64_t base, std::uint64_t bytes) {
  auto it = taken_.find(base);
  if (it == taken_.end() || base + bytes > it->second) {
    throw AllocatorUsageError("shrink of an unknown address reservation at " + std::to_string(base));
  }
  it->second = base + bytes;
}

// The address model of a replay (docs/replay_json.md, "Addresses"): a range is handed out at the address
// the caller prefers (the recording's) when no live segment or reservation overlaps it; otherwise, and for
// ranges nobody prefers, above every address handed out so far. A freed range is reused only by a later
// preferred range, so two live segments never alias, whatever the capacity of a what-if.
std::uint64_t Device::take_address(std::uint64_t bytes) {
  const std::uint64_t rounded = round_up(bytes, spec_.granularity);
  std::uint64_t address = next_address_;
  if (preferred_address_ && range_is_free(*preferred_address_, rounded)) address = *preferred_address_;
  preferred_address_.reset();
  // Keep fresh addresses above everything handed out so far, with a gap so that segments never look
  // adjacent (real cudaMalloc results are not contiguous either).
  const std::uint64_t end = address + rounded + spec_.granularity;
  if (end > next_address_) next_address_ = end;
  taken_.emplace(address, address + rounded);
  return address;
}

std::optional<std::uint64_t> Device::malloc(std::uint64_t bytes) {
  const std::uint64_t rounded = round_up(bytes, spec_.granularity);
  if (rounded > mem_get_info().free) return std::nullopt;
  const std::uint64_t ptr = take_address(rounded);
  live_.emplace(ptr, rounded);
  allocator_total_ += rounded;
  return ptr;
}

void Device::free(std::uint64_t ptr) {
  auto it = live_.find(ptr);
  if (it == live_.end()) throw AllocatorUsageError("cudaFree of an unknown device pointer " + std::to_string(ptr));
  allocator_total_ -= it->second;
  live_.erase(it);
  taken_.erase(ptr);
}

std::uint64_t Device::reserve_address_space(std::uint64_t bytes) { return take_address(bytes); }

void Device::release_address_space(std::uint64_t base) { taken_.erase(base); }

bool Device::map_physical(std::uint64_t bytes) {
  if (bytes > mem_get_info().free) return false;
  allocator_total_ += bytes;
  return true;
}

void Device::unmap_physical(std::uint64_t bytes) {
  if (bytes > allocator_total_) throw AllocatorUsageError("unmap of more physical memory than is mapped");
  allocator_total_ -= bytes;
}

bool Device::allocate_external(const std::string& label, std::uint64_t bytes) {
  const std::uint64_t rounded = round_up(bytes, spec_.granularity);
  if (rounded > mem_get_info().free) return false;
  external_[label] += rounded;
  external_total_ += rounded;
  return true;
}

void Device::free_external(const std::string& label) {
  auto it = external_.find(label);
  if (it == external_.end()) throw AllocatorUsageError("free of unknown external allocation \"" + label + "\"");
  external_total_ -= it->second;
  external_.erase(it);
}

}  // namespace offsim::sim
