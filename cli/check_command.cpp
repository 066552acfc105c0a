// `offsim check`: the CI gate. Generated scenarios (fixed seeds) against P1-P5 for the selected
// policies, a time budget, exit code 0/1, JUnit XML, one command to replay any failure; --corpus runs the
// known-bug corpus (each buggy variant must be found, each fixed one must pass); --shard I/N spreads the
// work over machines and --merge joins their JSON results.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include "commands.hpp"
#include "estimator_override_option.hpp"
#include "offsim/check/corpus.hpp"
#include "offsim/check/gate.hpp"
#include "offsim/check/junit_report.hpp"
#include "offsim/policies/decision_log.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/errors.hpp"
#include "progress.hpp"
#include "repository_root.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

namespace fs = std::filesystem;
using namespace offsim::check;

struct CheckOptions {
  std::vector<std::string> policies;
  std::vector<std::string> properties;
  std::string aspect;
  std::uint64_t seed = 20261126;
  int seeds = 1;
  int cases = 60;
  double time_budget = 150;
  std::string shard;
  std::string junit;
  std::string json;
  std::string out = "offsim-check";
  std::string root;
  std::string replay;
  std::vector<std::string> merge;
  std::vector<std::string> pipelines;
  std::vector<std::string> alloc_confs;
  std::vector<std::string> torch_versions;
  bool corpus = false;
  bool quiet = false;
  std::string decisions;  // --decisions LOG (decision-log mode)
  std::vector<std::string> estimator_overrides;  // --estimator-override FILE
};

std::vector<std::uint64_t> seed_list(const CheckOptions& o) {
  std::vector<std::uint64_t> seeds;
  for (int i = 0; i < o.seeds; ++i) seeds.push_back(o.seed + static_cast<std::uint64_t>(i));
  return seeds;
}

void write_file(const std::string& path, const std::string& text) {
  sim::AtomicOutputFile out(path);
  out.write(text);
  out.commit();
}

nlohmann::json check_json(const PropertyCheckResult& c) {
  return {{"policy", c.policy}, {"property", to_string(c.property)}, {"seed", c.seed}, {"cases", c.cases},
          {"outcome", to_string(c.outcome)}, {"ok", c.ok()}, {"classes", c.classes}, {"missing_classes", c.missing_classes},
          {"failure", c.failure}, {"counterexample_case", c.counterexample_case},
          {"counterexample_file", c.counterexample_file}, {"replay", c.replay_command}, {"seconds", c.seconds}};
}

PropertyCheckResult check_from_json(const nlohmann::json& j) {
  PropertyCheckResult c;
  c.policy = j.at("policy").get<std::string>();
  c.property = parse_property(j.at("property").get<std::string>());
  c.seed = j.at("seed").get<std::uint64_t>();
  c.cases = j.at("cases").get<int>();
  c.outcome = parse_check_outcome(j.at("outcome").get<std::string>());
  c.classes = j.at("classes").get<std::map<std::string, int>>();
  c.missing_classes = j.at("missing_classes").get<std::vector<std::string>>();
  c.failure = j.at("failure").get<std::string>();
  c.counterexample_case = j.at("counterexample_case").get<std::string>();
  c.counterexample_file = j.at("counterexample_file").get<std::string>();
  c.replay_command = j.at("replay").get<std::string>();
  c.seconds = j.at("seconds").get<double>();
  return c;
}

void print_checks(const std::vector<PropertyCheckResult>& checks) {
  Table table({"policy", "property", "seed", "cases", "result", "coverage"});
  for (const PropertyCheckResult& c : checks) {
    std::string coverage;
    for (const auto& [name, n] : c.classes) coverage += name + ":" + std::to_string(n) + " ";
    const char* verdict = c.ok()                                ? "pass"
                          : c.outcome == CheckOutcome::kNotStarted ? "NOT RUN"
                          : c.blocks_gate()                      ? "FAIL"
                                                                 : "over";
    table.add({c.policy, std::string(to_string(c.property)), std::to_string(c.seed), std::to_string(c.cases), verdict,
               coverage});
  }
  table.print(std::cout);
  for (const PropertyCheckResult& c : checks) {
    if (c.ok()) continue;
    std::cout << "\n" << c.policy << " " << to_string(c.property) << " (seed " << c.seed << "): "
              << (c.holds() ? "not exercised: generated no case of class" : c.failure);
    for (const std::string& m : c.missing_classes) std::cout << " " << m;
    std::cout << "\n";
    if (!c.counterexample_case.empty()) std::cout << "  shrunk case: " << c.counterexample_case;
    if (!c.replay_command.empty()) std::cout << "  replay: " << c.replay_command << "\n";
  }
}

