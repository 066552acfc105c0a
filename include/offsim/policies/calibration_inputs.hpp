// Readers of everything `offsim calibrate` takes as measured points (docs/calibration.md), each turned into
// CalibrationPoints that say where they came from:
//  * published grids: a folder holding traces/published/'s qwen_image_vae_calibration.json and
//    vae_peaks_other.json (load_published_points_in);
//  * a GPU run of real/gpu/run.sh: its output folder ($OUT, or traces/gpu/<run>/ once committed) or its
//    vae_peaks.jsonl, with metadata.json / run_metadata.json beside it (the backend comes from torch.version.hip);
//  * a user's file: CSV, or JSON with "format": "offsim-calibration-points/1"; a point's peak is given in bytes
//    or taken from an `offsim replay --json` result of the user's own snapshot (column/key replay_json).
// Malformed input is refused with ParseError naming the file and line: a point with no backend, zero pixels,
// negative or zero bytes, an unknown model or column, and (in merge_calibration_points) the same point given
// twice with two different peaks.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "offsim/policies/calibration_point.hpp"

namespace offsim::policies {

struct CalibrationInput {
  std::vector<CalibrationPoint> points;
  /// What was read and what was left out (OOM points of a GPU run, identical duplicates), one line each.
  std::vector<std::string> notes;
};

/// Reads one input, recognised by what it is (see above). Throws ParseError / ConfigError naming the file.
CalibrationInput read_calibration_input(const std::filesystem::path& path);

CalibrationInput read_published_calibration_points(const std::filesystem::path& folder);
CalibrationInput read_gpu_run_points(const std::filesystem::path& run_folder_or_jsonl);
CalibrationInput read_user_calibration_points(const std::filesystem::path& csv_or_json);

/// The peak reserved growth an `offsim replay --json` result reports: the recorded curve's peak where the
/// trace recorded segment events, else the simulated peak, minus the reserved bytes of the start state.
/// `provenance` receives which of the two it was. Throws ParseError naming the file.
std::uint64_t replay_peak_reserved_growth(const std::filesystem::path& replay_json, std::string& provenance);

/// Appends `more` to `into`. A point equal to one already there in everything but its peak (model, op, size,
/// frames, dtype, backend, source, variant) is refused with ParseError naming both origins; an exact
/// repeat is kept once and noted.
void merge_calibration_points(CalibrationInput& into, CalibrationInput more);

}  // namespace offsim::policies
