#include "offsim/sim/async_pool_allocator.hpp"

#include "offsim/sim/errors.hpp"

namespace offsim::sim {

namespace {
std::uint64_t round_up(std::uint64_t bytes, std::uint64_t granularity) {
  return granularity == 0 ? bytes : (bytes + granularity - 1) / granularity * granularity;
}
constexpr std::uint64_t kMaxRequest = 1ULL << 60;
}  // namespace

AsyncPoolAllocator::AsyncPoolAllocator(Device& device, AllocatorConfig config)
    : device_(&device), config_(std::move(config)) {}

void AsyncPoolAllocator::record(TraceAction action, std::uint64_t addr, std::uint64_t size, StreamId stream) {
  if (trace_ != nullptr) trace_->push_back(TraceEvent{addr, size, stream, time_us_, action, kTraceFlagNone});
}

void AsyncPoolAllocator::set_reserved(std::uint64_t reserved) {
  const auto delta = static_cast<std::int64_t>(reserved) - static_cast<std::int64_t>(reserved_);
  if (delta > 0) {
    stats_.reserved_bytes[kAggregate].increase(delta);
    stats_.reserved_bytes[kLargePool].increase(delta);
  } else if (delta < 0) {
    stats_.reserved_bytes[kAggregate].decrease(-delta);
    stats_.reserved_bytes[kLargePool].decrease(-delta);
  }
  reserved_ = reserved;
}

bool AsyncPoolAllocator::grow_to(std::uint64_t reserved) {
  if (reserved <= reserved_) return true;
  if (!device_->map_physical(reserved - reserved_)) return false;
  set_reserved(reserved);
  return true;
}

std::optional<std::uint64_t> AsyncPoolAllocator::malloc(std::uint64_t size, StreamId stream) {
  if (size == 0) return 0;
  if (size >= kMaxRequest) throw InvalidSizeError("Tried to allocate more than 1EB memory");
  const std::uint64_t granularity = device_->spec().granularity;
  const std::uint64_t need = round_up(allocated_ + size, granularity);
  if (!grow_to(need)) {
    // CUDAMallocAsyncAllocator: on cudaErrorMemoryAllocation, synchronize, trim the pool, retry once.
    empty_cache();
    if (!grow_to(need)) {
      last_oom_ = OomInfo{};
      last_oom_.requested = size;
      last_oom_.rounded = size;
      last_oom_.alloc_size = size;
      last_oom_.stream = stream;
      last_oom_.device = device_->mem_get_info();
      last_oom_.allocated = allocated_;
      last_oom_.reserved = reserved_;
      ++stats_.num_ooms;
      record(TraceAction::kOom, last_oom_.device.free, size, stream);
      return std::nullopt;
    }
  }
  const std::uint64_t ptr = next_ptr_;
  next_ptr_ += round_up(size, 512);
  live_[ptr] = size;
  allocated_ += size;
  for (StatArray* a : {&stats_.allocated_bytes, &stats_.active_bytes, &stats_.requested_bytes}) {
    (*a)[kAggregate].increase(static_cast<std::int64_t>(size));
    (*a)[kLargePool].increase(static_cast<std::int64_t>(size));
  }
  stats_.allocation[kAggregate].increase(1);
  stats_.active[kAggregate].increase(1);
  record(TraceAction::kAlloc, ptr, size, stream);
  return ptr;
}

void AsyncPoolAllocator::free(std::uint64_t ptr) {
  auto it = live_.find(ptr);
  if (it == live_.end()) {
    throw AllocatorUsageError("free: pointer " + std::to_string(ptr) + " is not a live allocation");
  }
  const std::uint64_t size = it->second;
  live_.erase(it);
  allocated_ -= size;
  for (StatArray* a : {&stats_.allocated_bytes, &stats_.active_bytes, &stats_.requested_bytes}) {
    (*a)[kAggregate].decrease(static_cast<std::int64_t>(size));
    (*a)[kLargePool].decrease(static_cast<std::int64_t>(size));
  }
  stats_.allocation[kAggregate].decrease(1);
  stats_.active[kAggregate].decrease(1);
  record(TraceAction::kFreeRequested, ptr, size, 0);
  record(TraceAction::kFreeCompleted, ptr, size, 0);
}

void AsyncPoolAllocator::empty_cache() {
  const std::uint64_t keep = round_up(allocated_, device_->spec().granularity);
  if (keep < reserved_) {
    device_->unmap_physical(reserved_ - keep);
    set_reserved(keep);
  }
}

FragmentationInfo AsyncPoolAllocator::fragmentation() const {
  FragmentationInfo f;
  f.reserved = reserved_;
  f.allocated = allocated_;
  f.free_cached = reserved_ - allocated_;
  f.largest_free_block = f.free_cached;  // no segments: the pool is treated as one free range
  return f;
}

}  // namespace offsim::sim
