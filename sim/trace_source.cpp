#include "offsim/sim/trace_source.hpp"

namespace offsim::sim {

Trace collect_trace(TraceEventSource& source) {
  Trace trace;
  trace.metadata = source.metadata();
  trace.initial_segments = source.initial_segments();
  TraceEvent event;
  while (source.next(event)) trace.events.push_back(event);
  trace.final_segments = source.final_segments();
  return trace;
}

}  // namespace offsim::sim
