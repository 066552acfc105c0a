#include "offsim/policies/sim_backend.hpp"

#include "offsim/sim/errors.hpp"

namespace offsim::policies {

SimBackend::SimBackend(sim::DeviceSpec device, sim::AllocatorConfig config, const sim::VersionProfile& profile)
    : device_(std::make_unique<sim::Device>(std::move(device))) {
  if (config.backend == sim::AllocatorBackend::kCudaMallocAsync) {
    async_ = std::make_unique<sim::AsyncPoolAllocator>(*device_, std::move(config));
    async_->set_trace_sink(&trace_);
  } else {
    allocator_ = std::make_unique<sim::CachingAllocator>(*device_, std::move(config), profile);
    allocator_->set_trace_sink(&trace_);
  }
}

sim::CachingAllocator& SimBackend::allocator() {
  if (!allocator_) throw ConfigError("the simulated backend is cudaMallocAsync, which has no caching allocator state");
  return *allocator_;
}
const sim::CachingAllocator& SimBackend::allocator() const { return const_cast<SimBackend*>(this)->allocator(); }

std::optional<std::uint64_t> SimBackend::allocate(std::uint64_t bytes, StreamId stream) {
  auto ptr = async_ ? async_->malloc(bytes, stream) : allocator_->malloc(bytes, stream);
  if (!ptr) {
    const sim::OomInfo& oom = async_ ? async_->last_oom() : allocator_->last_oom();
    const sim::FragmentationInfo frag = fragmentation();
    last_oom_ = OomReport{bytes,          oom.message(device_->spec().platform),
                          oom.device.free, oom.reserved,
                          oom.allocated,  frag.stranded,
                          oom.largest_free_cached_block};
  }
  return ptr;
}

void SimBackend::free(std::uint64_t address) {
  if (async_) async_->free(address);
  else allocator_->free(address);
}
MemInfo SimBackend::mem_get_info() const { return device_->mem_get_info(); }

MemoryStats SimBackend::stats() const {
  const sim::DeviceStats& s = async_ ? async_->stats() : allocator_->stats();
  MemoryStats out;
  out.allocated = static_cast<std::uint64_t>(s.allocated_bytes[sim::kAggregate].current);
  out.reserved = static_cast<std::uint64_t>(s.reserved_bytes[sim::kAggregate].current);
  out.active = static_cast<std::uint64_t>(s.active_bytes[sim::kAggregate].current);
  out.peak_allocated = static_cast<std::uint64_t>(s.allocated_bytes[sim::kAggregate].peak);
  out.peak_reserved = static_cast<std::uint64_t>(s.reserved_bytes[sim::kAggregate].peak);
  out.num_ooms = static_cast<std::uint64_t>(s.num_ooms);
  return out;
}

std::optional<sim::DeviceStats> SimBackend::device_stats() const { return async_ ? async_->stats() : allocator_->stats(); }

void SimBackend::empty_cache() {
  if (async_) async_->empty_cache();
  else allocator_->empty_cache();
}
void SimBackend::reset_peak_stats() {
  if (async_) async_->reset_peak_stats();
  else allocator_->reset_peak_stats();
}
const OomReport& SimBackend::last_oom() const { return last_oom_; }

std::string SimBackend::name() const {
  if (async_) return "sim:cudaMallocAsync (approximate pool model: no segments, no fragmentation inside the pool)";
  return "sim:native (PyTorch " + allocator_->profile().name + ")";
}

std::vector<sim::SegmentInfo> SimBackend::segments() const { return async_ ? std::vector<sim::SegmentInfo>{} : allocator_->segments(); }
std::optional<std::uint64_t> SimBackend::memory_limit() const {
  return async_ ? std::nullopt : allocator_->memory_limit();
}

sim::FragmentationInfo SimBackend::fragmentation() const {
  return async_ ? async_->fragmentation() : allocator_->fragmentation();
}
void SimBackend::set_time_us(std::int64_t time_us) {
  if (async_) async_->set_time_us(time_us);
  else allocator_->set_time_us(time_us);
}

}  // namespace offsim::policies
