// A growable array of trace entries with an append the compiler keeps inline. The simulated allocator
// appends to one on every request when a replay compares its decisions with a recording; a
// std::vector's push_back was compiled out of line there (GCC inlines its reallocation path into it,
// which makes it too large to inline), and that call was ~10% of a replay.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "offsim/sim/trace_event.hpp"

namespace offsim::sim {

class TraceBuffer {
 public:
  __attribute__((always_inline)) void push(std::uint64_t addr, std::uint64_t size, StreamId stream,
                                           std::int64_t time_us, TraceAction action) {
    if (size_ == capacity_) [[unlikely]] grow();
    TraceEvent& e = data_[size_++];
    e.addr = addr;
    e.size = size;
    e.stream = stream;
    e.time_us = time_us;
    e.action = action;
    e.flags = kTraceFlagNone;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  const TraceEvent& operator[](std::size_t i) const { return data_[i]; }
  const TraceEvent* begin() const { return data_.get(); }
  const TraceEvent* end() const { return data_.get() + size_; }

 private:
  [[gnu::noinline]] void grow() {
    const std::size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
    std::unique_ptr<TraceEvent[]> data(new TraceEvent[capacity]);
    std::copy(data_.get(), data_.get() + size_, data.get());
    data_ = std::move(data);
    capacity_ = capacity;
  }

  std::unique_ptr<TraceEvent[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace offsim::sim
