// `offsim calibrate --emit invokeai|comfyui`: the fitted constants as a Python function in the target
// project's own style, with their provenance and date, for a maintainer to paste in and review:
//  * invokeai: an estimate_vae_working_memory_<vae>(operation, image_tensor, vae) for
//    invokeai/backend/util/vae_working_memory.py (pixel H x W from the tensor's last two dims, element size of
//    the VAE's parameters, a branch on torch.version.hip where both backends were calibrated);
//  * comfyui: <vae>_memory_used_decode / _encode(shape, dtype) for comfy/sd.py's VAE.__init__ (latent or
//    pixel shape, model_management.dtype_size, a branch on model_management.is_amd()).
// The code is written here from the fitted numbers; nothing of upstream's is copied.
#pragma once

#include <string>

#include "offsim/policies/calibration.hpp"

namespace offsim::cli {

struct EmitOptions {
  std::string project;  // "invokeai" or "comfyui"
  policies::FitForm form = policies::FitForm::invokeai;  // for invokeai: invokeai, invokeai_fixed or piecewise
  std::string date;     // YYYY-MM-DD
  std::string command;  // the offsim command line that produced it
};

/// The Python source. Every group of the report must be of one VAE and of the cuda / rocm backends; throws
/// ConfigError saying what to select otherwise. Warnings (an uncalibrated backend or op) go to `warnings`.
std::string emit_python(const policies::CalibrationReport& report, const EmitOptions& options, std::string& warnings);

}  // namespace offsim::cli
