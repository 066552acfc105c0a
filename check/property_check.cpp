#include "offsim/check/property_check.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include "offsim/check/case_generators.hpp"
#include "offsim/check/case_simplifier.hpp"
#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::check {

namespace {

std::string case_key(const std::string& policy, const GeneratedCase& c, bool with_min_capacity) {
  std::ostringstream key;
  key << policy << '|' << with_min_capacity << '|' << c.pipeline << '|' << c.decode.grid << '|' << c.decode.height << 'x'
      << c.decode.width << '|' << (c.encode ? 1 : 0) << '|' << c.capacity << '|' << c.context << '|' << c.other_processes
      << '|' << c.calls << '|' << c.denoise_steps << '|' << c.alloc_conf << '|' << c.torch << '|' << c.lightx2v_granularity
      << '|' << c.group_offload_leaf_level << c.group_offload_blocks_per_group;
  if (c.prior_stage) key << '|' << c.prior_stage->label << '@' << c.prior_stage->events << (c.prior_stage->keep_live ? 'k' : 'f');
  for (const PriorAllocation& a : c.prior) key << '|' << a.bytes << (a.keep ? 'k' : 'f');
  return key.str();
}

std::vector<std::string> classify(const CaseOutcome& o) {
  std::vector<std::string> tags;
  tags.push_back(o.feasible ? "feasible" : "infeasible");
  if (!o.run.completed) tags.push_back("ooms");
  // Caches evict; schedules offload: either moves weights off the device.
  const bool evicts = o.run.evictions > 0 || o.run.bytes_offloaded > 0;
  tags.push_back(evicts ? "evicts" : (o.run.completed ? "no-eviction" : "fails-without-eviction"));
  bool estimated = false, stranded = false, warm_above_cold = false;
  // The largest stage's need alone (its weights plus its cold working-memory peak), the quantity the
  // generator aims the capacity at; a stage-level "free before the stage" would depend on what the policy
  // chose to keep and hardly ever lands within 5%.
  std::uint64_t largest_need = 0;
  for (const policies::StageRecord& r : o.run.stages) {
    // How fragmented the states the search reached were (the fragmentation experiment reports these).
    stranded = stranded || r.stranded_before >= 64 * MiB;
    std::uint64_t need = 0;
    for (const std::string& id : o.scenario.stages.at(r.stage_index).models) need += o.scenario.model(id).manifest->total_bytes;
    if (r.has_working_memory && r.t_cold) {
      warm_above_cold = warm_above_cold || r.t_warm > *r.t_cold;
      if (r.decision.estimate) estimated = true;
      need += *r.t_cold;
    }
    largest_need = std::max(largest_need, need);
  }
  const sim::DeviceSpec& device = o.scenario.device;
  const std::uint64_t outside = device.context_bytes + device.other_process_bytes;
  const double usable = device.total_bytes > outside ? static_cast<double>(device.total_bytes - outside) : 0.0;
  const double need = static_cast<double>(largest_need);
  const bool near = need > 0 && std::fabs(usable - need) <= 0.05 * need;
  if (estimated) tags.push_back("estimated");
  if (near) tags.push_back("near-boundary");
  if (o.scenario.calls > 1) tags.push_back("multi-call");
  if (stranded) tags.push_back("stranded>=64MiB");
  if (warm_above_cold) tags.push_back("warm>cold");
  return tags;
}

std::string file_safe(std::string s) {
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.') ch = '_';
  }
  return s;
}

// RapidCheck prints "Using configuration: seed=<random>" to stderr the first time it reads its global
// configuration (RC_PARAMS), which checkProperty does to look up its `reproduce` map. offsim passes every
// parameter itself (the seed is --seed's), so that line, with a seed that is never used, reads as if the
// gate's seed were not fixed: read the configuration once with stderr muted. The CLI prints the seeds.
void load_rapidcheck_configuration_quietly() {
  static const bool loaded = [] {
    std::streambuf* const saved = std::cerr.rdbuf(nullptr);
    try {
      (void)rc::detail::configuration();
    } catch (...) {
      std::cerr.rdbuf(saved);
      throw;
    }
    std::cerr.rdbuf(saved);  // also clears the badbit a null buffer set
    return true;
  }();
  (void)loaded;
}

bool violated(PropertyId property, const policies::PropertyResult& p, bool feasible, const std::string& aspect,
              const std::vector<std::string>& excluded_aspects) {
  if (property == PropertyId::kP3 && !feasible) return false;  // no policy can run it: P3 does not apply
  if (p.verdict != policies::Verdict::kFail && p.verdict != policies::Verdict::kReported) return false;
  const auto listed = [&](const std::string& a) {
    return std::find(excluded_aspects.begin(), excluded_aspects.end(), a) != excluded_aspects.end();
  };
  // "fragmentation-only" qualifies a fragmentation fault (P1 and P2 held); it is not a fault of its own.
  const auto excluded = [&](const std::string& a) { return listed(a) || (a == "fragmentation-only" && listed("fragmentation")); };
  if (!excluded_aspects.empty() && !p.aspects.empty() && std::all_of(p.aspects.begin(), p.aspects.end(), excluded)) {
    return false;
  }
  return aspect.empty() || std::find(p.aspects.begin(), p.aspects.end(), aspect) != p.aspects.end();
}

}  // namespace

