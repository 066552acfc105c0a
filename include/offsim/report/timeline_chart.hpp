// Memory over time for one policy on one scenario, from a result of `offsim eval --json` (to_json of an
// EvalResult): reserved and allocated bytes after every allocator call (in GiB; exact bytes on hover),
// each stage shaded with its estimate, true peaks and their provenance in the tooltip, evictions and
// unhandled OOMs marked, the peak marked and the device capacity drawn. And the same scenario's reserved
// memory for every policy in one chart, to compare them.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace offsim::report {

/// How the timeline's samples come: in the spec, or from the page (HtmlPage::DatasetRef over the embedded
/// eval JSON's result["timeline"], columns "r" and "a"), which then holds them only once.
enum class Samples { kInline, kFromPage };

/// Vega-Lite spec for one result. Its layers read the dataset "samples": rows {i, r, a} (the thinned
/// timeline's index, reserved and allocated bytes), x = i * timeline_stride.
nlohmann::json timeline_chart(const nlohmann::json& result, Samples samples = Samples::kInline);

/// Vega-Lite spec: reserved memory of each result (all of one scenario), one line per policy.
nlohmann::json scenario_overview_chart(const std::vector<const nlohmann::json*>& results);

/// Consecutive stage records of one stage in one call (e.g. the steps of a denoise) merged into one band:
/// [first timeline sample, last] with the first record's decision. Exposed for tests.
struct StageBand {
  std::size_t first_record = 0;
  std::size_t records = 0;
  std::uint64_t begin_sample = 0;
  std::uint64_t end_sample = 0;
};
std::vector<StageBand> stage_bands(const nlohmann::json& result);

}  // namespace offsim::report
