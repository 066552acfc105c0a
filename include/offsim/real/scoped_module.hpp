// Base of every VAE module: a torch::nn::Module that knows its dotted path in the model ("decoder.
// up_blocks.3.resnets.0", the diffusers state-dict prefix) so its forward can open a ModuleScope with it.
#pragma once

#include <string>

#include <torch/nn/module.h>

namespace offsim::real {

class ScopedModule : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  const std::string& scope_path() const noexcept { return scope_path_; }
  void set_scope_path(std::string path) { scope_path_ = std::move(path); }

 private:
  std::string scope_path_;
};

/// Gives every ScopedModule below `root` (and `root` itself, as `root_name`) its dotted path.
void assign_scope_paths(torch::nn::Module& root, const std::string& root_name);

}  // namespace offsim::real
