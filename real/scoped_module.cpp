#include "offsim/real/scoped_module.hpp"

namespace offsim::real {

void assign_scope_paths(torch::nn::Module& root, const std::string& root_name) {
  if (auto* scoped = dynamic_cast<ScopedModule*>(&root)) scoped->set_scope_path(root_name);
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (auto* scoped = dynamic_cast<ScopedModule*>(item.value().get())) scoped->set_scope_path(item.key());
  }
}

}  // namespace offsim::real
