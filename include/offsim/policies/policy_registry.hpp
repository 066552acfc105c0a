// Every policy offsim knows, by id. Adding a policy to offsim: one file that implements Policy and exports
// its profiles, plus one line in policies/policy_registry.cpp. A policy written outside offsim is added at
// run time with register_policy() (examples/evict_others_first).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "offsim/policies/policy.hpp"

namespace offsim::policies {

struct PolicyEntry {
  std::string id;
  std::string label;
  /// The newest profile of its family (what `offsim check` gates by default); older profiles stay for
  /// the known-bug corpus and comparisons.
  bool latest = false;
  std::function<std::unique_ptr<Policy>()> make;
};

std::span<const PolicyEntry> all_policies();
/// Adds a policy written outside offsim, after offsim's own: call it at the start of main(), before
/// anything lists or makes policies (the registry is not locked). Throws ConfigError for an empty id, a
/// missing factory, or an id that is taken.
void register_policy(PolicyEntry entry);
/// Removes a policy register_policy() added (a Python policy once its run is over); false when no registered
/// policy has that id. offsim's own policies cannot be removed.
bool unregister_policy(std::string_view id);
/// A fresh instance (policies hold per-run state). Throws ConfigError listing the known ids.
std::unique_ptr<Policy> make_policy(std::string_view id);
/// Ids matching `pattern`: an exact id, or a family prefix such as "invokeai" (all its profiles).
std::vector<std::string> match_policies(std::string_view pattern);

}  // namespace offsim::policies
