// The estimator forms real projects use, fitted to measured peaks so that the estimate bounds every
// calibration point (P2) with the smallest margin that does it (`offsim calibrate`, docs/calibration.md).
// One FittedEstimate serves one (VAE, op, backend); all arithmetic is integer, so the bound is exact.
//
//  * invokeai:        E = C x H x W x frames x es                     (InvokeAI's vae_working_memory.py shape)
//                     C = the smallest integer with E >= T at every point: max ceil(T / (pixels x es)).
//  * invokeai_fixed:  E = C x H x W x frames x es + F                  (the same, with a fixed term, as the SD1.5/SDXL
//                     estimator's fp32 +250 MiB): among (C, F >= 0) with E >= T everywhere, the one with the
//                     smallest mean E / T (a linear programme in two unknowns, solved at its vertices); C is
//                     then rounded up to an integer and F lowered to the smallest that still bounds.
//  * comfyui:         E = K x volume x dtype_size                      (ComfyUI's memory_used_decode / _encode: a
//                     factor times the latent shape's t x h x w x (s x s) for a decode, the pixel shape's
//                     T x H x W for an encode, H and W cropped to multiples of s); K as C above.
//  * piecewise:       E = es x f(pixels), f linear between knots at every calibrated pixel count, its value
//                     there the largest T / es measured at that count (rounded up); below the first knot and
//                     above the last, f keeps that knot's bytes per pixel. For when one constant cannot cover
//                     the range (the ROCm grid), at the cost of no headroom between knots.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "offsim/policies/calibration_point.hpp"

namespace offsim::policies {

enum class FitForm { invokeai, invokeai_fixed, comfyui, piecewise };

std::string_view to_string(FitForm form);
/// "invokeai", "invokeai_fixed" (or "invokeai+fixed"), "comfyui", "piecewise"; throws ConfigError listing them.
FitForm parse_fit_form(std::string_view name);
std::span<const FitForm> all_fit_forms();

struct Knot {
  std::uint64_t pixels = 0;                  // H x W x frames
  std::uint64_t bytes_per_element_byte = 0;  // f(pixels)
  bool operator==(const Knot&) const = default;
};

struct FittedEstimate {
  FitForm form = FitForm::invokeai;
  /// invokeai / invokeai_fixed: C, bytes per pixel per element byte; comfyui: the factor K.
  std::uint64_t constant = 0;
  /// invokeai_fixed: F in bytes.
  std::uint64_t fixed_bytes = 0;
  /// piecewise: ascending pixel counts.
  std::vector<Knot> knots;
};

/// ComfyUI's volume for the point's shapes (see above); `spatial` = the VAE's downscale ratio.
std::uint64_t comfyui_volume(const VaeWorkload& workload);

/// The estimate for an untiled workload (batch 1).
std::uint64_t estimate_bytes(const FittedEstimate& fit, const VaeWorkload& workload);
std::uint64_t estimate_bytes(const FittedEstimate& fit, const CalibrationPoint& point);

/// The smallest estimate of `form` that bounds every point (all of one VAE, op and backend). `headroom` (>= 0)
/// then scales every constant up by (1 + headroom), rounding up. Throws ConfigError for no points.
FittedEstimate fit_estimate(FitForm form, std::span<const CalibrationPoint> points, double headroom = 0);

/// "C = 5202", "C = 2466, F = 1.21 GiB", "K = 5202", "6 knots, 2508..5203 B/px/es".
std::string describe(const FittedEstimate& fit);

}  // namespace offsim::policies
