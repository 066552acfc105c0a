#include "offsim/real/recording.hpp"

namespace offsim::real {

const char* to_string(KernelKind kind) {
  switch (kind) {
    case KernelKind::kConvolution: return "convolution";
    case KernelKind::kGemm: return "gemm";
    case KernelKind::kInterpolate: return "interpolate";
    case KernelKind::kFusedAttention: return "fused-attention";
  }
  return "?";
}

std::string Recording::scope_path(std::uint32_t scope) const {
  if (scope == kRootScope || scope >= scopes.size()) return "";
  const ScopeRecord& record = scopes[scope];
  if (!record.kernel) return record.name;
  const std::string parent = scope_path(record.parent);
  return parent.empty() ? record.name : parent + " > " + record.name;
}

bool Recording::is_within(std::uint32_t scope, std::uint32_t ancestor) const {
  while (true) {
    if (scope == ancestor) return true;
    if (scope == kRootScope || scope >= scopes.size()) return false;
    scope = scopes[scope].parent;
  }
}

std::optional<std::uint32_t> Recording::enclosing_kernel(std::uint32_t scope) const {
  std::optional<std::uint32_t> found;
  while (scope != kRootScope && scope < scopes.size()) {
    if (scopes[scope].kernel) found = scope;
    scope = scopes[scope].parent;
  }
  return found;
}

std::optional<std::uint32_t> Recording::find_scope(const std::string& name) const {
  for (std::uint32_t i = 1; i < scopes.size(); ++i) {
    if (scopes[i].name == name) return i;
  }
  return std::nullopt;
}

}  // namespace offsim::real