std::string_view to_string(PropertyId id) {
  static const char* names[] = {"P1", "P2", "P3", "P4", "P5"};
  return names[static_cast<int>(id)];
}

PropertyId parse_property(std::string_view text) {
  for (int i = 0; i < 5; ++i) {
    if (to_string(static_cast<PropertyId>(i)) == text) return static_cast<PropertyId>(i);
  }
  throw ConfigError("unknown property \"" + std::string(text) + "\" (P1, P2, P3, P4 or P5)");
}

std::string_view to_string(CheckOutcome outcome) {
  switch (outcome) {
    case CheckOutcome::kHolds: return "holds";
    case CheckOutcome::kViolated: return "violated";
    case CheckOutcome::kGaveUp: return "gave-up";
    case CheckOutcome::kError: return "error";
    case CheckOutcome::kNotStarted: return "not-started";
  }
  return "?";
}

CheckOutcome parse_check_outcome(std::string_view text) {
  for (CheckOutcome o : {CheckOutcome::kHolds, CheckOutcome::kViolated, CheckOutcome::kGaveUp, CheckOutcome::kError,
                         CheckOutcome::kNotStarted}) {
    if (to_string(o) == text) return o;
  }
  throw ConfigError("unknown check outcome \"" + std::string(text) + "\"");
}

std::vector<PropertyId> applicable_properties(const policies::PolicyInfo& info) {
  std::vector<PropertyId> out;
  if (!info.free_memory_formula.empty()) out.push_back(PropertyId::kP1);
  if (info.uses_estimates) out.push_back(PropertyId::kP2);
  out.push_back(PropertyId::kP3);
  out.push_back(PropertyId::kP4);
  if (info.uses_estimates) out.push_back(PropertyId::kP5);
  return out;
}

std::vector<std::string> required_classes(PropertyId id) {
  switch (id) {
    case PropertyId::kP1: return {"evicts", "no-eviction"};
    case PropertyId::kP2: return {"estimated"};
    case PropertyId::kP3: return {"feasible", "evicts", "near-boundary"};
    case PropertyId::kP4: return {"multi-call"};
    case PropertyId::kP5: return {"estimated"};
  }
  return {};
}

const CaseOutcome& OutcomeCache::get(const std::string& policy, const GeneratedCase& c, bool with_min_capacity) {
  const std::string key = case_key(policy, c, with_min_capacity);
  auto it = outcomes_.find(key);
  if (it != outcomes_.end()) return *it->second;
  auto outcome = std::make_unique<CaseOutcome>();
  outcome->scenario = to_scenario(c, root_);
  ++runs_;
  auto instance = policies::make_policy(policy);
  try {
    outcome->run = policies::run_policy(*instance, outcome->scenario);
  } catch (const ConfigError& e) {
    // A policy that cannot express the case (e.g. a granularity it lacks) fails nothing.
    outcome->run.policy = instance->info();
    outcome->run.completed = true;
    outcome->run.failure = std::string("not applicable: ") + e.what();
  }
  policies::PropertyOptions options;
  options.check_min_capacity = with_min_capacity;
  options.make_policy = [policy] { return policies::make_policy(policy); };
  if (outcome->run.failure.rfind("not applicable", 0) != 0) {
    outcome->report = policies::check_properties(outcome->scenario, outcome->run, options);
  }
  for (const policies::Stage& stage : outcome->scenario.stages) {
    if (!policies::fits_alone(outcome->scenario, stage)) {
      outcome->feasible = false;
      break;
    }
  }
  outcome->classes = classify(*outcome);
  return *outcomes_.emplace(key, std::move(outcome)).first->second;
}

