// A measured peak that a working-memory estimator is fitted to or judged against (`offsim calibrate`): one
// untiled VAE encode or decode of one image (or clip) at one size, dtype and backend, with its peak reserved
// growth, T_cold in DESIGN.md section 2 (what InvokeAI's calibration scripts measure: fresh process, weights
// resident, cache emptied, peak of reserved minus reserved before), and where the number came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offsim/policies/vae_workload.hpp"

namespace offsim::policies {

struct CalibrationPoint {
  VaeFamily model = VaeFamily::qwen_image;
  VaeOp op = VaeOp::decode;
  int width = 0;   // pixels: the decode's output or the encode's input
  int height = 0;
  int frames = 1;  // pixel frames (1 for images)
  DType dtype = DType::fp16;
  Backend backend = Backend::cuda;
  /// T: peak reserved growth in bytes, as measured or published (not rounded to the segment grid).
  std::uint64_t peak_reserved_growth = 0;
  /// The run or grid the point belongs to ("cuda-rtx4090-grid", a GPU run folder, a user's source column).
  /// Points of one source were measured together; two sources may disagree at the same size.
  std::string source;
  /// Settings that change the peak beside size, dtype and backend ("attention=math", "backend:cudaMallocAsync");
  /// empty for the source's default kernels and allocator.
  std::string variant;
  /// "published measurement", "real GPU measurement", "user measurement", or a replay's provenance.
  std::string provenance;
  /// "FILE:LINE" (or "FILE [grid]") it was read from: every message about the point names it.
  std::string origin;
  std::string citation;
  /// Estimator ids whose constants were chosen from this point's source (their verdicts on it are not tests).
  std::vector<std::string> used_to_set;
};

/// width x height x frames.
std::uint64_t pixels(const CalibrationPoint& point);
/// Bytes per element of the dtype (what every estimator form multiplies by).
std::uint32_t element_size(const CalibrationPoint& point);
/// T / (pixels x element size): InvokeAI's "implied constant", bytes per pixel per element byte.
double implied_constant(const CalibrationPoint& point);
/// The untiled, batch-1 workload an estimator is asked about for this point.
VaeWorkload workload_of(const CalibrationPoint& point);
/// "1248x832" (width x height, "x<frames>f" for clips).
std::string size_label(const CalibrationPoint& point);
/// One line for messages: "qwen_image decode 1248x832 fp16 rocm [source] (variant)".
std::string describe(const CalibrationPoint& point);

}  // namespace offsim::policies
