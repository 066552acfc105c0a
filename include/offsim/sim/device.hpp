// The GPU as its driver reports it: capacity from cudaMemGetInfo (44.98 GiB on a 48 GB W7900, 31.35 GiB
// on a 32 GB RTX 5090), the context, memory outside PyTorch's allocator and other processes. It answers
// cudaMalloc / cudaFree / mem_get_info for the simulated allocator (spec section 14).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace offsim::sim {

enum class Platform : std::uint8_t { kCuda, kRocm };

struct DeviceSpec {
  std::string name = "simulated GPU";
  Platform platform = Platform::kCuda;
  std::uint64_t total_bytes = 0;       // cudaMemGetInfo total, i.e. what the driver reports
  std::uint64_t total_global_mem = 0;  // device properties; 0 means "same as total_bytes"
  std::uint64_t context_bytes = 0;     // CUDA/HIP context created at first use
  std::uint64_t other_process_bytes = 0;
  std::uint64_t granularity = 2 * 1024 * 1024;  // driver allocation granularity

  std::uint64_t global_mem() const { return total_global_mem != 0 ? total_global_mem : total_bytes; }
};

struct MemInfo {
  std::uint64_t free = 0;
  std::uint64_t total = 0;
};

class Device {
 public:
  explicit Device(DeviceSpec spec);

  const DeviceSpec& spec() const { return spec_; }

  /// torch.cuda.mem_get_info(): free counts every byte used by any context on the device.
  MemInfo mem_get_info() const;

  /// cudaMalloc: bytes are rounded up to the granularity; nullopt when they do not fit.
  std::optional<std::uint64_t> malloc(std::uint64_t bytes);
  /// cudaFree of a pointer malloc returned. Throws AllocatorUsageError for an unknown pointer.
  void free(std::uint64_t ptr);

  /// Expandable segments: reserve address space (no physical memory), then map/unmap physical pages.
  std::uint64_t reserve_address_space(std::uint64_t bytes);
  void release_address_space(std::uint64_t base);
  bool map_physical(std::uint64_t bytes);
  void unmap_physical(std::uint64_t bytes);

  /// Memory outside the allocator that appears over time (kernel modules loaded on first use, cuDNN and
  /// cuBLAS handles, NCCL buffers). Returns false if it does not fit (the real driver would fail).
  bool allocate_external(const std::string& label, std::uint64_t bytes);
  void free_external(const std::string& label);
  std::uint64_t external_bytes() const { return external_total_; }

  void set_other_process_bytes(std::uint64_t bytes) { spec_.other_process_bytes = bytes; }

  /// Replay: the next cudaMalloc / address reservation returns this address when it succeeds and the
  /// range is free, so that simulated segments carry the recorded addresses. A range that overlaps a live
  /// segment or reserved address space (a what-if whose state differs from the recording's) is never
  /// handed out twice: the segment then gets a fresh address instead (see take_address).
  void prefer_next_address(std::uint64_t address) { preferred_address_ = address; }
  void clear_preferred_address() { preferred_address_.reset(); }
  const std::optional<std::uint64_t>& preferred_address() const { return preferred_address_; }
  /// Bytes of free address space from `address` up to the next live segment or reservation (0 when a
  /// segment or reservation holds `address`; unbounded above the last one).
  std::uint64_t room_at(std::uint64_t address) const;
  /// Expandable segments: a reservation made at `base` now ends `bytes` after it (its unmapped tail was
  /// given up, see CachingAllocator's find_expandable_block).
  void shrink_address_space(std::uint64_t base, std::uint64_t bytes);

  /// Bytes held through malloc and map_physical (what the allocator has reserved).
  std::uint64_t allocator_bytes() const { return allocator_total_; }
  /// Everything this process holds on the device: context, allocator, memory outside the allocator (what
  /// NVML reports as the process's used memory; other processes are not in it).
  std::uint64_t process_bytes() const { return spec_.context_bytes + external_total_ + allocator_total_; }

 private:
  std::uint64_t used_bytes() const;
  std::uint64_t take_address(std::uint64_t bytes);
  bool range_is_free(std::uint64_t address, std::uint64_t bytes) const;

  DeviceSpec spec_;
  std::map<std::uint64_t, std::uint64_t> live_;  // ptr -> rounded bytes
  std::map<std::uint64_t, std::uint64_t> taken_;  // address ranges in use (segments, reservations): start -> end
  std::map<std::string, std::uint64_t> external_;
  std::uint64_t external_total_ = 0;
  std::uint64_t allocator_total_ = 0;
  std::uint64_t next_address_;
  std::optional<std::uint64_t> preferred_address_;
};

}  // namespace offsim::sim
