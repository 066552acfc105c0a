#include "offsim/policies/sim_backend.hpp"

namespace offsim::policies {

SimBackend::SimBackend(sim::DeviceSpec device, sim::AllocatorConfig config, const sim::VersionProfile& profile)
    : device_(std::make_unique<sim::Device>(std::move(device))),
      allocator_(std::make_unique<sim::CachingAllocator>(*device_, std::move(config), profile)) {
  allocator_->set_trace_sink(&trace_);
}

std::optional<std::uint64_t> SimBackend::allocate(std::uint64_t bytes, StreamId stream) {
  auto ptr = allocator_->malloc(bytes, stream);
  if (!ptr) {
    const sim::OomInfo& oom = allocator_->last_oom();
    const sim::FragmentationInfo frag = allocator_->fragmentation();
    last_oom_ = OomReport{bytes,          oom.message(device_->spec().platform),
                          oom.device.free, oom.reserved,
                          oom.allocated,  frag.stranded,
                          oom.largest_free_cached_block};
  }
  return ptr;
}

void SimBackend::free(std::uint64_t address) { allocator_->free(address); }
MemInfo SimBackend::mem_get_info() const { return device_->mem_get_info(); }

MemoryStats SimBackend::stats() const {
  const sim::DeviceStats& s = allocator_->stats();
  MemoryStats out;
  out.allocated = static_cast<std::uint64_t>(s.allocated_bytes[sim::kAggregate].current);
  out.reserved = static_cast<std::uint64_t>(s.reserved_bytes[sim::kAggregate].current);
  out.active = static_cast<std::uint64_t>(s.active_bytes[sim::kAggregate].current);
  out.peak_allocated = static_cast<std::uint64_t>(s.allocated_bytes[sim::kAggregate].peak);
  out.peak_reserved = static_cast<std::uint64_t>(s.reserved_bytes[sim::kAggregate].peak);
  out.num_ooms = static_cast<std::uint64_t>(s.num_ooms);
  return out;
}

void SimBackend::empty_cache() { allocator_->empty_cache(); }
void SimBackend::reset_peak_stats() { allocator_->reset_peak_stats(); }
const OomReport& SimBackend::last_oom() const { return last_oom_; }
std::string SimBackend::name() const { return "sim:native (PyTorch " + allocator_->profile().name + ")"; }

}  // namespace offsim::policies
