#include "offsim/policies/comfyui_vae_estimators.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim::policies::comfyui {
namespace {

using u64 = std::uint64_t;

// The shapes the lambdas index, derived from the workload the way VAE.decode / VAE.encode build them.
struct Shapes {
  u64 t = 1;        // latent frames (decode, 3-D VAEs)
  u64 h = 0, w = 0; // latent size (decode)
  u64 T = 1;        // pixel frames (encode, 3-D VAEs)
  u64 H = 0, W = 0; // pixel size after vae_encode_crop_pixels (encode)
  u64 ds = 0;       // model_management.dtype_size(vae_dtype)
};

// downscale_ratio's temporal lambda, `max(0, math.floor((a + k - 1) / k))`, for the 3-D VAEs
// (comfy/sd.py@a125cd84: Wan/HunyuanVideo k = 4, Mochi 6, LTXV and Cosmos 8).
u64 latent_frames(int pixel_frames, int k) {
  return static_cast<u64>(std::max(0, (pixel_frames + k - 1) / k));
}

Shapes shapes_of(const VaeWorkload& w, int spatial, int temporal) {
  Shapes s;
  // model_management.dtype_size@a125cd84: 2 for float16/bfloat16, 4 for float32, else dtype.itemsize.
  s.ds = require_element_size(w.dtype, "ComfyUI model_management.dtype_size");
  const auto sp = static_cast<u64>(spatial);
  s.h = static_cast<u64>(w.pixel_height) / sp;
  s.w = static_cast<u64>(w.pixel_width) / sp;
  s.H = s.h * sp;  // encode input cropped to whole multiples of the ratio
  s.W = s.w * sp;
  if (temporal > 1) {
    s.t = latent_frames(w.frames, temporal);
    // VAE.encode on a 3-D VAE turns the image batch (N, H, W, C) into one clip (1, C, N, H, W).
    s.T = static_cast<u64>(w.frames) * static_cast<u64>(w.batch);
  }
  return s;
}

double ceil_bytes_guard(double value) {
  if (!(value >= 0) || value > 1.8e19) throw ConfigError("ComfyUI VAE estimate out of range");
  return std::ceil(value);
}

u64 to_bytes(double value) { return static_cast<u64>(ceil_bytes_guard(value)); }

[[noreturn]] void not_transcribed(VaeType type, Profile profile) {
  throw ConfigError("ComfyUI comfy/sd.py@" + std::string(to_string(profile)) + ": the " +
                    std::string(to_string(type)) + " VAE estimate is not transcribed for this version");
}

// ---- Comfy-Org/ComfyUI:comfy/sd.py@a125cd84b054a57729b5eecab930ca9408719832, class VAE.__init__ ----
u64 a125cd84(VaeType type, const VaeWorkload& w) {
  const bool decode = w.op == VaeOp::decode;
  switch (type) {
    case VaeType::autoencoder_kl: {
      // Defaults "for AutoencoderKL and need tweaking (should be lower)":
      //   encode (1767 * shape[2] * shape[3]) * ds, decode (2178 * shape[2] * shape[3] * 64) * ds
      const auto s = shapes_of(w, vae_spatial_scale(w.family), 1);
      return decode ? 2178 * s.h * s.w * 64 * s.ds : 1767 * s.H * s.W * s.ds;
    }
    case VaeType::wan21: {
      // encode 6000 * shape[3] * shape[4] * ds, decode 7000 * shape[3] * shape[4] * (8 * 8) * ds (no frame term)
      const auto s = shapes_of(w, 8, 4);
      return decode ? 7000 * s.h * s.w * 64 * s.ds : 6000 * s.H * s.W * s.ds;
    }
    case VaeType::wan22: {
      // encode 3300 * shape[3] * shape[4] * ds, decode 8000 * shape[3] * shape[4] * (16 * 16) * ds
      const auto s = shapes_of(w, 16, 4);
      return decode ? 8000 * s.h * s.w * 256 * s.ds : 3300 * s.H * s.W * s.ds;
    }
    case VaeType::hunyuan_video: {
      // decode (1500 * shape[2] * shape[3] * shape[4] * (4 * 8 * 8)) * ds,
      // encode (900 * max(shape[2], 2) * shape[3] * shape[4]) * ds
      const auto s = shapes_of(w, 8, 4);
      return decode ? 1500 * s.t * s.h * s.w * (4 * 8 * 8) * s.ds : 900 * std::max<u64>(s.T, 2) * s.H * s.W * s.ds;
    }
    case VaeType::ltxv: {
      // decode (900 * shape[2] * shape[3] * shape[4] * (8 * 8 * 8)) * ds,
      // encode (70 * max(shape[2], 7) * shape[3] * shape[4]) * ds
      const auto s = shapes_of(w, 32, 8);
      return decode ? 900 * s.t * s.h * s.w * (8 * 8 * 8) * s.ds : 70 * std::max<u64>(s.T, 7) * s.H * s.W * s.ds;
    }
    case VaeType::mochi: {
      // decode (1000 * shape[2] * shape[3] * shape[4] * (6 * 8 * 8)) * ds,
      // encode (1.5 * max(shape[2], 7) * shape[3] * shape[4] * (6 * 8 * 8)) * ds  (a float)
      const auto s = shapes_of(w, 8, 6);
      if (decode) return 1000 * s.t * s.h * s.w * (6 * 8 * 8) * s.ds;
      const double v = 1.5 * static_cast<double>(std::max<u64>(s.T, 7)) * static_cast<double>(s.H) *
                       static_cast<double>(s.W) * (6 * 8 * 8) * static_cast<double>(s.ds);
      return to_bytes(v);
    }
    case VaeType::cosmos: {
      // decode (50 * shape[2] * shape[3] * shape[4] * (8 * 8 * 8)) * ds,
      // encode (50 * (round((shape[2] + 7) / 8) * 8) * shape[3] * shape[4]) * ds
      // Python's round() rounds halves to even; std::nearbyint does too in the default rounding mode.
      const auto s = shapes_of(w, 8, 8);
      if (decode) return 50 * s.t * s.h * s.w * (8 * 8 * 8) * s.ds;
      const auto rounded = static_cast<u64>(std::nearbyint(static_cast<double>(s.T + 7) / 8.0));
      return 50 * (rounded * 8) * s.H * s.W * s.ds;
    }
    case VaeType::flux2_kl:
      break;
  }
  not_transcribed(type, Profile::a125cd84);
}

// ---- Comfy-Org/ComfyUI:comfy/sd.py@033046cc4fac82d954c6daedccf1c8128433c4f1, class VAE.__init__ ----
u64 c033046cc(VaeType type, const VaeWorkload& w) {
  const bool decode = w.op == VaeOp::decode;
  // `VAE_KL_MEM_RATIO = 2.73 if model_management.is_amd() else 1.0`, applied to the AutoencoderKL defaults.
  const double kl_ratio = w.backend == Backend::rocm ? 2.73 : 1.0;
  switch (type) {
    case VaeType::autoencoder_kl:
    case VaeType::flux2_kl: {
      // encode (1767 * shape[2] * shape[3]) * ds * ratio, decode (2178 * shape[2] * shape[3] * 64) * ds * ratio.
      // With 'bn.running_mean' (FLUX.2): downscale_ratio *= 2, latent_channels *= 4 and
      // memory_used_decode = old_memory_used_decode(shape, dtype) * 4.0; encode unchanged.
      const int spatial = type == VaeType::flux2_kl ? 16 : 8;
      const auto s = shapes_of(w, spatial, 1);
      if (!decode) return to_bytes(static_cast<double>(1767 * s.H * s.W * s.ds) * kl_ratio);
      double v = static_cast<double>(2178 * s.h * s.w * 64 * s.ds) * kl_ratio;
      if (type == VaeType::flux2_kl) v *= 4.0;
      return to_bytes(v);
    }
    case VaeType::wan21: {
      // encode (1500 if shape[2] <= 4 else 6000) * shape[3] * shape[4] * ds,
      // decode (2200 if shape[2] <= 4 else 7000) * shape[3] * shape[4] * (8*8) * ds
      const auto s = shapes_of(w, 8, 4);
      if (decode) return (s.t <= 4 ? 2200 : 7000) * s.h * s.w * 64 * s.ds;
      return (s.T <= 4 ? 1500 : 6000) * s.H * s.W * s.ds;
    }
    case VaeType::wan22: {
      // Unchanged from a125cd84: encode 3300 * shape[3] * shape[4] * ds, decode 8000 * ... * (16 * 16) * ds.
      const auto s = shapes_of(w, 16, 4);
      return decode ? 8000 * s.h * s.w * 256 * s.ds : 3300 * s.H * s.W * s.ds;
    }
    case VaeType::hunyuan_video:
    case VaeType::ltxv:
    case VaeType::mochi:
    case VaeType::cosmos:
      break;
  }
  not_transcribed(type, Profile::c033046cc);
}

}  // namespace

