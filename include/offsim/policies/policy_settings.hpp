// What a scenario's policy_settings may hold: for each policy family, the settings its policy reads (in
// its read_settings, e.g. policies/invokeai_model_cache.cpp), with type and range. A scenario is checked
// against this when it is read, so that a misspelt family ("invokeia"), key ("device_working_mem_gbb") or
// an absurd value (-3 GB, 2^62 blocks per group) is refused with the file, line and field, instead of
// being ignored or wrapped when the policy runs. A new policy family of offsim's adds its settings here; a
// family registered at run time (register_policy) is accepted without a schema: its policy reads them.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "offsim/policies/json_fields.hpp"

namespace offsim::policies {

struct PolicySetting {
  enum class Kind { kBool, kNumber, kInteger, kString, kStrings };
  std::string_view name;
  Kind kind = Kind::kBool;
  double min = 0;  // kNumber, kInteger: the allowed range
  double max = 0;
  std::vector<std::string_view> choices;  // kString: the allowed values (empty: any string)
  bool nullable = false;                  // null means the upstream default None (max_vram_cache_gb)
  std::string_view meaning;
};

struct PolicyFamilySettings {
  std::string_view family;  // PolicyInfo::family
  std::vector<PolicySetting> settings;
};

/// Every family offsim's policies belong to, with the settings each reads (possibly none).
std::span<const PolicyFamilySettings> policy_settings_schema();

/// Checks scenario.policy_settings (`settings` is that object): offsim's families, known keys, types and
/// ranges; another family only if a policy in the registry (all_policies()) has it, and then only that
/// its settings are an object. Throws ParseError naming the file, line and field.
void validate_policy_settings(const JsonFields& settings);

}  // namespace offsim::policies
