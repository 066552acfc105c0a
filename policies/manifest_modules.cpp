#include "offsim/policies/manifest_modules.hpp"

#include <unordered_map>

namespace offsim::policies {

std::string module_of(const std::string& tensor_name) {
  const auto dot = tensor_name.rfind('.');
  return dot == std::string::npos ? std::string() : tensor_name.substr(0, dot);
}

std::vector<ManifestModule> manifest_modules(const ModelManifest& manifest, const std::vector<bool>& select) {
  std::vector<ManifestModule> modules;
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < manifest.tensors.size(); ++i) {
    if (!select.empty() && !select[i]) continue;
    const TensorSpec& t = manifest.tensors[i];
    std::string name = module_of(t.name);
    auto [it, inserted] = index.emplace(name, modules.size());
    if (inserted) modules.push_back(ManifestModule{std::move(name), {}, 0, {}});
    ManifestModule& m = modules[it->second];
    m.tensors.push_back(i);
    m.bytes += t.bytes;
  }
  // Enclosing modules that own tensors: "a.b.c" is inside "a.b", "a" and the root "".
  for (ManifestModule& m : modules) {
    if (m.name.empty()) continue;
    std::string prefix = m.name;
    while (true) {
      const auto dot = prefix.rfind('.');
      prefix = dot == std::string::npos ? std::string() : prefix.substr(0, dot);
      if (auto it = index.find(prefix); it != index.end()) m.ancestors.push_back(it->second);
      if (prefix.empty()) break;
    }
  }
  return modules;
}

}  // namespace offsim::policies