std::string_view to_string(VaeType type) {
  switch (type) {
    case VaeType::autoencoder_kl: return "autoencoder_kl";
    case VaeType::flux2_kl: return "flux2_kl";
    case VaeType::wan21: return "wan21";
    case VaeType::wan22: return "wan22";
    case VaeType::hunyuan_video: return "hunyuan_video";
    case VaeType::ltxv: return "ltxv";
    case VaeType::mochi: return "mochi";
    case VaeType::cosmos: return "cosmos";
  }
  throw ConfigError("unknown comfyui::VaeType value " + std::to_string(static_cast<int>(type)));
}

std::string_view to_string(Profile profile) {
  switch (profile) {
    case Profile::a125cd84: return "a125cd84";
    case Profile::c033046cc: return "033046cc";
  }
  throw ConfigError("unknown comfyui::Profile value " + std::to_string(static_cast<int>(profile)));
}

VaeType detect_vae_type(VaeFamily family, Profile profile) {
  switch (family) {
    case VaeFamily::sd15:
    case VaeFamily::sdxl:
    case VaeFamily::flux1:
    case VaeFamily::sd3:
    case VaeFamily::z_image:
      return VaeType::autoencoder_kl;
    case VaeFamily::flux2:
      if (profile == Profile::a125cd84) break;  // no 'bn.running_mean' branch yet
      return VaeType::flux2_kl;
    case VaeFamily::qwen_image:
    case VaeFamily::anima:
    case VaeFamily::wan21:
      return VaeType::wan21;
    case VaeFamily::wan22:
      return VaeType::wan22;
    case VaeFamily::hunyuan_video:
      return VaeType::hunyuan_video;
    case VaeFamily::ltxv:
      return VaeType::ltxv;
    case VaeFamily::mochi:
      return VaeType::mochi;
    case VaeFamily::cosmos:
      return VaeType::cosmos;
    case VaeFamily::cogview4:
      break;
  }
  throw ConfigError("ComfyUI comfy/sd.py@" + std::string(to_string(profile)) + " has no VAE branch for " +
                    std::string(to_string(family)));
}

std::uint64_t memory_used(VaeType type, const VaeWorkload& w, Profile profile) {
  validate(w);
  if (detect_vae_type(w.family, profile) != type) {
    throw ConfigError("ComfyUI " + std::string(to_string(type)) + " VAE estimate applied to a " +
                      std::string(to_string(w.family)) + " VAE, which ComfyUI loads as " +
                      std::string(to_string(detect_vae_type(w.family, profile))));
  }
  return profile == Profile::a125cd84 ? a125cd84(type, w) : c033046cc(type, w);
}

}  // namespace offsim::policies::comfyui
