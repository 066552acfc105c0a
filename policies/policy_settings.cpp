#include "offsim/policies/policy_settings.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "offsim/policies/policy_registry.hpp"

namespace offsim::policies {

namespace {

using Kind = PolicySetting::Kind;

// Gigabyte settings: up to 1 PiB, beyond any device; block counts: up to 2^20, beyond any model.
constexpr double kMaxGb = 1048576;
constexpr double kMaxBlocks = 1048576;

PolicySetting flag(std::string_view name, std::string_view meaning) { return {name, Kind::kBool, 0, 0, {}, false, meaning}; }
PolicySetting gigabytes(std::string_view name, std::string_view meaning, bool nullable = false) {
  return {name, Kind::kNumber, 0, kMaxGb, {}, nullable, meaning};
}
PolicySetting choice(std::string_view name, std::vector<std::string_view> choices, std::string_view meaning) {
  return {name, Kind::kString, 0, 0, std::move(choices), false, meaning};
}
PolicySetting model_ids(std::string_view name, std::string_view meaning) {
  return {name, Kind::kStrings, 0, 0, {}, false, meaning};
}

// The families of the policies in the registry now, offsim's own and those registered at run time
// (register_policy: a C++ policy written outside offsim, a Python cache). Asked only for a family the
// schema lacks, since it makes an instance of every policy.
std::vector<std::string> registered_families() {
  std::vector<std::string> out;
  for (const PolicyEntry& e : all_policies()) {
    std::string family = e.make()->info().family;
    if (std::find(out.begin(), out.end(), family) == out.end()) out.push_back(std::move(family));
  }
  return out;
}

}  // namespace

std::span<const PolicyFamilySettings> policy_settings_schema() {
  static const std::vector<PolicyFamilySettings> schema = {
      // policies/invokeai_model_cache.cpp read_settings (InvokeAI's config_default.py names).
      {"invokeai",
       {gigabytes("device_working_mem_gb", "default working memory reserved when a call site passes none (3)"),
        flag("enable_partial_loading", "partial loading of models larger than the free memory"),
        flag("keep_ram_copy_of_weights", "keep a CPU copy so that offloading is a pointer swap"),
        flag("device_working_mem_raised", "the user raised device_working_mem_gb (smart cache floor)"),
        gigabytes("max_vram_cache_gb", "cap on the cache's device bytes; null: no cap (upstream None)", true),
        model_ids("full_load_only", "models wrapped as CachedModelOnlyFullLoad")}},
      // policies/comfyui_model_management.cpp read_settings (ComfyUI's command-line flags).
      {"comfyui",
       {choice("vram_state", {"normal", "low", "high", "no"}, "--lowvram / --highvram / --novram"),
        gigabytes("reserve_vram_gb", "--reserve-vram"),
        flag("windows", "the Windows extra reserve of model_management.py"),
        flag("disable_smart_memory", "--disable-smart-memory")}},
      // policies/lightx2v_offload.cpp read_settings (LightX2V's config keys).
      {"lightx2v",
       {flag("cpu_offload", "cpu_offload of the transformer"),
        choice("offload_granularity", {"model", "block", "phase"}, "offload_granularity"),
        {"model_cls", Kind::kString, 0, 0, {}, false, "model class, e.g. flux2_klein, qwen_image"},
        flag("text_encoder_cpu_offload", "t5/text encoder offload (defaults to cpu_offload)"),
        flag("vae_cpu_offload", "VAE offload"),
        gigabytes("empty_cache_min_free_gib", "maybe_empty_cache empties only below this free memory (4)"),
        gigabytes("empty_cache_min_reclaimable_gib", "... and with at least this much reclaimable (2)")}},
      // policies/diffusers_offload.cpp read_settings (pipeline and apply_group_offloading arguments).
      {"diffusers",
       {model_ids("model_cpu_offload_seq", "the pipeline class's model_cpu_offload_seq, as model ids"),
        model_ids("exclude_from_cpu_offload", "_exclude_from_cpu_offload (model and sequential offload)"),
        model_ids("exclude_modules", "exclude_modules (group offload)"),
        {"accelerate", Kind::kString, 0, 0, {}, false, "accelerate version, e.g. \"1.10\""},
        choice("offload_type", {"block_level", "leaf_level"}, "apply_group_offloading offload_type"),
        {"num_blocks_per_group", Kind::kInteger, 1, kMaxBlocks, {}, false, "apply_group_offloading num_blocks_per_group"},
        flag("use_stream", "apply_group_offloading use_stream"),
        flag("record_stream", "apply_group_offloading record_stream")}},
      // policies/lookahead_policy.cpp reads no settings.
      {"lookahead", {}},
  };
  return schema;
}

void validate_policy_settings(const JsonFields& settings) {
  std::vector<std::string_view> families;
  for (const PolicyFamilySettings& f : policy_settings_schema()) families.push_back(f.family);
  for (const auto& [family, value] : settings.value().items()) {
    const PolicyFamilySettings* schema = nullptr;
    for (const PolicyFamilySettings& f : policy_settings_schema()) {
      if (f.family == family) schema = &f;
    }
    if (schema == nullptr) {
      // Not one of offsim's families: a policy registered at run time may read it (its settings are its
      // own to check); anything else is a typo or a policy that is not there.
      const std::vector<std::string> registered = registered_families();
      if (std::find(registered.begin(), registered.end(), family) != registered.end()) {
        if (!value.is_object()) settings.fail(family, "must be an object (the settings of the " + family + " policies)");
        continue;
      }
      for (const std::string& r : registered) {
        if (std::find(families.begin(), families.end(), r) == families.end()) families.push_back(r);
      }
      settings.fail(family, "unknown policy family" + did_you_mean(family, families));
    }
    std::vector<std::string_view> keys, nullable;
    for (const PolicySetting& s : schema->settings) {
      keys.push_back(s.name);
      if (s.nullable) nullable.push_back(s.name);
    }
    if (keys.empty()) {
      if (!value.is_object() || !value.empty()) settings.fail(family, "must be {}: the " + family + " policies read no settings");
      continue;
    }
    const JsonFields f = settings.object(family, keys, nullable);
    for (const PolicySetting& s : schema->settings) {
      if (!f.has(s.name)) continue;
      switch (s.kind) {
        case Kind::kBool: (void)f.boolean(s.name); break;
        case Kind::kNumber: (void)f.number(s.name, s.min, s.max); break;
        case Kind::kInteger:
          (void)f.integer(s.name, static_cast<std::int64_t>(s.min), static_cast<std::int64_t>(s.max));
          break;
        case Kind::kStrings: (void)f.strings(s.name); break;
        case Kind::kString: {
          const std::string v = f.string(s.name);
          if (!s.choices.empty() && std::find(s.choices.begin(), s.choices.end(), v) == s.choices.end()) {
            f.fail(s.name, "unknown value \"" + v + "\"" + did_you_mean(v, s.choices));
          }
          break;
        }
      }
    }
  }
}

}  // namespace offsim::policies
