// The common face of the libtorch VAEs: a pipeline's decode (latents -> image) and encode (image ->
// latents), each including the small latent (de)normalisation the diffusers pipelines do around
// `vae.decode` / `vae.encode`, so that a recording covers the whole stage an estimator is asked about.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "offsim/real/scoped_module.hpp"
#include "offsim/real/switches.hpp"
#include "offsim/real/vae_model.hpp"

namespace offsim::real {

class VaeModule : public ScopedModule {
 public:
  explicit VaeModule(const RealSwitches& switches) : switches_(switches) {}

  virtual torch::Tensor decode(const torch::Tensor& latents) = 0;
  virtual torch::Tensor encode(const torch::Tensor& image) = 0;
  /// Shapes for an image of `height` x `width` pixels (batch 1).
  virtual std::vector<std::int64_t> latent_shape(std::int64_t height, std::int64_t width) const = 0;
  virtual std::vector<std::int64_t> image_shape(std::int64_t height, std::int64_t width) const = 0;

  /// The switches every submodule reads at call time (changing them takes effect on the next call).
  RealSwitches& switches() noexcept { return switches_; }
  const RealSwitches& switches() const noexcept { return switches_; }

 private:
  RealSwitches switches_;
};

/// Builds the VAE with libtorch's default (random) initialisation, parameters in fp32 on the CPU, and
/// gives every submodule its scope path. Call `->to(device, dtype)` afterwards.
std::shared_ptr<VaeModule> make_vae(VaeModel model, const RealSwitches& switches);

std::uint64_t parameter_count(const torch::nn::Module& module);
std::uint64_t parameter_tensor_count(const torch::nn::Module& module);
torch::ScalarType to_scalar_type(Dtype dtype);

}  // namespace offsim::real
