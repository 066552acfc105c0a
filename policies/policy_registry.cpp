#include "offsim/policies/policy_registry.hpp"

#include <algorithm>

#include "offsim/policies/comfyui_model_management.hpp"
#include "offsim/policies/diffusers_offload.hpp"
#include "offsim/policies/invokeai_model_cache.hpp"
#include "offsim/policies/lightx2v_offload.hpp"
#include "offsim/policies/lookahead_policy.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

// Registers every profile of a family; `latest` names the ones `offsim check` gates by default (empty:
// every profile counts as current).
template <typename Profiles, typename Make>
void add_family(std::vector<PolicyEntry>& out, Profiles profiles, Make make, std::vector<std::string> latest = {}) {
  for (const auto& profile : profiles) {
    const bool current = latest.empty() || std::find(latest.begin(), latest.end(), profile.id) != latest.end();
    out.push_back({profile.id, profile.label, current, [&profile, make] { return make(profile); }});
  }
}

// offsim's own policies come first in the registry; register_policy() appends after them.
std::size_t builtin_count = 0;

std::vector<PolicyEntry>& registry() {
  static std::vector<PolicyEntry> entries = [] {
    std::vector<PolicyEntry> out;
    add_family(out, invokeai_profiles(), make_invokeai_model_cache, {"invokeai@8e71a8a5", "invokeai-smart@00f5ba9f"});
    add_family(out, lightx2v_profiles(), make_lightx2v_offload, {"lightx2v@c177fd82"});
    add_family(out, comfyui_profiles(), make_comfyui_model_management, {"comfyui@a125cd84"});
    add_family(out, diffusers_profiles(), make_diffusers_offload);
    add_family(out, lookahead_profiles(), make_lookahead_policy);
    builtin_count = out.size();
    return out;
  }();
  return entries;
}

}  // namespace

std::span<const PolicyEntry> all_policies() { return registry(); }

void register_policy(PolicyEntry entry) {
  if (entry.id.empty()) throw ConfigError("register_policy: a policy needs an id (\"family@version\")");
  if (!entry.make) throw ConfigError("register_policy: policy \"" + entry.id + "\" has no factory (make)");
  for (const PolicyEntry& e : registry()) {
    if (e.id == entry.id) throw ConfigError("register_policy: policy id \"" + entry.id + "\" is taken");
  }
  registry().push_back(std::move(entry));
}

bool unregister_policy(std::string_view id) {
  auto& entries = registry();
  const auto first = entries.begin() + static_cast<std::ptrdiff_t>(builtin_count);
  const auto it = std::find_if(first, entries.end(), [&](const PolicyEntry& e) { return e.id == id; });
  if (it == entries.end()) return false;
  entries.erase(it);
  return true;
}

std::unique_ptr<Policy> make_policy(std::string_view id) {
  std::string known;
  for (const PolicyEntry& e : registry()) {
    if (e.id == id) return e.make();
    known += (known.empty() ? "" : ", ") + e.id;
  }
  throw ConfigError("unknown policy \"" + std::string(id) + "\" (known: " + known + ")");
}

std::vector<std::string> match_policies(std::string_view pattern) {
  std::vector<std::string> out;
  for (const PolicyEntry& e : registry()) {
    const bool family = e.id.size() > pattern.size() && e.id.compare(0, pattern.size(), pattern) == 0 &&
                        (e.id[pattern.size()] == '@' || e.id[pattern.size()] == '-');
    if (e.id == pattern || family) out.push_back(e.id);
  }
  if (out.empty()) (void)make_policy(pattern);  // throws with the list of known ids
  return out;
}

}  // namespace offsim::policies
