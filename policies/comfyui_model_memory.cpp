#include "offsim/policies/comfyui_model_memory.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "offsim/sim/errors.hpp"

namespace offsim::policies::comfyui {
namespace {

// Models whose BaseModel subclass lists "ref_latents" in memory_usage_factor_conds (model_base.py@a125cd84:
// Flux, and Chroma(Flux); QwenImage). Their extra_conds_shapes report one shape per conditioning,
// `[1, 16, sum(prod(a.size()) for a in ref_latents) // 16]`.
bool counts_ref_latents(DiffusionModel model) {
  return model == DiffusionModel::flux || model == DiffusionModel::chroma || model == DiffusionModel::qwen_image;
}

// area term of one input shape: `input_shape[0] * math.prod(input_shape[2:])`
double area_of(const std::vector<std::int64_t>& shape) {
  const auto tail = std::accumulate(shape.begin() + 2, shape.end(), std::int64_t{1}, std::multiplies<>());
  return static_cast<double>(shape[0] * tail);
}

// model_base.py@a125cd84 BaseModel.memory_required, given the summed area. Python evaluates
// `(area * dtype_size(dtype) * 0.01 * self.memory_usage_factor) * (1024 * 1024)` with efficient attention
// (xformers or PyTorch flash attention) and `(area * 0.15 * self.memory_usage_factor) * (1024 * 1024)` without.
double memory_required(double area, const DenoiseWorkload& w, double factor) {
  if (w.efficient_attention) {
    const double ds = static_cast<double>(require_element_size(w.dtype, "ComfyUI memory_required dtype_size"));
    return (area * ds * 0.01 * factor) * (1024.0 * 1024.0);
  }
  return (area * 0.15 * factor) * (1024.0 * 1024.0);
}

std::uint64_t ceil_bytes(double v) {
  if (!(v >= 0) || v > 1.8e19) throw ConfigError("ComfyUI memory_required out of range");
  return static_cast<std::uint64_t>(std::ceil(v));
}

}  // namespace

double memory_usage_factor(const DenoiseWorkload& w) {
  // comfy/supported_models.py@a125cd84 (class attribute, or set in __init__), default
  // supported_models_base.BASE.memory_usage_factor = 2.0.
  switch (w.model) {
    case DiffusionModel::sd15: return 1.0;
    case DiffusionModel::sd20: return 1.0;
    case DiffusionModel::sdxl_refiner: return 1.0;
    case DiffusionModel::sdxl: return 0.8;
    case DiffusionModel::sd3: return 1.2;
    case DiffusionModel::flux: return 3.1;
    case DiffusionModel::chroma: return 3.2;
    case DiffusionModel::hunyuan_dit: return 1.3;
    case DiffusionModel::pixart: return 0.5;
    case DiffusionModel::genmo_mochi: return 2.0;
    case DiffusionModel::ltxv:
      // `(unet_config.get("cross_attention_dim", 2048) / 2048) * 5.5`
      return (static_cast<double>(w.model_dim.value_or(2048)) / 2048.0) * 5.5;
    case DiffusionModel::hunyuan_video: return 1.8;
    case DiffusionModel::cosmos: return 1.6;
    case DiffusionModel::lumina2: return 1.2;
    case DiffusionModel::wan21:
      // `self.unet_config.get("dim", 2000) / 2222`
      return static_cast<double>(w.model_dim.value_or(2000)) / 2222.0;
    case DiffusionModel::wan21_vace:
      // `1.2 * self.memory_usage_factor` after WAN21_T2V.__init__
      return 1.2 * (static_cast<double>(w.model_dim.value_or(2000)) / 2222.0);
    case DiffusionModel::hidream: return 2.0;  // its own factor is commented out: BASE's 2.0
    case DiffusionModel::qwen_image: return 1.8;
    case DiffusionModel::hunyuan_image21: return 7.7;
  }
  throw ConfigError("unknown DiffusionModel value " + std::to_string(static_cast<int>(w.model)));
}

ModelMemory estimate_memory(const DenoiseWorkload& w) {
  validate(w);
  const double factor = memory_usage_factor(w);
  double full_area = 0;
  double min_area = 0;
  // memory_required([noise_shape[0] * 2] + noise_shape[1:]) and memory_required(noise_shape)
  auto doubled = w.noise_shape;
  doubled[0] *= 2;
  full_area += area_of(doubled);
  min_area += area_of(w.noise_shape);
  if (counts_ref_latents(w.model) && !w.ref_latent_elements.empty()) {
    // Each cond's shape [1, 16, N // 16] adds 1 * (N // 16). cond_shapes keeps every cond's shape;
    // cond_shapes_min keeps the one with the largest math.prod(v).
    std::int64_t largest = 0;
    for (auto n : w.ref_latent_elements) {
      full_area += static_cast<double>(n / 16);
      largest = std::max(largest, n / 16);
    }
    min_area += static_cast<double>(largest);
  }
  return {ceil_bytes(memory_required(full_area, w, factor)), ceil_bytes(memory_required(min_area, w, factor))};
}

}  // namespace offsim::policies::comfyui
