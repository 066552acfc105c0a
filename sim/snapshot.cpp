#include "offsim/sim/snapshot.hpp"

namespace offsim::sim {

std::string_view to_string(BlockState state) {
  switch (state) {
    case BlockState::kActiveAllocated: return "active_allocated";
    case BlockState::kActivePendingFree: return "active_pending_free";
    case BlockState::kInactive: return "inactive";
  }
  return "inactive";
}

}  // namespace offsim::sim
