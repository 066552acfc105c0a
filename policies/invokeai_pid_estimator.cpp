#include "offsim/policies/invokeai_pid_estimator.hpp"

#include <algorithm>
#include <string>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies::invokeai {
namespace {

// invokeai/backend/pid/decode.py@8e71a8a519 (PR #9460 constants; PR #9281's in the comments):
//   _PID_SR4X_BASE "sr_scale": 4, "patch_size": 16
//   _PER_BACKBONE latent_spatial_down_factor: Flux 8, Flux2 16, StableDiffusion3 8, StableDiffusionXL 8,
//                 QwenImage 8 (z_image_pid_decode passes BaseModelType.Flux)
//   _PID_ACTIVATION_CHUNK_SIZE = 1024
//   _PID_DECODE_WORKING_MEMORY_SCALING_CONSTANT = 260 (250 at 3f5588f21f)
//   _PID_DECODE_CHUNKED_SCALING_CONSTANT = 120, _PID_DECODE_CHUNKED_FIXED_BYTES = 224 * 2**20
constexpr std::uint64_t kSrScale = 4;
constexpr std::uint64_t kPatchSize = 16;
constexpr std::uint64_t kActivationChunkSize = 1024;
constexpr std::uint64_t kElementSize = 4;  // "PidNet runs in float32"

int latent_down_factor(const VaeWorkload& w) {
  switch (w.family) {
    case VaeFamily::flux1:
    case VaeFamily::z_image:
    case VaeFamily::sd3:
    case VaeFamily::sdxl:
    case VaeFamily::qwen_image:
      return 8;
    case VaeFamily::flux2:
      return 16;
    default:
      throw ConfigError("InvokeAI estimate_pid_decode_working_memory: PiD has no " + std::string(to_string(w.family)) +
                        " backbone (" + describe(w) + ")");
  }
}

}  // namespace

std::uint64_t pid_decode(const VaeWorkload& w, PidProfile profile) {
  validate(w);
  if (w.op != VaeOp::decode) {
    throw ConfigError("InvokeAI estimate_pid_decode_working_memory: PiD only decodes (" + describe(w) + ")");
  }
  const std::uint64_t total_up = kSrScale * static_cast<std::uint64_t>(latent_down_factor(w));
  const auto out_h = static_cast<std::uint64_t>(w.pixel_height);
  const auto out_w = static_cast<std::uint64_t>(w.pixel_width);
  if (out_h % total_up != 0 || out_w % total_up != 0) {
    throw ConfigError("InvokeAI estimate_pid_decode_working_memory: the output is latent size x " +
                      std::to_string(total_up) + "; height and width must be multiples of it (" + describe(w) + ")");
  }
  if (profile == PidProfile::pr9281) {
    // `int(out_h * out_w * element_size * _PID_DECODE_WORKING_MEMORY_SCALING_CONSTANT)` with constant 250.
    return out_h * out_w * kElementSize * 250;
  }
  const auto batch = static_cast<std::uint64_t>(w.batch);
  const std::uint64_t output_bytes = batch * out_h * out_w * kElementSize;
  const std::uint64_t unoptimized = output_bytes * 260;
  if (!w.memory_optimization) return unoptimized;
  const std::uint64_t patch_tokens = batch * (out_h / kPatchSize) * (out_w / kPatchSize);
  // "The pixel blocks take the unchunked path at and below the threshold."
  if (patch_tokens <= kActivationChunkSize) return unoptimized;
  const std::uint64_t chunked = output_bytes * 120 + 224 * MiB;
  // "Keep the unoptimized estimate until the formulas cross."
  return std::min(chunked, unoptimized);
}

}  // namespace offsim::policies::invokeai
