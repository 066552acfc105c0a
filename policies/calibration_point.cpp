#include "offsim/policies/calibration_point.hpp"

namespace offsim::policies {

std::uint64_t pixels(const CalibrationPoint& point) {
  return static_cast<std::uint64_t>(point.width) * static_cast<std::uint64_t>(point.height) *
         static_cast<std::uint64_t>(point.frames);
}

std::uint32_t element_size(const CalibrationPoint& point) {
  return require_element_size(point.dtype, "calibration point " + describe(point));
}

double implied_constant(const CalibrationPoint& point) {
  return static_cast<double>(point.peak_reserved_growth) /
         (static_cast<double>(pixels(point)) * static_cast<double>(element_size(point)));
}

VaeWorkload workload_of(const CalibrationPoint& point) {
  VaeWorkload w;
  w.family = point.model;
  w.op = point.op;
  w.pixel_width = point.width;
  w.pixel_height = point.height;
  w.frames = point.frames;
  w.dtype = point.dtype;
  w.backend = point.backend;
  return w;
}

std::string size_label(const CalibrationPoint& point) {
  std::string out = std::to_string(point.width) + "x" + std::to_string(point.height);
  if (point.frames != 1) out += "x" + std::to_string(point.frames) + "f";
  return out;
}

std::string describe(const CalibrationPoint& point) {
  std::string out = std::string(to_string(point.model)) + " " + std::string(to_string(point.op)) + " " +
                    size_label(point) + " " + std::string(to_string(point.dtype)) + " " +
                    std::string(to_string(point.backend));
  if (!point.source.empty()) out += " [" + point.source + "]";
  if (!point.variant.empty()) out += " (" + point.variant + ")";
  return out;
}

}  // namespace offsim::policies
