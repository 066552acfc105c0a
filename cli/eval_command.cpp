// `offsim eval`: every selected policy on every scenario of a suite; a table of OOMs, evictions, bytes
// moved, transfer time, peak reserved and the P1-P5 verdicts, and the same as JSON (--json). It reports; with
// --strict it also gates: exit 1 on any FAIL verdict (an unhandled OOM is a P3 FAIL; docs/exit_codes.md).
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "estimator_override_option.hpp"
#include "eval_exports.hpp"
#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "progress.hpp"
#include "repository_root.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

namespace fs = std::filesystem;
using namespace offsim::policies;

struct EvalOptions {
  std::vector<std::string> policies;
  std::vector<std::string> suites;
  std::string json_path;
  EvalExportOptions exports;
  std::string root;
  bool quiet = false;
  bool no_min_capacity = false;
  bool strict = false;
  std::vector<std::string> estimator_overrides;  // --estimator-override FILE
};

// Scenario files of the suites: a file as given, a folder searched with its subfolders for *.json (in
// path order, hidden folders skipped). When none is found, the message says where it looked.
std::vector<fs::path> scenario_files(const std::vector<std::string>& suites, const fs::path& root) {
  std::vector<fs::path> files;
  std::vector<std::string> searched;
  for (const std::string& s : suites) {
    fs::path p = fs::path(s).is_absolute() || fs::exists(s) ? fs::path(s) : root / s;
    if (fs::is_directory(p)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(p); it != fs::recursive_directory_iterator(); ++it) {
        const std::string name = it->path().filename().string();
        if (it->is_directory() && name.starts_with(".")) {
          it.disable_recursion_pending();
        } else if (it->is_regular_file() && it->path().extension() == ".json") {
          found.push_back(it->path());
        }
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
      searched.push_back(p.string());
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else {
      throw ConfigError("--suite " + s + ": no such scenario file or folder");
    }
  }
  if (files.empty()) {
    std::string where;
    for (const std::string& s : searched) where += (where.empty() ? "" : ", ") + s;
    throw ConfigError("no scenarios found: no *.json file in " + where + " or any folder below it");
  }
  return files;
}

// Why cells of the table read n/a: each not-applicable run with its reason, then each property's n/a
// reasons with how many runs gave them (the JSON holds the same, per run).
void print_not_applicable(const std::vector<EvalResult>& results, std::ostream& out) {
  std::vector<const EvalResult*> rows;
  std::vector<std::pair<std::string, std::string>> reasons;  // (property, detail), first-seen order
  std::vector<std::size_t> counts;
  for (const EvalResult& r : results) {
    if (r.run.failure.rfind("not applicable", 0) == 0) {
      rows.push_back(&r);
      continue;
    }
    for (const PropertyResult& p : r.properties.results) {
      if (p.verdict != Verdict::kNotApplicable) continue;
      const std::pair<std::string, std::string> key{p.id, p.detail.empty() ? "no reason recorded" : p.detail};
      const auto it = std::find(reasons.begin(), reasons.end(), key);
      if (it == reasons.end()) {
        reasons.push_back(key);
        counts.push_back(1);
      } else {
        ++counts[static_cast<std::size_t>(it - reasons.begin())];
      }
    }
  }
  if (!rows.empty()) {
    out << "\nn/a runs (the policy cannot run the scenario as written):\n";
    for (const EvalResult* r : rows) {
      const std::string reason = r->run.failure.substr(std::string_view("not applicable: ").size());
      out << "  " << r->run.scenario << " x " << r->run.policy.id << ": " << reason << "\n";
    }
  }
  if (!reasons.empty()) {
    // Sorted by property; within one, the most frequent reason first.
    std::vector<std::size_t> order(reasons.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return reasons[a].first != reasons[b].first ? reasons[a].first < reasons[b].first : counts[a] > counts[b];
    });
    out << "\nn/a verdicts (nothing for the property to judge):\n";
    for (std::size_t i : order) {
      out << "  " << reasons[i].first << ", " << counts[i] << (counts[i] == 1 ? " run: " : " runs: ") << reasons[i].second
          << "\n";
    }
  }
}

