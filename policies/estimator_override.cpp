#include "offsim/policies/estimator_override.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "offsim/policies/calibration.hpp"
#include "offsim/policies/json_document.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::policies {

namespace {

using nlohmann::json;

constexpr const char* kOverrideFormat = "offsim-estimator-override/1";

// A bare number is a constant of the estimator's project's form: InvokeAI's C, ComfyUI's K.
FitForm default_form(const std::string& estimator) {
  return estimator.rfind("comfyui/", 0) == 0 ? FitForm::comfyui : FitForm::invokeai;
}

EstimatorOverride override_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError(where + ": an override is an object with estimator and constants");
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "estimator" && key != "form" && key != "constants" && key != "provenance") {
      throw ConfigError(where + ": unknown key \"" + key + "\" (format, estimator, form, constants, provenance)");
    }
  }
  EstimatorOverride o;
  if (!j.contains("estimator") || !j["estimator"].is_string()) throw ConfigError(where + ": no \"estimator\" id");
  o.estimator = j["estimator"].get<std::string>();
  const Estimator& original = find_estimator(o.estimator);
  if (original.domain.families.empty() || !original.passes_estimate) {
    throw ConfigError(where + ": " + o.estimator + " is not a VAE estimator that passes an estimate; only those take constants");
  }
  for (const char* key : {"form", "provenance"}) {
    if (j.contains(key) && !j[key].is_string()) throw ConfigError(where + ": \"" + key + "\" must be a string");
  }
  const FitForm form = j.contains("form") ? parse_fit_form(j["form"].get<std::string>()) : default_form(o.estimator);
  o.provenance = j.value("provenance", "");
  if (!j.contains("constants") || !j["constants"].is_object() || j["constants"].empty()) {
    throw ConfigError(where + ": \"constants\" must map decode/encode to {backend: constant}");
  }
  for (const auto& [op_name, by_backend] : j["constants"].items()) {
    const std::string at = where + " constants." + op_name;
    // Not a lambda: clang 14 (the fuzz preset's compiler) cannot capture a structured binding.
    VaeOp op{};
    try {
      op = parse_vae_op(op_name);
    } catch (const ConfigError& e) {
      throw ConfigError(at + ": " + e.what());
    }
    if (!by_backend.is_object() || by_backend.empty()) throw ConfigError(at + ": expected {backend: constant, ...}");
    for (const auto& [backend_name, value] : by_backend.items()) {
      const std::string at_backend = at + "." + backend_name;
      Backend backend;
      try {
        backend = parse_backend(backend_name);
      } catch (const ConfigError& e) {
        throw ConfigError(at_backend + ": " + e.what());
      }
      FittedEstimate fit = fitted_estimate_from_json(value, at_backend);
      if (value.is_number() || (value.is_object() && !value.contains("form"))) {
        const bool fixed = fit.fixed_bytes > 0;
        fit.form = fixed && form == FitForm::invokeai ? FitForm::invokeai_fixed : form;
        if (fixed && fit.form != FitForm::invokeai_fixed) throw ConfigError(at_backend + ": fixed_bytes needs an invokeai form");
      }
      if (fit.form != FitForm::piecewise && fit.constant == 0) throw ConfigError(at_backend + ": a constant of 0 estimates nothing");
      o.constants[{op, backend}] = fit;
    }
  }
  return o;
}

}  // namespace

std::vector<EstimatorOverride> estimator_overrides_from_json(const json& doc, const std::string& where) {
  std::vector<EstimatorOverride> out;
  const std::string format = doc.is_object() && doc.contains("format") && doc["format"].is_string() ? doc["format"].get<std::string>() : "";
  if (format == kOverrideFormat) {
    out.push_back(override_from_json(doc, where));
  } else if (format == "offsim-calibration/1") {
    if (!doc.contains("overrides") || !doc["overrides"].is_array() || doc["overrides"].empty()) {
      throw ConfigError(where + ": this calibrate output holds no \"overrides\" (none of its groups had a target estimator)");
    }
    for (std::size_t i = 0; i < doc["overrides"].size(); ++i) {
      out.push_back(override_from_json(doc["overrides"][i], where + " overrides[" + std::to_string(i) + "]"));
    }
  } else {
    throw ConfigError(where + ": expected \"format\": \"" + kOverrideFormat +
                      "\" or the output of `offsim calibrate --json` (offsim-calibration/1)");
  }
  return out;
}

std::vector<EstimatorOverride> read_estimator_overrides(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParseError(path.string(), 0, "cannot open estimator override");
  // JsonDocument: invalid JSON, 1e999 (nlohmann's out_of_range.406) and duplicate keys are named with
  // FILE:LINE:COLUMN instead of escaping as an internal error.
  const JsonDocument doc = JsonDocument::parse(std::string(std::istreambuf_iterator<char>(in), {}), path.string());
  std::vector<EstimatorOverride> out = estimator_overrides_from_json(doc.root(), path.string());
  for (EstimatorOverride& o : out) o.file = path.string();
  return out;
}

json to_json(const EstimatorOverride& o) {
  json constants = json::object();
  for (const auto& [key, fit] : o.constants) {
    constants[std::string(to_string(key.first))][std::string(to_string(key.second))] = to_json(fit);
  }
  return {{"estimator", o.estimator}, {"constants", constants}, {"provenance", o.provenance}};
}

