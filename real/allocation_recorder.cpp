#include "offsim/real/allocation_recorder.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

// Forwards to the allocator that was the CPU default before installation and reports to the recorder.
// Lives for the whole process: tensors allocated through it carry its deleter.
class TrackingCpuAllocator final : public c10::Allocator {
 public:
  explicit TrackingCpuAllocator(c10::Allocator* base) : base_(base) {}

  c10::DataPtr allocate(std::size_t n) const override {
    void* ptr = base_->raw_allocate(n);
    if (ptr != nullptr) AllocationRecorder::instance().on_alloc(ptr, n);
    return {ptr, ptr, &TrackingCpuAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &TrackingCpuAllocator::release; }

  static void release(void* ptr) {
    if (ptr == nullptr) return;
    AllocationRecorder::instance().on_free(ptr);
    base_deleter_(ptr);
  }

  static c10::DeleterFnPtr base_deleter_;

 private:
  c10::Allocator* base_;
};
c10::DeleterFnPtr TrackingCpuAllocator::base_deleter_ = nullptr;

// Priority 100: above libtorch's default (0), so nothing registered later at a lower priority replaces it.
constexpr std::uint8_t kTrackerPriority = 100;

}  // namespace

AllocationRecorder& AllocationRecorder::instance() {
  // Never destroyed: tensors freed during static destruction still call the tracker's deleter.
  static AllocationRecorder* const recorder = new AllocationRecorder();
  static const bool installed = [] {
    c10::Allocator* base = c10::GetDefaultCPUAllocator();
    TrackingCpuAllocator::base_deleter_ = base->raw_deleter();
    if (TrackingCpuAllocator::base_deleter_ == nullptr) {
      throw Error("the default CPU allocator has no raw deleter; cannot wrap it for recording");
    }
    static TrackingCpuAllocator tracker(base);
    c10::SetCPUAllocator(&tracker, kTrackerPriority);
    return true;
  }();
  (void)installed;
  return *recorder;
}

std::int64_t AllocationRecorder::now_us() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_time_)
      .count();
}

void AllocationRecorder::start() {
  std::lock_guard lock(mutex_);
  if (recording_) throw Error("an allocation recording is already running");
  current_ = Recording{};
  current_.scopes.push_back(ScopeRecord{});
  stack_.clear();
  error_.clear();
  live_.clear();
  start_time_ = std::chrono::steady_clock::now();
  recording_ = true;
}

Recording AllocationRecorder::stop() {
  std::lock_guard lock(mutex_);
  if (!recording_) throw Error("no allocation recording is running");
  recording_ = false;
  live_.clear();
  if (error_.empty() && !stack_.empty()) {
    error_ = "allocation recording stopped inside scope '" + current_.scope_path(stack_.back()) + "'";
  }
  if (!error_.empty()) throw Error(error_);
  current_.scopes[kRootScope].close_event = current_.events.size();
  return std::move(current_);
}

std::uint32_t AllocationRecorder::open_scope(std::string name, std::optional<KernelCall> kernel) {
  std::lock_guard lock(mutex_);
  if (!recording_) return kRootScope;
  ScopeRecord record;
  record.parent = stack_.empty() ? kRootScope : stack_.back();
  record.name = std::move(name);
  record.kernel = std::move(kernel);
  record.open_event = current_.events.size();
  const auto id = static_cast<std::uint32_t>(current_.scopes.size());
  current_.scopes.push_back(std::move(record));
  stack_.push_back(id);
  return id;
}

void AllocationRecorder::close_scope(std::uint32_t scope, std::optional<KernelCall> kernel) {
  std::lock_guard lock(mutex_);
  if (!recording_ || scope == kRootScope) return;
  if (stack_.empty() || stack_.back() != scope) {
    // Called from destructors: remember the error and report it from stop().
    if (error_.empty()) error_ = "allocation recorder: scope '" + current_.scope_path(scope) + "' closed out of order";
    return;
  }
  stack_.pop_back();
  ScopeRecord& record = current_.scopes[scope];
  record.close_event = current_.events.size();
  if (kernel) record.kernel = std::move(kernel);
}

void AllocationRecorder::on_alloc(void* ptr, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!recording_) return;
  if (size == 0) {
    // The CUDA caching allocator returns nullptr for 0 bytes without recording anything.
    ++current_.ignored_zero_byte_allocations;
    return;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  RecordedEvent event;
  event.is_alloc = true;
  event.size = size;
  event.addr = addr;
  event.scope = stack_.empty() ? kRootScope : stack_.back();
  event.time_us = now_us();
  live_[addr] = Live{size, current_.events.size()};
  current_.events.push_back(event);
}

void AllocationRecorder::on_free(void* ptr) {
  std::lock_guard lock(mutex_);
  if (!recording_) return;
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const auto it = live_.find(addr);
  if (it == live_.end()) {
    ++current_.ignored_foreign_frees;
    return;
  }
  RecordedEvent event;
  event.is_alloc = false;
  event.size = it->second.size;
  event.addr = addr;
  event.scope = stack_.empty() ? kRootScope : stack_.back();
  event.time_us = now_us();
  event.partner = it->second.event;
  current_.events[it->second.event].partner = current_.events.size();
  current_.events.push_back(event);
  live_.erase(it);
}

void AllocationRecorder::set_module_observer(std::function<void(const std::string& module)> observer) {
  std::lock_guard lock(mutex_);
  module_observer_ = std::move(observer);
}

ModuleScope::ModuleScope(const std::string& name) {
  AllocationRecorder& recorder = AllocationRecorder::instance();
  if (!recorder.recording()) return;
  id_ = recorder.open_scope(name, std::nullopt);
  active_ = id_ != kRootScope;
  // Scopes open on the forward's thread only (see the header), the thread that sets the observer.
  if (active_ && recorder.module_observer_) recorder.module_observer_(name);
}

ModuleScope::~ModuleScope() {
  if (active_) AllocationRecorder::instance().close_scope(id_, std::nullopt);
}

KernelScope::KernelScope(KernelKind kind, std::string op) {
  call_.kind = kind;
  call_.op = std::move(op);
  AllocationRecorder& recorder = AllocationRecorder::instance();
  if (!recorder.recording()) return;
  id_ = recorder.open_scope(call_.op, call_);
  active_ = id_ != kRootScope;
}

KernelScope::~KernelScope() {
  if (active_) AllocationRecorder::instance().close_scope(id_, std::move(call_));
}

}  // namespace offsim::real
