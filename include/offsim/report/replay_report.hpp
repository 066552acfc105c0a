// The HTML report of `offsim replay TRACE --html FILE`: how faithfully the simulator reproduced the
// recording (events matched, the first divergence with the segments around it), memory over the trace
// (reserved, allocated, device capacity, every OOM marked handled or not, the divergence marked), the
// fragmentation over time (free cached bytes, inactive split bytes, largest free block), and segment maps
// near the divergence and at the end of the recording. One file, opens offline.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "offsim/report/html_page.hpp"
#include "offsim/report/vega_assets.hpp"
#include "offsim/sim/replay.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::report {

/// Everything the report draws, as JSON (embedded in the page): {"format": "offsim-replay-report/1",
/// "trace": {label, provenance, ...}, "replay": {...}, "timeline": [...], "ooms": [...], "divergence",
/// "final_segments", "min_capacity"}.
nlohmann::json replay_report_data(const sim::ReplayResult& result, const sim::Trace& trace,
                                  const std::optional<sim::MinCapacityResult>& min_capacity = std::nullopt);

HtmlPage replay_report_page(const nlohmann::json& data);

/// What `offsim replay --html FILE` calls: builds the data and writes the page atomically.
void write_replay_report(const sim::ReplayResult& result, const sim::Trace& trace, const VegaAssets& assets,
                         const std::filesystem::path& path,
                         const std::optional<sim::MinCapacityResult>& min_capacity = std::nullopt);

}  // namespace offsim::report