int run(const EvalOptions& o) {
  const fs::path root = from_command_line([&] { return repository_root(o.root); });
  const auto overrides = install_estimator_overrides(o.estimator_overrides, std::cout);
  EvalExportOptions export_options = o.exports;
  export_options.quiet = o.quiet;
  const EvalExports exports(export_options, root);
  std::vector<Scenario> scenarios;
  for (const fs::path& file : from_command_line([&] { return scenario_files(o.suites, root); })) {
    scenarios.push_back(Scenario::load(file, root));
  }

  std::vector<std::string> policy_ids;
  if (o.policies.empty()) {
    for (const PolicyEntry& e : all_policies()) policy_ids.push_back(e.id);
  } else {
    for (const std::string& p : o.policies) {
      for (std::string& id : from_command_line([&] { return match_policies(p); })) policy_ids.push_back(std::move(id));
    }
  }

  PropertyOptions options;
  options.check_min_capacity = !o.no_min_capacity;
  std::vector<EvalResult> results;
  results.reserve(scenarios.size() * policy_ids.size());
  Progress progress("eval", scenarios.size() * policy_ids.size(), o.quiet);
  for (const Scenario& scenario : scenarios) {
    for (const std::string& id : policy_ids) {
      try {
        results.push_back(evaluate(id, scenario, options));
      } catch (const ConfigError& e) {
        // A policy that cannot express the scenario (e.g. a granularity it lacks) is reported, not fatal.
        EvalResult r;
        r.scenario = &scenario;
        r.run.policy.id = id;
        r.run.scenario = scenario.name;
        r.run.failure = std::string("not applicable: ") + e.what();
        // Every property is n/a for the same reason (the JSON lists P1-P5 for every cell).
        for (std::size_t i = 0; i < r.properties.results.size(); ++i) {
          r.properties.results[i].id = "P" + std::to_string(i + 1);
          r.properties.results[i].verdict = Verdict::kNotApplicable;
          r.properties.results[i].detail = std::string("the policy cannot run the scenario: ") + e.what();
        }
        results.push_back(std::move(r));
      }
      progress.update(results.size());
    }
  }
  progress.finish();

  Table table({"scenario", "policy", "result", "evict", "moved", "xfer s", "peak rsv", "P1", "P2", "P3", "P4", "P5"});
  bool any_failed = false;
  std::size_t applicable_runs = 0;
  for (const EvalResult& r : results) {
    const bool applicable = r.run.failure.rfind("not applicable", 0) != 0;
    applicable_runs += applicable ? 1 : 0;
    std::vector<std::string> row = {r.run.scenario, r.run.policy.id};
    if (!applicable) {
      row.insert(row.end(), {"n/a", "", "", "", "", "", "", "", "", ""});
      table.add(row);
      continue;
    }
    row.push_back(r.run.completed ? "ok" : "OOM");
    row.push_back(std::to_string(r.run.evictions));
    row.push_back(format_bytes(r.run.bytes_to_device + r.run.bytes_to_host));
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", r.run.transfer_seconds);
    row.push_back(secs);
    row.push_back(format_bytes(r.run.peak_reserved));
    for (const PropertyResult& p : r.properties.results) row.push_back(std::string(to_string(p.verdict)));
    any_failed = any_failed || r.properties.failed();
    table.add(row);
  }
  table.print(std::cout);
  std::cout << "\n";
  for (const EvalResult& r : results) {
    if (!r.properties.failed()) continue;
    std::cout << r.run.scenario << " x " << r.run.policy.id << ":\n";
    for (const PropertyResult& p : r.properties.results) {
      if (p.verdict == Verdict::kFail) std::cout << "  " << p.id << " " << p.detail << "\n";
    }
  }
  print_not_applicable(results, std::cout);
  std::cout << "\nP1 stop=satisfied => F_P >= E + W_load   P2 E >= T_cold   P3 no unhandled OOM   "
               "P4 offloaded means offloaded, k calls fit where 1 fits   P5 E <= 1.5 T_cold (reported)\n"
               "T comes from each stage's working-memory trace; its provenance is in the JSON (--json).\n";

  if (!o.json_path.empty()) {
    sim::AtomicOutputFile out(o.json_path);
    out.write(to_json(results).dump(1));
    out.write("\n");
    out.commit();
    if (!o.quiet) std::cout << "wrote " << o.json_path << "\n";
  }
  exports.write(results, o.suites);
  if (!o.strict) return kExitOk;  // eval reports; --strict (or `offsim check`) gates
  if (applicable_runs == 0) {
    std::cout << "strict: FAILED: no selected policy could run any selected scenario (every row is n/a)\n";
    return kExitFailed;
  }
  if (any_failed) {
    std::cout << "strict: FAILED: a P1-P4 verdict is FAIL (listed above)\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

void add_eval_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Run policies over a suite of scenarios on the simulator and judge P1-P5");
  cmd->add_option("--policy,-p", options->policies, "Policy id or family (repeatable; default: all)");
  cmd->add_option("--suite,-s", options->suites,
                  "Scenario file, or folder searched with its subfolders for *.json (repeatable; default: "
                  "scenarios/default)");
  cmd->add_option("--json", options->json_path, "Write the results as JSON (schema docs/eval_json.md)");
  cmd->add_option("--html", options->exports.html, "Write a self-contained HTML report with charts (docs/reports.md)");
  cmd->add_option("--export-snapshot", options->exports.snapshot,
                  "Write each run as a PyTorch memory snapshot pickle for memory_viz: a file for one run, or a folder (ending in /)");
  cmd->add_option("--export-perfetto", options->exports.perfetto,
                  "Write each run as a Chrome/Perfetto trace (counters, stage slices): a file for one run, or a folder (ending in /)");
  cmd->add_option("--root", options->root, "offsim checkout holding traces/ and scenarios/ (default: found)");
  cmd->add_flag("--quiet,-q", options->quiet, "No progress line");
  cmd->add_flag("--no-min-capacity", options->no_min_capacity, "Skip P4's minimum-capacity search");
  cmd->add_flag("--strict", options->strict,
                "Exit 1 when any P1-P4 verdict is FAIL (an unhandled OOM fails P3); P5 is reported, never failed");
  add_estimator_override_option(cmd, options->estimator_overrides);
  cmd->callback([options, &exit_code] {
    if (options->suites.empty()) options->suites.push_back("scenarios/default");
    exit_code = run(*options);
  });
}

}  // namespace offsim::cli