// Re-checks one stored scenario. The policy, property and aspect default to what the file's "finding"
// records (every counterexample `offsim check` writes has one); --policy takes ids and family names as
// everywhere else, and each selected policy is checked.
int run_replay(const CheckOptions& o, const fs::path& root) {
  const policies::Scenario scenario = policies::Scenario::load(o.replay, root);
  const std::optional<policies::ScenarioFinding>& finding = scenario.finding;
  std::vector<std::string> policy_ids;
  for (const std::string& p : o.policies) {
    for (std::string& id : from_command_line([&] { return policies::match_policies(p); })) policy_ids.push_back(std::move(id));
  }
  if (policy_ids.empty() && finding) {
    policy_ids.push_back(finding->policy);
    policy_ids.insert(policy_ids.end(), finding->also.begin(), finding->also.end());
  }
  if (o.properties.size() > 1) throw UsageError("--replay checks one --property at a time");
  std::string property_name = o.properties.empty() ? (finding ? finding->property : "") : o.properties[0];
  if (policy_ids.empty() || property_name.empty()) {
    throw UsageError("--replay " + o.replay + ": the file records no \"finding\" (policy and property it breaks): give " +
                     "--policy and --property");
  }
  const PropertyId property = from_command_line([&] { return parse_property(property_name); });
  const std::string aspect = !o.aspect.empty() || !o.properties.empty() || !finding ? o.aspect : finding->aspect;
  bool all_hold = true;
  for (const std::string& id : policy_ids) {
    const PropertyCheckResult r = check_property_on(id, property, scenario, aspect);
    std::cout << id << " " << to_string(property) << (aspect.empty() ? "" : "." + aspect) << " on " << o.replay << ": "
              << (r.holds() ? "holds" : "VIOLATED: " + r.failure) << "\n";
    all_hold = all_hold && r.holds();
  }
  return all_hold ? kExitOk : kExitFailed;
}

// What a search or a replay checked, for --json (docs/check_json.md).
nlohmann::json checks_json(const std::vector<PropertyCheckResult>& checks) {
  nlohmann::json out = nlohmann::json::array();
  for (const PropertyCheckResult& c : checks) out.push_back(check_json(c));
  return out;
}

nlohmann::json corpus_json(const std::vector<CorpusResult>& results, const CorpusOptions& options, bool ok) {
  nlohmann::json entries = nlohmann::json::array();
  for (const CorpusResult& r : results) {
    const CorpusEntry& e = *r.entry;
    nlohmann::json exceptions = nlohmann::json::array();
    for (const FixedException& x : e.fixed_exceptions) {
      exceptions.push_back({{"property", std::string(to_string(x.property)) + (x.aspect.empty() ? "" : "." + x.aspect)},
                            {"why", x.why}});
    }
    nlohmann::json fixed = checks_json(r.fixed_searches);
    for (std::size_t i = 0; i < r.fixed_searches.size(); ++i) {
      fixed[i]["fails_entry"] = r.fixed_fails(r.fixed_searches[i]);
      fixed[i]["excuse"] = r.fixed_excuse(r.fixed_searches[i]).value_or("");
    }
    nlohmann::json fixed_replays = checks_json(r.fixed_replays);
    for (std::size_t i = 0; i < r.fixed_replays.size(); ++i) {
      fixed_replays[i]["fails_entry"] = r.fixed_replay_fails(r.fixed_replays[i]);
      fixed_replays[i]["excuse"] = r.fixed_excuse(r.fixed_replays[i]).value_or("");
    }
    entries.push_back({{"bug", e.bug},
                       {"file", e.file},
                       {"property", std::string(to_string(e.property)) + (e.aspect.empty() ? "" : "." + e.aspect)},
                       {"buggy", e.buggy},
                       {"fixed", e.fixed},
                       {"fixed_exceptions", exceptions},
                       {"detected", r.detected()},
                       {"ok", r.ok()},
                       {"buggy_searches", checks_json(r.buggy_searches)},
                       {"fixed_searches", fixed},
                       {"buggy_replays", checks_json(r.buggy_replays)},
                       {"fixed_replays", fixed_replays}});
  }
  return {{"format", "offsim-corpus/1"}, {"seeds", options.seeds}, {"cases", options.cases}, {"ok", ok},
          {"entries", entries}};
}