PropertyCheckResult check_property(const std::string& policy, PropertyId property, const PropertyCheckOptions& options,
                                   OutcomeCache& cache, const GeneratorInputs& inputs) {
  const auto start = std::chrono::steady_clock::now();
  PropertyCheckResult result;
  result.policy = policy;
  result.property = property;
  result.seed = options.seed;
  std::optional<GeneratedCase> last_failure;  // RapidCheck's shrunk counterexample is the last failing case
  std::map<std::string, int> classes;

  const auto fails = [&](const GeneratedCase& c) -> const CaseOutcome* {
    const CaseOutcome& o = cache.get(policy, c, property == PropertyId::kP4);
    const policies::PropertyResult& p = o.report.results[static_cast<std::size_t>(property)];
    return violated(property, p, o.feasible, options.aspect, options.excluded_aspects) ? &o : nullptr;
  };
  const auto detail_of = [&](const CaseOutcome& o) {
    const policies::PropertyResult& p = o.report.results[static_cast<std::size_t>(property)];
    std::string detail = p.detail;
    if (!o.report.diagnosis.empty() && p.detail.find(o.report.diagnosis) == std::string::npos) {
      detail += " [" + o.report.diagnosis + "]";
    }
    return detail;
  };
  bool shrinking = false;  // after the first failure RapidCheck only shrinks: those are not generated cases
  const auto testable = [&](const GeneratedCase& c) {
    const CaseOutcome* failed = fails(c);
    if (!shrinking) {
      for (const std::string& tag : cache.get(policy, c, property == PropertyId::kP4).classes) ++classes[tag];
    }
    if (failed) {
      shrinking = true;
      last_failure = c;
      RC_FAIL(std::string(to_string(property)) + " violated: " + detail_of(*failed));
    }
  };
  rc::detail::TestParams params;
  params.seed = options.seed;
  params.maxSuccess = options.cases;
  params.maxSize = 100;
  params.disableShrinking = !options.shrink;
  rc::detail::TestMetadata metadata;
  metadata.id = policy + " " + std::string(to_string(property));
  metadata.description = metadata.id;
  // A silent listener: offsim prints its own report and replay command, not RapidCheck's.
  rc::detail::TestListenerAdapter listener;
  load_rapidcheck_configuration_quietly();
  const auto outcome = rc::detail::checkProperty(rc::detail::toProperty([&] {
                                                   const GeneratedCase c = *gen_case(inputs);
                                                   testable(c);
                                                 }),
                                                 metadata, params, listener);

  if (outcome.template is<rc::detail::SuccessResult>()) {
    result.outcome = CheckOutcome::kHolds;
    result.cases = outcome.template get<rc::detail::SuccessResult>().numSuccess;
    result.classes = classes;
  } else if (outcome.template is<rc::detail::FailureResult>()) {
    const auto& failure = outcome.template get<rc::detail::FailureResult>();
    result.outcome = last_failure ? CheckOutcome::kViolated : CheckOutcome::kError;
    result.cases = failure.numSuccess + 1;
    result.classes = classes;
    if (last_failure) {
      // RapidCheck never revisits a pick once a later one shrank: finish with the deterministic pass.
      const GeneratedCase simplest =
          options.shrink ? simplify(*last_failure, inputs, [&](const GeneratedCase& c) { return fails(c) != nullptr; })
                         : *last_failure;
      const CaseOutcome& o = cache.get(policy, simplest, property == PropertyId::kP4);
      result.failure = detail_of(o);
      std::ostringstream line;
      line << simplest;
      result.counterexample_case = line.str() + "\n";
      // The file names what it breaks, so that `offsim check --replay FILE` needs nothing retyped.
      policies::Scenario shrunk = o.scenario;
      shrunk.finding = policies::ScenarioFinding{policy, {}, std::string(to_string(property)), options.aspect, options.seed};
      result.counterexample = shrunk.to_json();
    } else {
      result.failure = failure.description;
    }
  } else if (outcome.template is<rc::detail::GaveUpResult>()) {
    result.outcome = CheckOutcome::kGaveUp;
    result.failure = "gave up: " + outcome.template get<rc::detail::GaveUpResult>().description;
  } else if (outcome.template is<rc::detail::Error>()) {
    result.outcome = CheckOutcome::kError;
    result.failure = "error: " + outcome.template get<rc::detail::Error>().description;
  }
  if (result.holds()) {
    for (const std::string& needed : required_classes(property)) {
      if (classes[needed] == 0) result.missing_classes.push_back(needed);
    }
  }
  if (result.counterexample && !options.counterexample_dir.empty()) {
    std::filesystem::create_directories(options.counterexample_dir);
    const std::filesystem::path file =
        options.counterexample_dir / (file_safe(policy) + "__" + std::string(to_string(property)) +
                                      (options.aspect.empty() ? "" : "." + options.aspect) + "__seed-" +
                                      std::to_string(options.seed) + ".json");
    sim::AtomicOutputFile out(file);
    out.write(result.counterexample->dump(1));
    out.write("\n");
    out.commit();
    result.counterexample_file = file.string();
    result.replay_command = "offsim check --replay " + file.string();  // policy and property are in the file
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

PropertyCheckResult check_property_on(const std::string& policy, PropertyId property, const policies::Scenario& scenario,
                                      const std::string& aspect, const std::vector<std::string>& excluded_aspects) {
  PropertyCheckResult result;
  result.policy = policy;
  result.property = property;
  result.cases = 1;
  policies::PropertyOptions options;
  options.make_policy = [policy] { return policies::make_policy(policy); };
  const policies::EvalResult eval = policies::evaluate(policy, scenario, options);
  bool feasible = true;
  for (const policies::Stage& stage : scenario.stages) feasible = feasible && policies::fits_alone(scenario, stage);
  const policies::PropertyResult& p = eval.properties.results[static_cast<std::size_t>(property)];
  const bool failed = violated(property, p, feasible, aspect, excluded_aspects);
  result.outcome = failed ? CheckOutcome::kViolated : CheckOutcome::kHolds;
  const std::string& diagnosis = eval.properties.diagnosis;
  if (failed) result.failure = p.detail + (diagnosis.empty() || p.detail.find(diagnosis) != std::string::npos ? "" : " [" + diagnosis + "]");
  return result;
}

}  // namespace offsim::check
