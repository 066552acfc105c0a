// What `offsim replay` shows of its results: the terminal table (a column per device) and the JSON
// document (docs/replay_json.md). The replay itself is sim::replay; this only presents it.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "offsim/sim/replay.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::cli {

/// One device's replay.
struct DeviceReplay {
  sim::TraceMetadata metadata;
  sim::ReplayResult result;
  std::optional<sim::MinCapacityResult> min_capacity;
};

/// The table (a column per device), then each device's divergence, OOM and notes.
void print_replays(std::ostream& out, const std::vector<DeviceReplay>& replays, const std::string& profile);

/// `offsim-replay/1`: one device's keys at the top level when one device was replayed, the totals when several,
/// and every device's keys under "devices".
nlohmann::json replays_json(const std::vector<DeviceReplay>& replays, const std::string& path);

}  // namespace offsim::cli
