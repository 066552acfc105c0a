#include "offsim/check/corpus.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "offsim/policies/policy_registry.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::check {

std::vector<CorpusEntry> load_corpus(const std::filesystem::path& root) {
  std::vector<CorpusEntry> out;
  const std::filesystem::path dir = root / "tests/corpus";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".json" && name.find(".counterexample.") == std::string::npos) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const std::filesystem::path& file : files) {
    std::ifstream in(file);
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw ParseError(file.string(), e.byte, e.what());
    }
    auto field = [&](const char* key) {
      if (!doc.contains(key) || !doc[key].is_string()) throw ParseError(file.string(), 0, std::string("missing string field \"") + key + "\"");
      return doc[key].get<std::string>();
    };
    if (field("format") != "offsim-corpus-entry/1") throw ParseError(file.string(), 0, "format must be offsim-corpus-entry/1");
    CorpusEntry entry;
    entry.file = file.string();
    entry.bug = field("bug");
    entry.title = field("title");
    entry.citation = field("citation");
    entry.buggy = field("buggy");
    entry.fixed = field("fixed");
    try {
      const std::string property = field("property");
      const auto dot = property.find('.');
      entry.property = parse_property(property.substr(0, dot));
      if (dot != std::string::npos) entry.aspect = property.substr(dot + 1);
      (void)policies::make_policy(entry.buggy);
      (void)policies::make_policy(entry.fixed);
    } catch (const ConfigError& e) {
      throw ParseError(file.string(), 0, e.what());
    }
    if (doc.contains("counterexamples")) entry.counterexamples = doc["counterexamples"].get<std::vector<std::string>>();
    if (doc.contains("scope")) {
      const nlohmann::json& scope = doc["scope"];
      entry.scope.pipelines = scope.value("pipelines", std::vector<std::string>{});
      entry.scope.alloc_confs = scope.value("alloc_confs", std::vector<std::string>{});
      entry.scope.torch_versions = scope.value("torch_versions", std::vector<std::string>{});
      entry.scope.prior_history = scope.value("prior_history", true);
      for (const std::string& name : entry.scope.pipelines) {
        const auto& all = pipeline_templates();
        if (std::none_of(all.begin(), all.end(), [&](const PipelineTemplate& t) { return t.name == name; })) {
          throw ParseError(file.string(), 0, "scope.pipelines: unknown pipeline \"" + name + "\"");
        }
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::size_t CorpusResult::detected() const {
  // Only a counterexample of the entry's property counts: a give-up or an error found nothing.
  return static_cast<std::size_t>(std::count_if(buggy_searches.begin(), buggy_searches.end(),
                                                [](const PropertyCheckResult& r) { return r.violated(); }));
}

bool CorpusResult::ok() const {
  const auto holds = [](const PropertyCheckResult& r) { return r.holds(); };
  const auto violated = [](const PropertyCheckResult& r) { return r.violated(); };
  return detected() == buggy_searches.size() && std::all_of(fixed_searches.begin(), fixed_searches.end(), holds) &&
         std::all_of(buggy_replays.begin(), buggy_replays.end(), violated) &&
         std::all_of(fixed_replays.begin(), fixed_replays.end(), holds);
}

std::vector<CorpusResult> run_corpus(const std::vector<CorpusEntry>& entries, const CorpusOptions& options) {
  const GeneratorInputs loaded = load_generator_inputs(options.root);
  OutcomeCache cache(options.root);
  std::vector<CorpusResult> results;
  std::size_t searched = 0;  // (entry, seed) pairs done, for options.progress
  for (const CorpusEntry& entry : entries) {
    CorpusResult r;
    r.entry = &entry;
    GeneratorInputs inputs = loaded;
    inputs.scope = entry.scope;
    for (std::uint64_t seed : options.seeds) {
      PropertyCheckOptions o;
      o.seed = seed;
      o.cases = options.cases;
      o.aspect = entry.aspect;
      o.counterexample_dir = options.counterexample_dir;
      r.buggy_searches.push_back(check_property(entry.buggy, entry.property, o, cache, inputs));
      if (!o.counterexample_dir.empty()) o.counterexample_dir /= "fixed";
      r.fixed_searches.push_back(check_property(entry.fixed, entry.property, o, cache, inputs));
      cache.clear();
      if (options.progress) options.progress(++searched, entries.size() * options.seeds.size());
    }
    for (const std::string& file : entry.counterexamples) {
      const policies::Scenario scenario = policies::Scenario::load(options.root / file, options.root);
      r.buggy_replays.push_back(check_property_on(entry.buggy, entry.property, scenario, entry.aspect));
      r.fixed_replays.push_back(check_property_on(entry.fixed, entry.property, scenario, entry.aspect));
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace offsim::check