std::string seeds_text(const std::vector<std::uint64_t>& seeds) {
  return seeds.size() == 1 ? "seed " + std::to_string(seeds[0])
                           : std::to_string(seeds.size()) + " seeds " + std::to_string(seeds.front()) + ".." +
                                 std::to_string(seeds.back());
}

int run_corpus_mode(const CheckOptions& o, const fs::path& root) {
  const std::vector<CorpusEntry> entries = load_corpus(root);
  if (entries.empty()) {
    std::cout << "corpus: FAILED: no entry in " << (root / "tests/corpus").string() << ": nothing was checked\n";
    return kExitFailed;
  }
  CorpusOptions options;
  options.seeds = seed_list(o);
  options.cases = o.cases;
  options.root = root;
  options.counterexample_dir = o.out;
  std::cout << "corpus: " << entries.size() << " entries, " << seeds_text(options.seeds) << " (fixed: every run draws the "
            << "same cases; --seed changes it), " << o.cases << " cases per search; counterexamples go to " << o.out
            << "/ (--out)\n\n";
  Progress progress("check --corpus (entry x seed)", 0, o.quiet);
  options.progress = [&progress](std::size_t done, std::size_t total) { progress.update(done, total); };
  const std::vector<CorpusResult> results = run_corpus(entries, options);
  progress.finish();
  Table table({"bug", "property", "buggy variant", "detected", "fixed variant", "fixed: every property", "reported",
               "stored scenarios"});
  bool ok = true;
  for (const CorpusResult& r : results) {
    std::size_t fixed_ok = 0, reported = 0;
    for (const PropertyCheckResult& f : r.fixed_searches) {
      fixed_ok += r.fixed_fails(f) ? 0 : 1;
      reported += r.fixed_excuse(f) ? 1 : 0;
    }
    std::size_t stored_ok = 0;
    for (const PropertyCheckResult& b : r.buggy_replays) {
      bool fixed_holds = true;
      for (const PropertyCheckResult& f : r.fixed_replays) {
        if (f.counterexample_file == b.counterexample_file) fixed_holds = fixed_holds && !r.fixed_replay_fails(f);
      }
      stored_ok += (b.violated() && fixed_holds) ? 1 : 0;
    }
    const std::string property =
        std::string(to_string(r.entry->property)) + (r.entry->aspect.empty() ? "" : "." + r.entry->aspect);
    table.add({r.entry->bug, property, r.entry->buggy,
               std::to_string(r.detected()) + "/" + std::to_string(r.buggy_searches.size()), r.entry->fixed,
               std::to_string(fixed_ok) + "/" + std::to_string(r.fixed_searches.size()), std::to_string(reported),
               std::to_string(stored_ok) + "/" + std::to_string(r.buggy_replays.size())});
    ok = ok && r.ok();
  }
  table.print(std::cout);
  std::cout << "(detected: seeds whose search shrank a counterexample of the entry's property; fixed: searches of every "
               "property that applies to the fixed variant, per seed, that hold; reported: P5 over-estimates and "
               "violations the entry excuses, with why)\n";
  for (const CorpusResult& r : results) {
    for (const PropertyCheckResult& f : r.fixed_searches) {
      if (const auto excuse = r.fixed_excuse(f)) {
        std::cout << "\n" << r.entry->bug << " fixed " << r.entry->fixed << " " << to_string(f.property) << " (seed "
                  << f.seed << "): " << *excuse << "\n  " << f.failure << "\n";
      }
    }
    if (r.ok()) continue;
    std::cout << "\n" << r.entry->bug << " (" << r.entry->file << ") did not behave as expected:\n";
    for (const PropertyCheckResult& b : r.buggy_searches) {
      if (!b.violated()) {
        std::cout << "  buggy " << r.entry->buggy << " NOT detected from seed " << b.seed << " ("
                  << to_string(b.outcome) << (b.failure.empty() ? "" : ": " + b.failure) << ")\n";
      }
    }
    for (const PropertyCheckResult& f : r.fixed_searches) {
      if (!r.fixed_fails(f)) continue;
      std::cout << "  fixed " << r.entry->fixed << " " << to_string(f.property) << " (seed " << f.seed << ") fails: "
                << (f.holds() ? "not exercised: generated no case of class" : f.failure);
      for (const std::string& m : f.missing_classes) std::cout << " " << m;
      std::cout << "\n";
      if (!f.replay_command.empty()) std::cout << "  replay: " << f.replay_command << "\n";
    }
    for (const PropertyCheckResult& b : r.buggy_replays) {
      if (!b.violated()) std::cout << "  stored " << b.counterexample_file << " no longer breaks " << r.entry->buggy << "\n";
    }
    for (const PropertyCheckResult& f : r.fixed_replays) {
      if (r.fixed_replay_fails(f)) {
        std::cout << "  stored " << f.counterexample_file << ": fixed " << r.entry->fixed << " " << to_string(f.property)
                  << " fails: " << f.failure << "\n";
      }
    }
  }
  if (!o.junit.empty()) write_file(o.junit, corpus_junit_xml(results, "offsim corpus"));
  if (!o.json.empty()) write_file(o.json, corpus_json(results, options, ok).dump(1) + "\n");
  std::cout << (ok ? "\ncorpus: every buggy variant found, every fixed variant passes\n" : "\ncorpus: FAILED\n");
  return ok ? kExitOk : kExitFailed;
}

