// Published VAE working-memory measurements (traces/published/*.json, each with its citation) as
// points a scenario or a generator can use: the stage's true peak T comes from a real measurement, and
// the stage trace that stands for it reproduces exactly the published numbers (peak reserved growth, and
// peak allocated growth where published) and nothing more.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offsim/policies/vae_workload.hpp"
#include "offsim/sim/trace.hpp"

namespace offsim::policies {

struct PublishedPoint {
  std::string grid;        // "cuda-rtx4090-grid"
  VaeFamily family = VaeFamily::qwen_image;
  VaeOp op = VaeOp::decode;
  Backend backend = Backend::cuda;
  int height = 0;
  int width = 0;
  DType dtype = DType::fp16;
  std::uint64_t peak_reserved = 0;             // bytes, on the 2 MiB segment grid
  /// Bytes as published, before rounding to the segment grid: a GiB figure x 2^30 rounded to a byte, MB x 2^20,
  /// or a derived constant x H x W x 2 exactly (what an implied constant is recomputed from).
  std::uint64_t peak_reserved_as_published = 0;
  std::optional<std::uint64_t> peak_allocated;  // where published and not above peak_reserved
  bool derived = false;  // recomputed from a published implied constant (constant x H x W x 2)
  std::string device;    // "NVIDIA GeForce RTX 4090"
  std::string torch;
  std::string alloc_conf;  // the allocator setting the measurement states ("backend:cudaMallocAsync"); "" = default
  std::string citation;
  /// Estimator ids whose constants were chosen from this grid (the file's "used_to_set"): their verdicts on
  /// this point check their own calibration data, not a held-out point.
  std::vector<std::string> used_to_set;
};

/// Every usable point of traces/published/qwen_image_vae_calibration.json and vae_peaks_other.json
/// (points published as OOM or without a number are left out). Throws ParseError naming the file.
std::vector<PublishedPoint> load_published_points(const std::filesystem::path& root);
/// The same, from a folder holding those two files (root/traces/published or a copy of it).
std::vector<PublishedPoint> load_published_points_in(const std::filesystem::path& folder);

/// The minimal stage trace for a point, labelled `published` with its citation.
std::shared_ptr<const sim::Trace> published_stage_trace(const PublishedPoint& point);

/// The point measured for exactly this workload (family, op, backend, height, width and element size: InvokeAI's
/// calibrations are per element size), the largest when several match; nullptr when none does. `matches` counts
/// them. Published points are untiled single images measured in a fresh process: callers leave out tiled, batched,
/// multi-frame and memory-optimized workloads themselves.
const PublishedPoint* best_published_point(const std::vector<PublishedPoint>& points, const VaeWorkload& workload,
                                           std::size_t* matches = nullptr);

}  // namespace offsim::policies
