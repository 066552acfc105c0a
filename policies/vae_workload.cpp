#include "offsim/policies/vae_workload.hpp"

#include <array>

#include "offsim/sim/errors.hpp"

namespace offsim::policies {
namespace {

struct FamilyInfo {
  VaeFamily family;
  std::string_view name;
  int spatial;   // pixels per latent pixel
  int temporal;  // pixel frames per latent frame (1 = image VAE)
};

// Spatial/temporal compression. Image VAEs: InvokeAI LATENT_SCALE_FACTOR = 8
// (invoke-ai/InvokeAI:invokeai/app/invocations/constants.py@8e71a8a519) and ComfyUI's default
// downscale_ratio = 8 (Comfy-Org/ComfyUI:comfy/sd.py@a125cd84). Video VAEs: ComfyUI's
// upscale_ratio = (lambda a: max(0, a * k - (k - 1)), s, s) entries in comfy/sd.py@a125cd84:
// Wan 2.1 (4, 8, 8), Wan 2.2 (4, 16, 16), Mochi (6, 8, 8), LTXV (8, 32, 32), HunyuanVideo (4, 8, 8),
// Cosmos (8, 8, 8). FLUX.2: 16 = InvokeAI PiD's latent_spatial_down_factor for Flux2
// (invokeai/backend/pid/decode.py@8e71a8a519) and ComfyUI's batch-norm-latent KL VAE doubling the
// ratio of 8 (comfy/sd.py@033046cc4fac82d954c6daedccf1c8128433c4f1).
constexpr std::array<FamilyInfo, 15> kFamilies{{
    {VaeFamily::sd15, "sd15", 8, 1},
    {VaeFamily::sdxl, "sdxl", 8, 1},
    {VaeFamily::flux1, "flux1", 8, 1},
    {VaeFamily::flux2, "flux2", 16, 1},
    {VaeFamily::sd3, "sd3", 8, 1},
    {VaeFamily::cogview4, "cogview4", 8, 1},
    {VaeFamily::z_image, "z_image", 8, 1},
    {VaeFamily::qwen_image, "qwen_image", 8, 1},
    {VaeFamily::anima, "anima", 8, 1},
    {VaeFamily::wan21, "wan21", 8, 4},
    {VaeFamily::wan22, "wan22", 16, 4},
    {VaeFamily::hunyuan_video, "hunyuan_video", 8, 4},
    {VaeFamily::ltxv, "ltxv", 32, 8},
    {VaeFamily::mochi, "mochi", 8, 6},
    {VaeFamily::cosmos, "cosmos", 8, 8},
}};

constexpr std::array<VaeFamily, 15> kFamilyList{
    VaeFamily::sd15,     VaeFamily::sdxl,  VaeFamily::flux1,         VaeFamily::flux2, VaeFamily::sd3,
    VaeFamily::cogview4, VaeFamily::z_image, VaeFamily::qwen_image,  VaeFamily::anima, VaeFamily::wan21,
    VaeFamily::wan22,    VaeFamily::hunyuan_video, VaeFamily::ltxv,  VaeFamily::mochi, VaeFamily::cosmos,
};

const FamilyInfo& info(VaeFamily family) {
  for (const auto& f : kFamilies) {
    if (f.family == family) return f;
  }
  throw ConfigError("unknown VaeFamily value " + std::to_string(static_cast<int>(family)));
}

template <typename Enum, std::size_t N>
Enum parse_from(std::string_view name, const std::array<std::pair<std::string_view, Enum>, N>& table,
                std::string_view what) {
  std::string known;
  for (const auto& [n, value] : table) {
    if (n == name) return value;
    if (!known.empty()) known += ", ";
    known += n;
  }
  throw ConfigError("unknown " + std::string(what) + " \"" + std::string(name) + "\"; known: " + known);
}

constexpr std::array<std::pair<std::string_view, VaeOp>, 2> kOps{{{"encode", VaeOp::encode},
                                                                  {"decode", VaeOp::decode}}};
constexpr std::array<std::pair<std::string_view, Backend>, 4> kBackends{
    {{"cuda", Backend::cuda}, {"rocm", Backend::rocm}, {"xpu", Backend::xpu}, {"mps", Backend::mps}}};

}  // namespace

std::string_view to_string(VaeFamily family) { return info(family).name; }

std::string_view to_string(VaeOp op) { return op == VaeOp::encode ? "encode" : "decode"; }

std::string_view to_string(Backend backend) {
  for (const auto& [name, value] : kBackends) {
    if (value == backend) return name;
  }
  throw ConfigError("unknown Backend value " + std::to_string(static_cast<int>(backend)));
}

VaeFamily parse_vae_family(std::string_view name) {
  std::array<std::pair<std::string_view, VaeFamily>, kFamilies.size()> table{};
  for (std::size_t i = 0; i < kFamilies.size(); ++i) table[i] = {kFamilies[i].name, kFamilies[i].family};
  return parse_from(name, table, "VAE family");
}

VaeOp parse_vae_op(std::string_view name) { return parse_from(name, kOps, "VAE operation"); }

Backend parse_backend(std::string_view name) { return parse_from(name, kBackends, "backend"); }

std::span<const VaeFamily> all_vae_families() { return kFamilyList; }

int vae_spatial_scale(VaeFamily family) { return info(family).spatial; }

int vae_temporal_scale(VaeFamily family) { return info(family).temporal; }

bool is_video_vae(VaeFamily family) { return info(family).temporal > 1; }

void validate(const VaeWorkload& w) {
  const std::string where = "VAE workload (" + describe(w) + ")";
  if (w.pixel_height <= 0 || w.pixel_width <= 0) {
    throw ConfigError(where + ": pixel_height and pixel_width must be > 0");
  }
  if (w.batch <= 0) throw ConfigError(where + ": batch must be > 0");
  if (w.frames <= 0) throw ConfigError(where + ": frames must be > 0");
  for (const int d : {w.pixel_height, w.pixel_width, w.frames, w.batch, w.tile_size.value_or(0),
                      w.vae_tile_sample_min_size.value_or(0)}) {
    if (d > kMaxVaeDimension) {
      throw ConfigError(where + ": sizes above " + std::to_string(kMaxVaeDimension) + " are no VAE workload");
    }
  }
  const std::uint64_t samples = static_cast<std::uint64_t>(w.pixel_height) * static_cast<std::uint64_t>(w.pixel_width) *
                                static_cast<std::uint64_t>(w.frames) * static_cast<std::uint64_t>(w.batch);
  if (samples > kMaxVaeSamples) {
    throw ConfigError(where + ": height x width x frames x batch = " + std::to_string(samples) + " is above 2^34 (" +
                      std::to_string(kMaxVaeSamples) + "), beyond any VAE workload");
  }
  const auto& f = info(w.family);
  if (f.temporal == 1 && w.frames != 1) {
    throw ConfigError(where + ": " + std::string(f.name) + " is an image VAE; frames must be 1");
  }
  if (w.op == VaeOp::decode) {
    if (w.pixel_height % f.spatial != 0 || w.pixel_width % f.spatial != 0) {
      throw ConfigError(where + ": a decode produces whole latent pixels; height and width must be multiples of " +
                        std::to_string(f.spatial));
    }
    if ((w.frames - 1) % f.temporal != 0) {
      throw ConfigError(where + ": a " + std::string(f.name) + " decode produces (latent_frames - 1) * " +
                        std::to_string(f.temporal) + " + 1 frames");
    }
  }
  if (w.tile_size && *w.tile_size < 0) throw ConfigError(where + ": tile_size must be >= 0 (0 = VAE default)");
  if (w.vae_tile_sample_min_size && *w.vae_tile_sample_min_size <= 0) {
    throw ConfigError(where + ": vae_tile_sample_min_size must be > 0");
  }
  // Block-quantized weights never hold activations; estimators need an element size.
  (void)require_element_size(w.dtype, where);
}

std::string describe(const VaeWorkload& w) {
  std::string out = std::string(to_string(w.family)) + " " + std::string(to_string(w.op)) + " " +
                    std::to_string(w.pixel_width) + "x" + std::to_string(w.pixel_height);
  if (w.frames != 1) out += "x" + std::to_string(w.frames) + "f";
  if (w.batch != 1) out += " batch " + std::to_string(w.batch);
  out += " " + std::string(to_string(w.dtype)) + " " + std::string(to_string(w.backend));
  if (w.tile_size) out += " tiled " + std::to_string(*w.tile_size);
  if (w.memory_optimization) out += " memory_optimization";
  return out;
}

}  // namespace offsim::policies
