#include "offsim/policies/policy_registry.hpp"

#include "offsim/policies/invokeai_model_cache.hpp"
#include "offsim/policies/lightx2v_offload.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

template <typename Profiles, typename Make>
void add_family(std::vector<PolicyEntry>& out, Profiles profiles, Make make) {
  for (const auto& profile : profiles) {
    out.push_back({profile.id, profile.label, [&profile, make] { return make(profile); }});
  }
}

const std::vector<PolicyEntry>& registry() {
  static const std::vector<PolicyEntry> entries = [] {
    std::vector<PolicyEntry> out;
    add_family(out, invokeai_profiles(), make_invokeai_model_cache);
    add_family(out, lightx2v_profiles(), make_lightx2v_offload);
    return out;
  }();
  return entries;
}

}  // namespace

std::span<const PolicyEntry> all_policies() { return registry(); }

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
