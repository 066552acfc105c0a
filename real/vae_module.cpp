#include "offsim/real/vae_module.hpp"

#include "offsim/real/autoencoder_kl.hpp"
#include "offsim/real/qwen_image_vae.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {

std::shared_ptr<VaeModule> make_vae(VaeModel model, const RealSwitches& switches) {
  std::shared_ptr<VaeModule> vae;
  if (model == VaeModel::kQwenImage) {
    vae = std::make_shared<AutoencoderKLQwenImage>(QwenImageVaeConfig{}, switches);
  } else {
    vae = std::make_shared<AutoencoderKL>(autoencoder_kl_config(model), switches);
  }
  vae->eval();
  assign_scope_paths(*vae, "");
  return vae;
}

std::uint64_t parameter_count(const torch::nn::Module& module) {
  std::uint64_t count = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) count += static_cast<std::uint64_t>(p.numel());
  return count;
}

std::uint64_t parameter_tensor_count(const torch::nn::Module& module) {
  return module.parameters(/*recurse=*/true).size();
}

torch::ScalarType to_scalar_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32: return torch::kFloat;
    case Dtype::kBFloat16: return torch::kBFloat16;
    case Dtype::kFloat16: return torch::kHalf;
  }
  throw Error("unknown dtype");
}

}  // namespace offsim::real