std::vector<EstimatorOverride> overrides_from_calibration(const CalibrationReport& report,
                                                          const std::vector<std::string>& targets, FitForm invokeai_form) {
  std::vector<VaeFamily> models;
  for (const CalibrationGroup& g : report.groups) {
    if (std::find(models.begin(), models.end(), g.model) == models.end()) models.push_back(g.model);
  }
  // An estimator serves a VAE when its stated domain covers one of the calibrated points (PiD's decode, which
  // applies to the Qwen-Image backbone too, claims fp32 only and so does not serve its fp16 grids).
  auto serves = [&](const Estimator& e, VaeFamily model) {
    if (!e.passes_estimate) return false;
    for (const CalibrationGroup& g : report.groups) {
      if (g.model != model) continue;
      for (const CalibrationPoint& p : g.points) {
        if (e.domain.covers(Workload{workload_of(p)})) return true;
      }
    }
    return false;
  };
  std::vector<std::pair<std::string, VaeFamily>> chosen;
  if (targets.empty()) {
    for (const VaeFamily model : models) {
      for (const char* project : {"invokeai/", "comfyui/"}) {
        const Estimator* newest = nullptr;
        for (const Estimator& e : all_estimators()) {
          if (e.id.rfind(project, 0) == 0 && serves(e, model)) newest = &e;
        }
        if (newest != nullptr) chosen.emplace_back(newest->id, model);
      }
    }
  } else {
    for (const std::string& id : targets) {
      const Estimator& e = find_estimator(id);
      bool any = false;
      for (const VaeFamily model : models) {
        if (serves(e, model)) {
          chosen.emplace_back(id, model);
          any = true;
        }
      }
      if (!any) throw ConfigError("--target " + id + " estimates none of the calibrated VAEs");
    }
  }
  std::vector<EstimatorOverride> out;
  for (const auto& [id, model] : chosen) {
    const FitForm form = default_form(id) == FitForm::comfyui ? FitForm::comfyui : invokeai_form;
    EstimatorOverride o;
    o.estimator = id;
    std::size_t points = 0;
    std::vector<std::string> sources;
    for (const CalibrationGroup& g : report.groups) {
      if (g.model != model) continue;
      const auto it = std::find_if(g.forms.begin(), g.forms.end(), [&](const FormResult& r) { return r.form == form; });
      if (it == g.forms.end()) {
        throw ConfigError("estimator " + id + " takes the " + std::string(to_string(form)) + " form, which was not fitted (--form)");
      }
      o.constants[{g.op, g.backend}] = it->fit;
      points += g.points.size();
      for (const CalibrationPoint& p : g.points) {
        if (std::find(sources.begin(), sources.end(), p.source) == sources.end()) sources.push_back(p.source);
      }
    }
    o.provenance = "offsim calibrate, " + std::string(to_string(form)) + " form fitted to " + std::to_string(points) +
                   " measured peaks from";
    for (std::size_t i = 0; i < sources.size(); ++i) o.provenance += (i ? ", " : " ") + sources[i];
    out.push_back(std::move(o));
  }
  return out;
}

Estimator apply_override(const Estimator& original, const EstimatorOverride& o) {
  Estimator e = original;
  std::string pairs;
  for (const auto& [key, fit] : o.constants) {
    pairs += (pairs.empty() ? "" : "; ") + std::string(to_string(key.first)) + " " + std::string(to_string(key.second)) +
             " " + describe(fit);
  }
  e.label = original.label + " [constants overridden" + (o.file.empty() ? "" : " by " + o.file) + ": " + pairs + "]";
  e.domain.basis = original.domain.basis + (o.provenance.empty() ? "" : " Overridden constants: " + o.provenance);
  e.estimate = [id = original.id, domain = original.domain, fallback = original.estimate,
                constants = o.constants](const Workload& workload) -> std::optional<std::uint64_t> {
    const auto* vae = std::get_if<VaeWorkload>(&workload);
    if (vae == nullptr || vae->tile_size) return fallback(workload);  // calibrated forms are untiled
    const auto it = constants.find({vae->op, vae->backend});
    if (it == constants.end()) return fallback(workload);
    validate(*vae);
    if (!domain.applies_to(workload)) {
      throw ConfigError("estimator " + id + " does not apply to " + describe(workload) + ": " +
                        domain.why_not_covered(workload));
    }
    return estimate_bytes(it->second, *vae);  // per image, as both projects' VAE estimates are
  };
  return e;
}

ScopedEstimatorOverrides::ScopedEstimatorOverrides(const std::vector<EstimatorOverride>& overrides) {
  try {
    for (const EstimatorOverride& o : overrides) {
      originals_.push_back(replace_estimator(apply_override(find_estimator(o.estimator), o)));
    }
  } catch (...) {
    for (auto it = originals_.rbegin(); it != originals_.rend(); ++it) replace_estimator(std::move(*it));
    throw;
  }
}

ScopedEstimatorOverrides::~ScopedEstimatorOverrides() {
  // In reverse, so that two overrides of one id restore the registered estimator last.
  for (auto it = originals_.rbegin(); it != originals_.rend(); ++it) replace_estimator(std::move(*it));
}

}  // namespace offsim::policies
