// The recorded events a replay is looking at. A trace held in memory is looked at whole. A streamed trace
// (an .otrace read by TraceReader) is looked at through a window: it keeps the events from the oldest one
// the replay still needs (the current call's, and segment events waiting for the call they belong to)
// onwards, and reads the source a chunk at a time, so that replaying a trace of any length needs memory for
// a chunk of events rather than for the trace. Internal to sim/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "offsim/sim/trace_event.hpp"
#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

class EventWindow {
 public:
  /// Every event, in memory: the window never moves. `events` must outlive the window.
  explicit EventWindow(const std::vector<TraceEvent>& events)
      : data_(events.data()), end_(events.size()), exhausted_(true) {}
  /// A source read as the replay advances. `source` must outlive the window.
  explicit EventWindow(TraceEventSource& source) : source_(&source) {}

  /// Event k, which must lie in the window: loaded (k < end()) and not dropped (k >= the oldest index
  /// passed to load_through() since). References stay valid until the next load_through().
  const TraceEvent& operator[](std::size_t k) const { return data_[k - base_]; }
  /// One past the last event loaded so far.
  std::size_t end() const { return end_; }
  /// Whether event k (>= end(): the caller checks end() first, and works out `oldest_needed` only then)
  /// exists; loads more of the source, and may drop the events before `oldest_needed` (never the last one
  /// loaded).
  [[gnu::noinline]] bool load_through(std::size_t k, std::size_t oldest_needed) {
    if (exhausted_) return false;
    // Drop what is no longer needed, keeping the last loaded event (a call past the end reads its time).
    const std::size_t keep_from = std::clamp(oldest_needed, base_, end_ == base_ ? base_ : end_ - 1);
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(keep_from - base_));
    base_ = keep_from;
    TraceEvent event;
    while (k >= base_ + buffer_.size() && !exhausted_) {
      for (std::size_t n = 0; n < kChunk; ++n) {
        if (!source_->next(event)) {
          exhausted_ = true;
          break;
        }
        buffer_.push_back(event);
      }
    }
    data_ = buffer_.data();
    end_ = base_ + buffer_.size();
    return k < end_;
  }
  /// True once every event is loaded: end() is then the trace's length.
  bool complete() const { return exhausted_; }
  /// Events a streamed source will hold in all, estimated from how much of it has been read; exact once
  /// complete().
  std::size_t estimated_total() const {
    if (exhausted_ || source_ == nullptr) return end_;
    const double fraction = source_->fraction_read();
    return fraction > 0.0 ? std::max(end_, static_cast<std::size_t>(static_cast<double>(end_) / fraction)) : end_;
  }

 private:
  static constexpr std::size_t kChunk = 1 << 16;

  TraceEventSource* source_ = nullptr;
  std::vector<TraceEvent> buffer_;
  const TraceEvent* data_ = nullptr;
  std::size_t base_ = 0;  // index of data_[0]
  std::size_t end_ = 0;
  bool exhausted_ = false;
};

}  // namespace offsim::sim
