// A trace read one event at a time: what every trace writer consumes, so that converting a trace of any
// length never needs all of its events in memory. TraceReader (trace_file.hpp) streams offsim's own
// format; TraceVectorSource walks a Trace held in memory.
#pragma once

#include <cstddef>
#include <vector>

#include "offsim/sim/trace.hpp"

namespace offsim::sim {

class TraceEventSource {
 public:
  virtual ~TraceEventSource() = default;
  virtual const TraceMetadata& metadata() const = 0;
  virtual const std::vector<SegmentInfo>& initial_segments() const = 0;
  /// Next event into `event`; false after the last one.
  virtual bool next(TraceEvent& event) = 0;
  /// Allocator state after the last event (snapshot `segments`), empty when the source recorded none.
  /// Complete only once next() has returned false (a streaming source reads it after the events).
  virtual const std::vector<SegmentInfo>& final_segments() const = 0;
  /// How much of the source has been read, in [0, 1], for progress estimates; 0 when unknown.
  virtual double fraction_read() const { return 0.0; }
};

class TraceVectorSource : public TraceEventSource {
 public:
  /// `trace` must outlive the source.
  explicit TraceVectorSource(const Trace& trace) : trace_(trace) {}
  const TraceMetadata& metadata() const override { return trace_.metadata; }
  const std::vector<SegmentInfo>& initial_segments() const override { return trace_.initial_segments; }
  bool next(TraceEvent& event) override {
    if (position_ == trace_.events.size()) return false;
    event = trace_.events[position_++];
    return true;
  }
  const std::vector<SegmentInfo>& final_segments() const override { return trace_.final_segments; }

 private:
  const Trace& trace_;
  std::size_t position_ = 0;
};

/// Reads every remaining event of `source` into a Trace (metadata and both segment lists included).
Trace collect_trace(TraceEventSource& source);

}  // namespace offsim::sim
