#include "offsim/policies/model_weights.hpp"

#include "offsim/policies/out_of_memory.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

void ModelWeights::check_index(const char* call, std::size_t tensor) const {
  const std::size_t n = manifest().tensors.size();
  if (tensor >= n) {
    throw AllocatorUsageError(id_ + "." + call + "(" + std::to_string(tensor) + "): the model has " + std::to_string(n) +
                              " tensors");
  }
}

void ModelWeights::throw_oom() const { throw OutOfMemory(backend_->last_oom()); }

bool ModelWeights::on_device(std::size_t tensor) const {
  check_index("on_device", tensor);
  return model_->on_device(tensor);
}

std::uint64_t ModelWeights::load_all() {
  const auto loaded = model_->load_all(*backend_);
  if (!loaded) throw_oom();
  return *loaded;
}

std::uint64_t ModelWeights::unload_all(bool copy) { return model_->unload_all(*backend_, copy); }

std::uint64_t ModelWeights::load_up_to(std::int64_t budget) {
  const auto loaded = model_->load_up_to(*backend_, budget);
  if (!loaded) throw_oom();
  return *loaded;
}

std::uint64_t ModelWeights::unload_at_least(std::int64_t bytes, bool copy) {
  return model_->unload_at_least(*backend_, bytes, copy);
}

std::uint64_t ModelWeights::load_tensor(std::size_t tensor) {
  check_index("load_tensor", tensor);
  if (model_->on_device(tensor)) return 0;
  if (!model_->load(*backend_, tensor)) throw_oom();
  return manifest().tensors[tensor].bytes;
}

std::uint64_t ModelWeights::unload_tensor(std::size_t tensor, bool copy) {
  check_index("unload_tensor", tensor);
  if (!model_->on_device(tensor)) return 0;
  model_->unload(*backend_, tensor, copy);
  return manifest().tensors[tensor].bytes;
}

}  // namespace offsim::policies