// Decision-log mode (DESIGN.md section 2, way 2): P1-P5 on what a real Python policy logged through
// python/offsim_decisions; the checks live in policies/decision_log.cpp. Malformed logs throw ParseError
// (exit 2 in main).
int run_decisions_mode(const CheckOptions& o, const fs::path& root) {
  policies::DecisionLogOptions options;
  options.root = root;
  const policies::DecisionLogReport report = policies::check_decision_log(o.decisions, options);
  std::cout << policies::format_report(report);
  return report.failed() ? kExitFailed : kExitOk;
}

GateOptions gate_options(const CheckOptions& o, const fs::path& root) {
  GateOptions options;
  for (const std::string& p : o.policies) {
    for (std::string& id : from_command_line([&] { return policies::match_policies(p); })) {
      options.policies.push_back(std::move(id));
    }
  }
  for (const std::string& p : o.properties) options.properties.push_back(from_command_line([&] { return parse_property(p); }));
  options.aspect = o.aspect;
  options.seeds = seed_list(o);
  options.cases = o.cases;
  options.time_budget_seconds = o.time_budget;
  options.root = root;
  options.counterexample_dir = o.out;
  options.scope.pipelines = o.pipelines;
  options.scope.alloc_confs = o.alloc_confs;
  options.scope.torch_versions = o.torch_versions;
  for (const std::string& name : o.pipelines) {
    const auto& all = pipeline_templates();
    if (std::none_of(all.begin(), all.end(), [&](const PipelineTemplate& t) { return t.name == name; })) {
      std::string known;
      for (const PipelineTemplate& t : all) known += (known.empty() ? "" : ", ") + t.name;
      throw UsageError("--pipeline " + name + ": unknown pipeline (known: " + known + ")");
    }
  }
  for (const std::string& conf : o.alloc_confs) {
    const auto& all = generated_alloc_confs();
    if (std::find(all.begin(), all.end(), conf) == all.end()) {
      std::string known;
      for (const std::string& c : all) known += (known.empty() ? "\"" : ", \"") + c + "\"";
      throw UsageError("--alloc-conf \"" + conf + "\": the generator does not draw it (it draws " + known + ")");
    }
  }
  if (!o.shard.empty()) {
    const auto slash = o.shard.find('/');
    try {
      options.shard_index = std::stoi(o.shard.substr(0, slash));
      options.shard_count = std::stoi(o.shard.substr(slash + 1));
    } catch (const std::exception&) {
      throw UsageError("--shard must be I/N with 0 <= I < N, got \"" + o.shard + "\"");
    }
    if (slash == std::string::npos || options.shard_count < 1 || options.shard_index < 0 ||
        options.shard_index >= options.shard_count) {
      throw UsageError("--shard must be I/N with 0 <= I < N, got \"" + o.shard + "\"");
    }
  }
  return options;
}

// The shard a gate result covers, so that --merge can tell whether every shard is there.
struct ShardedResult {
  GateResult gate;
  int shard_index = 0;
  int shard_count = 1;
};

