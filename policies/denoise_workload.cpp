#include "offsim/policies/denoise_workload.hpp"

#include <array>
#include <utility>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

constexpr std::array<std::pair<std::string_view, DiffusionModel>, 19> kModels{{
    {"sd15", DiffusionModel::sd15},
    {"sd20", DiffusionModel::sd20},
    {"sdxl_refiner", DiffusionModel::sdxl_refiner},
    {"sdxl", DiffusionModel::sdxl},
    {"sd3", DiffusionModel::sd3},
    {"flux", DiffusionModel::flux},
    {"chroma", DiffusionModel::chroma},
    {"hunyuan_dit", DiffusionModel::hunyuan_dit},
    {"pixart", DiffusionModel::pixart},
    {"genmo_mochi", DiffusionModel::genmo_mochi},
    {"ltxv", DiffusionModel::ltxv},
    {"hunyuan_video", DiffusionModel::hunyuan_video},
    {"cosmos", DiffusionModel::cosmos},
    {"lumina2", DiffusionModel::lumina2},
    {"wan21", DiffusionModel::wan21},
    {"wan21_vace", DiffusionModel::wan21_vace},
    {"hidream", DiffusionModel::hidream},
    {"qwen_image", DiffusionModel::qwen_image},
    {"hunyuan_image21", DiffusionModel::hunyuan_image21},
}};

}  // namespace

std::string_view to_string(DiffusionModel model) {
  for (const auto& [name, value] : kModels) {
    if (value == model) return name;
  }
  throw ConfigError("unknown DiffusionModel value " + std::to_string(static_cast<int>(model)));
}

DiffusionModel parse_diffusion_model(std::string_view name) {
  std::string known;
  for (const auto& [n, value] : kModels) {
    if (n == name) return value;
    if (!known.empty()) known += ", ";
    known += n;
  }
  throw ConfigError("unknown diffusion model \"" + std::string(name) + "\"; known: " + known);
}

std::string describe(const DenoiseWorkload& w) {
  std::string shape;
  for (auto d : w.noise_shape) {
    shape += shape.empty() ? "[" : ", ";
    shape += std::to_string(d);
  }
  shape += "]";
  std::string out = std::string(to_string(w.model)) + " noise " + shape + " " + std::string(to_string(w.dtype)) +
                    " " + std::string(to_string(w.backend));
  if (!w.ref_latent_elements.empty()) out += " refs " + std::to_string(w.ref_latent_elements.size());
  if (!w.efficient_attention) out += " no-efficient-attention";
  return out;
}

void validate(const DenoiseWorkload& w) {
  const std::string where = "denoise workload (" + describe(w) + ")";
  if (w.noise_shape.size() != 4 && w.noise_shape.size() != 5) {
    throw ConfigError(where + ": noise_shape must be (B, C, H, W) or (B, C, T, H, W)");
  }
  std::int64_t elements = 1;
  for (auto d : w.noise_shape) {
    if (d <= 0) throw ConfigError(where + ": noise_shape dimensions must be > 0");
    if (d > kMaxLatentDimension) throw ConfigError(where + ": noise_shape dimensions must be at most 2^20");
    elements *= d;  // each factor <= 2^20 and the running product <= 2^34: no overflow
    if (elements > kMaxLatentElements) throw ConfigError(where + ": noise_shape holds more than 2^34 elements");
  }
  for (auto e : w.ref_latent_elements) {
    if (e < 0) throw ConfigError(where + ": ref_latent_elements must be >= 0");
    if (e > kMaxLatentElements) throw ConfigError(where + ": ref_latent_elements entries must be at most 2^34");
  }
  if (w.model_dim && (*w.model_dim <= 0 || *w.model_dim > kMaxModelDim)) {
    throw ConfigError(where + ": model_dim must be from 1 to " + std::to_string(kMaxModelDim));
  }
  (void)require_element_size(w.dtype, where);
}

}  // namespace offsim::policies
