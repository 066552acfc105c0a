// Which VAE, which operation, which dtype: the names `offsim record` takes, and the published facts the
// tests hold the libtorch modules to. Torch-free, so the command line and reports can use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace offsim::real {

enum class VaeModel : std::uint8_t {
  kSd15,       // AutoencoderKL, SD1.5 config (4 latent channels, quant convs, scaling 0.18215)
  kSdxl,       // AutoencoderKL, SDXL config (same weights layout, scaling 0.13025)
  kFlux1,      // AutoencoderKL, FLUX.1 config (16 latent channels, no quant convs, scale 0.3611 shift 0.1159)
  kQwenImage,  // AutoencoderKLQwenImage (Wan-2.1 causal 3D VAE, z 16), decoding one frame
};
enum class VaeOp : std::uint8_t { kDecode, kEncode };
enum class Dtype : std::uint8_t { kFloat32, kBFloat16, kFloat16 };

std::string_view to_string(VaeModel model);  // "sd15-vae", "sdxl-vae", "flux1-vae", "qwen-image-vae"
std::string_view to_string(VaeOp op);        // "decode", "encode"
std::string_view to_string(Dtype dtype);     // "fp32", "bf16", "fp16"
std::optional<VaeModel> parse_vae_model(std::string_view text);
std::optional<VaeOp> parse_vae_op(std::string_view text);
std::optional<Dtype> parse_dtype(std::string_view text);
std::uint64_t element_size(Dtype dtype);

struct VaeFacts {
  /// Parameter count of the published checkpoint (all of encoder, decoder, quant convs).
  std::uint64_t parameter_count;
  /// Where that number comes from.
  std::string_view parameter_count_source;
  /// Parameter tensors in the checkpoint when known (0 when not stated by the source).
  std::uint64_t parameter_tensors;
  std::int64_t latent_channels;
  std::int64_t spatial_factor;  // image pixels per latent pixel along each axis
  bool video_layout;            // tensors are (B, C, T, H, W)
};
const VaeFacts& facts(VaeModel model);

}  // namespace offsim::real