ShardedResult read_shard(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw ParseError(file, 0, "cannot open the --json result of a shard");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
    if (doc.value("format", "") != "offsim-check/2") {
      throw ParseError(file, 0, "format must be offsim-check/2 (written by offsim check --json; rerun the shard)");
    }
    ShardedResult r;
    for (const nlohmann::json& c : doc.at("checks")) r.gate.checks.push_back(check_from_json(c));
    r.gate.units_selected = doc.at("units_selected").get<std::size_t>();
    r.gate.units_total = doc.at("units_total").get<std::size_t>();
    r.gate.units_skipped = doc.at("units_skipped").get<std::size_t>();
    r.gate.simulations = doc.at("simulations").get<std::size_t>();
    r.gate.seconds = doc.at("seconds").get<double>();
    r.shard_index = doc.at("shard").at(0).get<int>();
    r.shard_count = doc.at("shard").at(1).get<int>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(file, 0, std::string("not a check result: ") + e.what());
  }
}

// Joins the shards' results. A merge that lacks a shard, or holds one twice, has not checked the selection:
// it fails the gate (the returned notes say why) rather than passing on part of the work.
GateResult merge_shards(const std::vector<std::string>& files, std::vector<std::string>& problems) {
  GateResult merged;
  std::map<int, std::string> seen;
  int count = 0;
  for (const std::string& file : files) {
    ShardedResult r = read_shard(file);
    if (count == 0) {
      count = r.shard_count;
      merged.units_selected = r.gate.units_selected;
    } else if (r.shard_count != count || r.gate.units_selected != merged.units_selected) {
      problems.push_back(file + " is shard " + std::to_string(r.shard_index) + "/" + std::to_string(r.shard_count) +
                         " of a selection of " + std::to_string(r.gate.units_selected) + " checks; " + files.front() +
                         " is of " + std::to_string(count) + " shards and " + std::to_string(merged.units_selected) +
                         " checks: not the same run");
    }
    if (!seen.emplace(r.shard_index, file).second) {
      problems.push_back("shard " + std::to_string(r.shard_index) + " given twice (" + seen[r.shard_index] + ", " + file + ")");
    }
    merged.checks.insert(merged.checks.end(), r.gate.checks.begin(), r.gate.checks.end());
    merged.units_total += r.gate.units_total;
    merged.units_skipped += r.gate.units_skipped;
    merged.simulations += r.gate.simulations;
    merged.seconds += r.gate.seconds;
  }
  for (int i = 0; i < count; ++i) {
    if (!seen.count(i)) problems.push_back("shard " + std::to_string(i) + "/" + std::to_string(count) + " is missing");
  }
  return merged;
}

int run(const CheckOptions& o) {
  const fs::path root = from_command_line([&] { return repository_root(o.root); });
  const auto overrides = install_estimator_overrides(o.estimator_overrides, std::cout);
  if (!o.decisions.empty()) return run_decisions_mode(o, root);
  if (!o.replay.empty()) return run_replay(o, root);
  if (o.corpus) return run_corpus_mode(o, root);

  GateResult gate;
  std::vector<std::string> problems;  // why the gate did not check everything it was asked to
  GateOptions options;
  if (!o.merge.empty()) {
    gate = merge_shards(o.merge, problems);
  } else {
    options = gate_options(o, root);
    std::cout << "check: " << seeds_text(options.seeds) << " (fixed: every run draws the same cases; --seed changes it), "
              << o.cases << " cases per check; counterexamples go to " << o.out << "/ (--out)\n\n";
    Progress progress("check", 0, o.quiet);
    options.progress = [&progress](std::size_t done, std::size_t total) { progress.update(done, total); };
    gate = run_gate(options);
    progress.finish();
    if (gate.units_selected == 0) {
      throw UsageError("nothing to check: none of the selected properties applies to the selected policies");
    }
    if (gate.units_total == 0) {
      problems.push_back("shard " + o.shard + " holds none of the " + std::to_string(gate.units_selected) +
                         " checks (shards count from 0; use fewer shards)");
    }
  }
  print_checks(gate.checks);
  std::map<std::string, int> cases_per_property;
  for (const PropertyCheckResult& c : gate.checks) cases_per_property[std::string(to_string(c.property))] += c.cases;
  std::cout << "\ncases run per property:";
  for (const auto& [p, n] : cases_per_property) std::cout << " " << p << "=" << n;
  std::cout << "  (" << gate.simulations << " simulated runs, " << static_cast<int>(gate.seconds) << " s)\n";
  if (gate.units_skipped > 0) {
    problems.push_back("time budget reached: " + std::to_string(gate.units_skipped) + " of " +
                       std::to_string(gate.units_total) + " checks not started (--time-budget)");
  }
  for (const std::string& p : problems) std::cout << "not checked: " << p << "\n";
  const bool failed = gate.failed() || !problems.empty();
  if (!o.junit.empty()) write_file(o.junit, junit_xml(gate.checks, "offsim check"));
  if (!o.json.empty()) {
    nlohmann::json doc = {{"format", "offsim-check/2"},
                          {"shard", {options.shard_index, options.shard_count}},
                          {"units_selected", gate.units_selected},
                          {"units_total", gate.units_total},
                          {"units_skipped", gate.units_skipped},
                          {"simulations", gate.simulations},
                          {"seconds", gate.seconds},
                          {"failed", failed},
                          {"checks", nlohmann::json::array()}};
    for (const PropertyCheckResult& c : gate.checks) doc["checks"].push_back(check_json(c));
    write_file(o.json, doc.dump(1) + "\n");
  }
  std::cout << (failed ? "check: FAILED\n" : "check: passed\n");
  return failed ? kExitFailed : kExitOk;
}

