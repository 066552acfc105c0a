// A trace source that reports how far it has been read on a Progress line: for commands that stream a
// trace through a writer (offsim convert), where the loop is inside the writer.
#pragma once

#include <cstddef>
#include <vector>

#include "offsim/sim/trace_source.hpp"
#include "progress.hpp"

namespace offsim::cli {

class ProgressSource : public sim::TraceEventSource {
 public:
  ProgressSource(sim::TraceEventSource& inner, Progress& progress) : inner_(inner), progress_(progress) {}

  const sim::TraceMetadata& metadata() const override { return inner_.metadata(); }
  const std::vector<sim::SegmentInfo>& initial_segments() const override { return inner_.initial_segments(); }
  const std::vector<sim::SegmentInfo>& final_segments() const override { return inner_.final_segments(); }
  double fraction_read() const override { return inner_.fraction_read(); }

  bool next(sim::TraceEvent& event) override {
    if ((++events_ & 0xffff) == 0) {
      // Events so far, and the total they suggest from how much of the source was read.
      const double fraction = inner_.fraction_read();
      progress_.update(events_, fraction > 0.0 ? static_cast<std::size_t>(static_cast<double>(events_) / fraction) : 0);
    }
    return inner_.next(event);
  }

 private:
  sim::TraceEventSource& inner_;
  Progress& progress_;
  std::size_t events_ = 0;
};

}  // namespace offsim::cli
