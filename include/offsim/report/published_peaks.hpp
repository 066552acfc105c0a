// Published VAE peak measurements (traces/published/*.json, format offsim-published-measurements/1,
// "grids"): peak reserved growth per (op, resolution) on a named device and backend, with the grid's
// citation. The estimator chart draws them as true peaks next to an estimator's model; each keeps its
// provenance ("published: <grid> (<device>)").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "offsim/policies/vae_workload.hpp"

namespace offsim::report {

struct PublishedPeak {
  std::string grid;    // grid id, e.g. "cuda-rtx4090-grid"
  std::string device;  // as published
  std::string citation;
  policies::Backend backend = policies::Backend::cuda;
  policies::VaeOp op = policies::VaeOp::decode;
  int height = 0;
  int width = 0;
  std::uint64_t bytes = 0;  // peak reserved growth
  /// The number was recomputed from a published implied constant (rounded), not published as GiB.
  bool derived = false;
  bool approximate = false;  // published with "~"
};

/// Points of every grid with status "ok" (or no status) and a peak reserved growth, in file order; points
/// that ran out of memory on the published device carry no peak and are skipped. Throws ParseError naming
/// the file and the field for malformed input.
std::vector<PublishedPeak> read_published_grids(const std::filesystem::path& path);

}  // namespace offsim::report