// A number of seconds that leaves time to check something: > 0 (inf: no budget). CLI11's ranges let NaN
// through, which would turn the budget off unnoticed.
CLI::Validator positive_seconds() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value > 0)) return "must be a number of seconds > 0, got " + text;
        return "";
      },
      "SECONDS>0");
}

}  // namespace

void add_check_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CheckOptions>();
  CLI::App* cmd = app.add_subcommand("check", "Property gate: P1-P5 over generated scenarios, fixed seeds, exit 0/1");
  cmd->add_option("--policy,-p", o->policies, "Policy id or family (repeatable; default: the newest profiles)");
  cmd->add_option("--property", o->properties, "P1..P5 (repeatable; default: all that apply)");
  cmd->add_option("--aspect", o->aspect,
                  "Count only violations of this kind: P3 weights, estimator, memory-fraction, accounting, "
                  "fragmentation, unaccounted, fragmentation-only; P4 residency, capacity")
      ->check(CLI::IsMember({"weights", "estimator", "memory-fraction", "accounting", "fragmentation", "unaccounted",
                             "fragmentation-only", "residency", "capacity"}));
  cmd->add_option("--seed", o->seed, "First seed (default: the gate's fixed seed)");
  // A gate never passes having checked nothing: counts and budgets that leave nothing to check are usage errors.
  cmd->add_option("--seeds", o->seeds, "Number of seeds, >= 1 (a longer, non-gate search: detection rates)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--cases", o->cases, "Generated cases per property and seed, >= 1")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--time-budget", o->time_budget,
                  "Seconds (> 0) after which no new check starts; checks not started fail the gate")
      ->check(positive_seconds());
  cmd->add_option("--shard", o->shard,
                  "Run shard I of N (I/N; I counts from 0: a job split in two runs 0/2 and 1/2); join with --merge");
  cmd->add_option("--junit", o->junit, "Write JUnit XML here");
  cmd->add_option("--json", o->json, "Write results as JSON (docs/check_json.md; a gate's merge with --merge)");
  cmd->add_option("--merge", o->merge,
                  "Merge the --json results of every shard instead of running (a missing or repeated shard fails)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--pipeline", o->pipelines, "Draw only from these pipelines (repeatable; default: all but the opt-in sd15 and sdxl)");
  cmd->add_option("--alloc-conf", o->alloc_confs, "Draw only these allocator settings (repeatable; \"\" = default)");
  cmd->add_option("--torch", o->torch_versions, "Draw only these PyTorch version profiles (repeatable: 2.9, 2.11)")
      ->check(CLI::IsMember(generated_torch_versions()));
  cmd->add_option("--out", o->out,
                  "Folder for shrunk counterexamples (scenario JSON recording policy and property; default "
                  "offsim-check/ in the current folder)");
  cmd->add_option("--replay", o->replay,
                  "Re-check one stored scenario: the policy and property its \"finding\" records, or --policy/--property")
      ->check(CLI::ExistingFile);
  cmd->add_option("--root", o->root, "offsim checkout holding traces/ and scenarios/");
  cmd->add_flag("--corpus", o->corpus, "Run the known-bug corpus (tests/corpus/)");
  cmd->add_flag("--quiet,-q", o->quiet, "No progress line");
  cmd->add_option("--decisions", o->decisions,
                  "Check P1-P5 on a decision log written by python/offsim_decisions (docs/decision_log.md)")
      ->check(CLI::ExistingFile);
  add_estimator_override_option(cmd, o->estimator_overrides);
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace offsim::cli
