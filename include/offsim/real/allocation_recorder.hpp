// The CPU allocation recorder: a c10 CPU allocator that forwards to libtorch's default one and, while a
// recording is running, logs every allocation and free (size, address, order, innermost scope).
// Installed once per process with `c10::SetCPUAllocator(&tracker, 100)`: every CPU tensor storage, and the
// oneDNN buffers PyTorch's ideep integration takes through `raw_allocate`, come through it
// (shared/ENVIRONMENT.md). Tensors allocated before a recording starts and freed during it are ignored.
//
// Scopes: `ModuleScope` and `KernelScope` are RAII markers the VAE modules open around each module call and
// each kernel call; they cost one branch when nothing is recording. Scopes are opened from one thread
// (the caller of the forward pass); allocations from libtorch's worker threads are attributed to the scope
// open on that thread at the time, which is the op they run for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "offsim/real/recording.hpp"

namespace offsim::real {

class AllocationRecorder {
 public:
  /// Installs the tracking allocator (idempotent) and returns the process-wide recorder.
  static AllocationRecorder& instance();

  /// Starts a recording. Throws offsim::Error when one is already running.
  void start();
  /// Ends the running recording and returns it. Throws offsim::Error when none is running or when scopes
  /// were left open or closed out of order.
  Recording stop();
  bool recording() const noexcept { return recording_.load(std::memory_order_relaxed); }

  /// Called with a module's scope path each time a ModuleScope opens during a recording (from the thread
  /// running the forward, outside the recorder's lock): how `offsim record` shows its progress. Empty
  /// function: none.
  void set_module_observer(std::function<void(const std::string& module)> observer);

  /// Scope markers (used through ModuleScope / KernelScope). No-ops returning kRootScope when not recording.
  std::uint32_t open_scope(std::string name, std::optional<KernelCall> kernel);
  void close_scope(std::uint32_t scope, std::optional<KernelCall> kernel);

  // Called by the tracking allocator.
  void on_alloc(void* ptr, std::size_t size);
  void on_free(void* ptr);

 private:
  AllocationRecorder() = default;
  std::int64_t now_us() const;

  mutable std::mutex mutex_;
  std::atomic<bool> recording_{false};
  Recording current_;
  std::vector<std::uint32_t> stack_;
  struct Live {
    std::uint64_t size;
    std::uint64_t event;
  };
  std::unordered_map<std::uintptr_t, Live> live_;
  std::chrono::steady_clock::time_point start_time_{};
  std::string error_;
  std::function<void(const std::string&)> module_observer_;

  friend class ModuleScope;
};

/// Marks a module call, e.g. `ModuleScope scope(scope_path());` at the top of a forward.
class ModuleScope {
 public:
  explicit ModuleScope(const std::string& name);
  ~ModuleScope();
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

 private:
  std::uint32_t id_ = kRootScope;
  bool active_ = false;
};

/// Marks one kernel call. Its shapes may be filled in after the op ran (the output's size is known then);
/// they are stored when the scope closes.
class KernelScope {
 public:
  KernelScope(KernelKind kind, std::string op);
  ~KernelScope();
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;

  void set_convolution(ConvolutionCall call) { call_.convolution = std::move(call); }
  void set_attention(FusedAttentionCall call) { call_.attention = call; }

 private:
  KernelCall call_;
  std::uint32_t id_ = kRootScope;
  bool active_ = false;
};

}  // namespace offsim::real
